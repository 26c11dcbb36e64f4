"""``focuslock config``: check a config before the box relies on it, show the values in force, or
print the documented example.

A focus lock that refuses its config at 3 a.m. is a lost night; ``deploy/install.sh`` runs
``config check`` so a bad file is caught while someone is watching: besides the file's own rules
it tries what the config needs from the machine (the model bundle it names, the simulated sample,
the log folder, the listen address). ``config example`` writes
deploy/focuslock.example.toml from the settings' own docs (controller/config.py), so the example
cannot drift from what the program reads; a test checks that the committed file is current.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from dataclasses import Field, fields, is_dataclass
from typing import Any

from controller.config import Config, load_config, setting_doc, setting_rule
from controller.setting_rules import Within

EXAMPLE_HEADER = """\
# focuslock configuration: every key is optional; what is shown here are the defaults.
# Units: µm, seconds, Hz. An unknown key or a bad value is an error that names it.
# Use with any command: focuslock lock --config /etc/focuslock/focuslock.toml
# Written by `focuslock config example` from the settings' docs in controller/config.py.
"""
DOC_COLUMN = 34  # where a setting's comment starts
WIDTH = 100


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = subparsers.add_parser("config", help="check or show a TOML config file")
    actions = config.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="validate a config file and what it needs (bundle, sample, log folder, "
                      "address); exit 2 naming the bad key")
    check.add_argument("--config", required=True, help="TOML config file")
    check.set_defaults(func=run_check)
    show = actions.add_parser("show", help="print every setting in force (defaults filled in)")
    show.add_argument("--config", help="TOML config file (default: all defaults)")
    show.set_defaults(func=run_show)
    example = actions.add_parser(
        "example", help="print every setting with its default and what it does "
                        "(deploy/focuslock.example.toml)")
    example.set_defaults(func=run_example)


def run_check(args: argparse.Namespace) -> int:
    """The file's own rules, then what it needs from this machine (controller/preflight.py)."""
    from controller.preflight import check_environment

    config = load_config(args.config)
    check_environment(config)
    print(f"{args.config}: ok (camera {config.camera.backend}, board {config.board.backend}, "
          f"optics {config.optics.preset})")
    return 0


def run_show(args: argparse.Namespace) -> int:
    print(to_toml(load_config(args.config)), end="")
    return 0


def run_example(args: argparse.Namespace) -> int:
    print(example_toml(), end="")
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


def example_toml() -> str:
    """Every setting at its default, each table under its docstring and each key beside its doc:
    the text of deploy/focuslock.example.toml."""
    defaults = Config()
    top: list[str] = []
    tables: list[str] = []
    for f in fields(defaults):
        value = getattr(defaults, f.name)
        if is_dataclass(value):
            tables.append("")
            tables.extend(_comment_lines(" ".join((type(value).__doc__ or "").split()), 0))
            tables.append(f"[{f.name}]")
            tables.extend(line for g in fields(value)
                          for line in _documented(g.name, getattr(value, g.name),
                                                  _doc_and_rule(g)))
        else:
            top.extend(_documented(f.name, value, _doc_and_rule(f)))
    return EXAMPLE_HEADER + "\n" + "\n".join(top + tables) + "\n"


def _doc_and_rule(setting: Field[Any]) -> str:
    """A setting's doc and, where it has one, its numeric range: what the example prints."""
    rule = setting_rule(setting)
    doc = setting_doc(setting)
    return f"{doc}; {rule.requirement}" if isinstance(rule, Within) else doc


def _documented(name: str, value: Any, doc: str) -> list[str]:
    """``name = value`` with its doc as a comment at DOC_COLUMN, wrapped onto comment lines."""
    assignment = f"{name} = {_scalar(value)}"
    column = max(DOC_COLUMN, len(assignment) + 1)
    comments = _comment_lines(doc, column)
    if not comments:
        return [assignment]
    first = assignment.ljust(column) + comments[0][column:]
    return [first, *comments[1:]]


def _comment_lines(text: str, column: int) -> list[str]:
    """``text`` as ``# ...`` lines starting at ``column``, none wider than WIDTH (docstring
    markup ``like this`` printed `like this`)."""
    return textwrap.wrap(text.replace("``", "`"), WIDTH, initial_indent=" " * column + "# ",
                         subsequent_indent=" " * column + "# ", break_long_words=False,
                         break_on_hyphens=False)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # a JSON string is a TOML basic string, but for DEL, which TOML wants escaped
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, tuple):
        return f"[{', '.join(map(_scalar, value))}]"
    return repr(value)
