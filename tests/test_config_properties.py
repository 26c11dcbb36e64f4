"""Property-based tests of the config loader: whatever the tables hold, the answer is a Config
or a ConfigError, and every Config it accepts keeps the promises the loop relies on.

The values are drawn from each setting's own rule (its edges, just inside, just outside) mixed
with what a careless or hostile file holds: nan, inf, huge floats and integers, bools for
numbers, text with NUL, nested tables, unknown keys. The files are TOML written from such
tables, then truncated or corrupted byte by byte.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import tomllib
from dataclasses import Field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from hypothesis import event, given, settings
from hypothesis import strategies as st

from controller.commands.config import to_toml
from controller.config import (
    Config,
    ConfigError,
    config_from_dict,
    load_config,
    offset_limit_um,
    setting_rule,
)
from controller.setting_rules import Within

WILD: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers()
    | st.integers(min_value=-(10**60), max_value=10**60) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=6,
)


def near(rule: Within) -> st.SearchStrategy[float]:
    """Values at, just inside and just outside a range, anywhere within it, and within its
    thousandth nearest 0 (where the other settings' defaults leave room: a window smaller than
    the default travel, an exposure shorter than the default timeout)."""
    edges = [rule.low, rule.high, 0, math.nextafter(rule.low, -math.inf),
             math.nextafter(rule.high, math.inf), math.nextafter(rule.low, math.inf)]
    scale = (rule.high - rule.low) / 1000
    low = rule.low if rule.low >= 0 else max(rule.low, -scale)
    small = st.floats(low, min(rule.high, low + scale) if rule.low >= 0 else scale)
    return st.one_of(st.sampled_from(edges), st.floats(rule.low, rule.high), small, small)


def value_for(kind: Any, setting: Field[Any], wild: bool) -> st.SearchStrategy[Any]:
    """A value for one setting: plausible for its type and rule, and if ``wild`` now and then
    anything at all."""
    rule = setting_rule(setting)
    if kind is bool:
        plausible: st.SearchStrategy[Any] = st.booleans()
    elif get_origin(kind) is Literal:
        plausible = st.sampled_from(get_args(kind))
    elif isinstance(rule, Within):
        numbers = near(rule)
        plausible = numbers.map(round) if kind is int else numbers
    elif kind is float:  # the offset: its rule is the lock window's
        plausible = st.floats(-60, 60)
    else:
        plausible = st.text(max_size=12) | st.sampled_from(["sparse-cells", "127.0.0.1"])
    return st.one_of(*[plausible] * 9, WILD) if wild else plausible


def table(cls: type, wild: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Some of a table's keys with generated values; if ``wild``, now and then an unknown key."""
    hints = get_type_hints(cls)
    known = {f.name: value_for(hints[f.name], f, wild) for f in fields(cls)
             if not is_dataclass(hints[f.name])}
    chosen = st.fixed_dictionaries({}, optional=known)
    if not wild:
        return chosen
    unknown = st.dictionaries(st.text(max_size=8), WILD, max_size=1)
    return st.one_of(chosen, chosen, chosen, st.builds(lambda a, b: {**b, **a}, chosen, unknown))


CONFIG_TABLES = {f.name: get_type_hints(Config)[f.name] for f in fields(Config)
                 if is_dataclass(get_type_hints(Config)[f.name])}


def documents(wild: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Whole config documents: top-level settings and some of the tables (if ``wild``, a table
    is now and then anything at all)."""
    tables = {name: st.one_of(table(kind, wild), table(kind, wild), WILD) if wild
              else table(kind, wild) for name, kind in CONFIG_TABLES.items()}
    return st.builds(lambda top, parts: {**top, **parts}, table(Config, wild),
                     st.fixed_dictionaries({}, optional=tables))


def assert_keeps_its_promises(config: Config) -> None:
    """What the loop, the board and the API rely on of any accepted config."""
    for part in [config, *(getattr(config, name) for name in CONFIG_TABLES)]:
        for setting in fields(part):
            value = getattr(part, setting.name)
            if isinstance(value, float):
                assert math.isfinite(value), setting.name
            rule = setting_rule(setting)
            if rule is not None:
                assert rule.admits(value), setting.name
    board, lock, focus = config.board, config.lock, config.focus
    span = board.travel_max_um - board.travel_min_um
    assert span > 0
    assert abs(lock.offset_um) <= offset_limit_um(lock) == lock.travel_window_um / 2
    assert lock.travel_window_um <= span and focus.search_window_um <= span
    assert lock.probe_um <= lock.max_step_um and focus.probe_um <= focus.max_step_um
    assert board.travel_min_um <= config.sim.start_z_um <= board.travel_max_um
    assert board.travel_min_um <= config.sim.focus_z_um <= board.travel_max_um
    assert config.camera.exposure_us / 1e6 < config.camera.timeout_s
    assert abs(board.travel_min_um * board.steps_per_um) < 2**31  # the protocol's step counts
    assert abs(board.travel_max_um * board.steps_per_um) < 2**31


@settings(max_examples=600)
@given(documents(wild=True))
def test_any_tables_give_a_config_that_keeps_its_promises_or_a_config_error(data):
    check_tables(data)


@settings(max_examples=500)
@given(documents(wild=False))
def test_tables_of_plausible_values_give_a_config_that_keeps_its_promises_or_an_error(data):
    """Values of the right types, mostly in range: the rules between settings decide."""
    check_tables(data)


def check_tables(data: Any) -> None:
    try:
        config = config_from_dict(data)
    except ConfigError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400, str(exc)
        event("refused")
        return
    event("accepted")  # the statistics show how often the promises below were checked
    assert_keeps_its_promises(config)
    assert config_from_dict(tomllib.loads(to_toml(config))) == config  # `config show` reads back


@settings(max_examples=300)
@given(WILD)
def test_anything_at_all_is_a_config_or_a_config_error(data):
    with contextlib.suppress(ConfigError):
        assert_keeps_its_promises(config_from_dict(data))


def corrupted(text: str) -> st.SearchStrategy[bytes]:
    raw = text.encode()
    return st.one_of(
        st.just(raw),
        st.integers(0, len(raw)).map(lambda n: raw[:n]),
        st.tuples(st.integers(0, max(len(raw) - 1, 0)), st.integers(0, 255)).map(
            lambda at: raw[:at[0]] + bytes([at[1]]) + raw[at[0] + 1:]),
        st.binary(max_size=64),
    )


@settings(max_examples=300)
@given(documents(wild=True).map(lambda d: _toml(d)).flatmap(corrupted))
def test_any_file_is_a_config_or_one_line_naming_it(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "focuslock.toml"
        path.write_bytes(content)
        try:
            assert_keeps_its_promises(load_config(path))
        except ConfigError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), str(exc)


def _toml(document: dict[str, Any]) -> str:
    """A generated document as TOML text: top-level scalars, then one [table] per table (None,
    which TOML lacks, is written as the bare word null: a syntax error)."""
    scalars = [f"{_key(k)} = {_value(v)}" for k, v in document.items() if not isinstance(v, dict)]
    tables = [f"[{_key(k)}]\n" + "\n".join(f"{_key(n)} = {_value(x)}" for n, x in v.items())
              for k, v in document.items() if isinstance(v, dict)]
    return "\n".join(scalars + tables) + "\n"


def _key(name: str) -> str:
    return json.dumps(name)  # a JSON string is a valid TOML basic string


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _key(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    return repr(value)
