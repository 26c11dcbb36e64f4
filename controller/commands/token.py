"""``focuslock token rotate``: a new API token for the service (docs/service.md, Authentication).

The running service reads the token file again when it changes, so the new token is the only
one it accepts from its next request on, without a restart; whoever drives the box reads the new
one from the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from controller.config import load_config
from controller.errors import FocuslockError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = subparsers.add_parser("token", help="the service's API token")
    actions = token.add_subparsers(dest="action", metavar="ACTION", required=True)
    rotate = actions.add_parser(
        "rotate", help="write a new random token to [service] token_file (mode 0640); the "
                       "running service accepts only it from its next request")
    rotate.add_argument("--config", type=Path, help="TOML config (default: built-in defaults)")
    rotate.set_defaults(func=run_rotate)


def run_rotate(args: argparse.Namespace) -> int:
    from controller.service.auth import write_new_token

    config = load_config(args.config)
    if not config.service.token_file:
        where = args.config or "the built-in defaults"
        raise FocuslockError(f"[service] token_file is not set in {where}: name the file that "
                             f"is to hold the token (e.g. /etc/focuslock/token) first")
    path = Path(config.service.token_file)
    write_new_token(path)
    print(f"new API token written to {path}; the running service accepts only it from its "
          f"next request")
    return 0
