"""The ``focuslock`` command: parses arguments, then calls one function per subcommand.

Each command group lives in its own module with a ``register(subparsers)`` function that adds
its parsers and sets ``func`` (``args -> exit code``). Modules import heavy things (TensorFlow,
picamera2) inside their run functions only, so ``focuslock --help`` stays instant on the box.
Groups from outside the controller (training's ``train``, ``evaluate``, ``train-data``) join
through the ``focuslock.commands`` entry-point group of the installed package, so the controller
never imports training by name.

Every command ends through one error path (``main``): a user's mistake (a ``FocuslockError``) is
one line naming the problem and exit status 2, like argparse's own errors; anything else is a bug,
reported in one line that names the crash log holding its traceback, exit status 1. Number
arguments parse through ``finite_float`` and friends, so NaN and infinities stop at the parser.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from controller import __version__
from controller.errors import FocuslockError

# Command groups, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "controller.commands.sim",
    "controller.commands.config",
    "controller.commands.predict",
    "controller.commands.parallax",  # calibrate the parallax cue on a collected stack
    "controller.commands.loop",  # focus, lock, collect, demo
    "controller.commands.board",
    "controller.commands.serve",  # the headless service: HTTP API, dashboard, systemd notify
    "controller.commands.token",  # the service's API token
    "controller.commands.pgfocus",  # Micro-Manager's pgFocus adapter drives the service
    "controller.commands.model",  # install a bundle into the box, roll back, list
    "controller.commands.alignment",  # is the autofocus LED where the bundle expects it?
)
COMMAND_ENTRY_POINTS = "focuslock.commands"  # more groups, after these, in entry-point name order
SIGPIPE_STATUS = 141  # 128 + SIGPIPE: what a shell reports for a pipeline cut short


def crash_dir() -> Path:
    """Where crash logs go: the user's state folder ($XDG_STATE_HOME/focuslock, by default
    ~/.local/state/focuslock), which outlives a reboot, unlike /tmp."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "focuslock"


def write_crash_log(command: str, argv: Sequence[str], exc: BaseException) -> Path:
    """The traceback of an unexpected exception in a new file; its path (stderr when the
    state folder is not writable, so the report is never lost)."""
    text = (f"focuslock {__version__} {command}: {' '.join(argv)}\n"
            + "".join(traceback.format_exception(exc)))
    folder = crash_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"crash-{time.strftime('%Y%m%d-%H%M%S')}-",
                                    suffix=".log", dir=folder)  # private: it may hold paths
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        sys.stderr.write(text)
        return Path("<stderr>")
    return Path(name)


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
    """Run one command; its exit status (0 done, 1 a bug, 2 a user error, 130 interrupted, 141
    its output's reader went away)."""
    argv = list(sys.argv[1:] if argv is None else argv)
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
    except BrokenPipeError:  # whoever read our output stopped (``| head``): not a bug
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return SIGPIPE_STATUS
    except Exception as exc:
        log = write_crash_log(args.command, argv, exc)
        print(f"focuslock {args.command}: internal error: {type(exc).__name__}: {exc}; this is "
              f"a bug, please report it with {log}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
