"""The ``focuslock`` command: parses arguments, then calls one function per subcommand.

Each command group lives in its own module with a ``register(subparsers)`` function that adds
its parsers and sets ``func`` (``args -> exit code``). Modules import heavy things (TensorFlow,
picamera2) inside their run functions only, so ``focuslock --help`` stays instant on the box.
Groups from outside the controller (training's ``train``, ``evaluate``, ``train-data``) join
through the ``focuslock.commands`` entry-point group of the installed package, so the controller
never imports training by name.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from types import ModuleType

from controller import __version__
from controller.errors import FocuslockError

# Command groups, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "controller.commands.sim",
    "controller.commands.config",
    "controller.commands.predict",
    "controller.commands.loop",  # focus, lock, collect, demo
    "controller.commands.board",
    "controller.commands.serve",  # the headless service: HTTP API, dashboard, systemd notify
)
COMMAND_ENTRY_POINTS = "focuslock.commands"  # more groups, after these, in entry-point name order


def command_modules() -> Iterator[ModuleType]:
    """The controller's command groups, then those other installed packages add."""
    for name in COMMAND_MODULES:
        yield importlib.import_module(name)
    for entry_point in sorted(entry_points(group=COMMAND_ENTRY_POINTS), key=lambda e: e.name):
        yield entry_point.load()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="focuslock",
        description="Single-shot deep-learning autofocus and focus lock for LED-array microscopes.",
    )
    parser.add_argument("--version", action="version", version=f"focuslock {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in command_modules():
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except FocuslockError as exc:
        print(f"focuslock {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"focuslock {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
