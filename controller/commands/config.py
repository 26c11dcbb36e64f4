"""``focuslock config``: check a config before the box relies on it, or show the values in force.

A focus lock that refuses its config at 3 a.m. is a lost night; ``deploy/install.sh`` runs
``config check`` so a bad file is caught while someone is watching.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, is_dataclass
from typing import Any

from controller.config import Config, load_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = subparsers.add_parser("config", help="check or show a TOML config file")
    actions = config.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a config file; exit 2 naming the bad key")
    check.add_argument("path", help="TOML config file")
    check.set_defaults(func=run_check)
    show = actions.add_parser("show", help="print every setting in force (defaults filled in)")
    show.add_argument("--config", help="TOML config file (default: all defaults)")
    show.set_defaults(func=run_show)


def run_check(args: argparse.Namespace) -> int:
    config = load_config(args.path)
    print(f"{args.path}: ok (camera {config.camera.backend}, board {config.board.backend}, "
          f"optics {config.optics.preset})")
    return 0


def run_show(args: argparse.Namespace) -> int:
    print(to_toml(load_config(args.config)), end="")
    return 0


def to_toml(config: Config) -> str:
    """The config as TOML that ``load_config`` reads back to an equal Config."""
    top: list[str] = []
    tables: list[str] = []
    for f in fields(config):
        value = getattr(config, f.name)
        if is_dataclass(value):
            tables.append(f"\n[{f.name}]")
            tables.extend(f"{g.name} = {_scalar(getattr(value, g.name))}" for g in fields(value))
        else:
            top.append(f"{f.name} = {_scalar(value)}")
    return "\n".join(top + tables) + "\n"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    return repr(value)
