"""The TOML config: defaults, typed values, documented settings with one range rule each, and
errors that name the key and the range.

The shipped example file is tested with the other deploy files (tests/deploy).
"""

import ast
import dataclasses
import importlib
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest

from controller.config import (
    HEARTBEAT_RANGE_S,
    MAX_FILE_BYTES,
    BoardBackend,
    Config,
    ConfigError,
    config_from_dict,
    load_config,
    offset_limit_um,
    setting_doc,
    setting_rule,
    with_offset,
)
from controller.hardware.rig import BACKENDS


def test_no_file_means_defaults():
    assert load_config(None) == Config()


def test_every_choice_of_a_closed_set_is_documented():
    """The example config prints each setting's doc: it must name every choice there is."""
    tables = [getattr(Config(), f.name) for f in fields(Config)]
    closed = 0
    for table in filter(is_dataclass, tables):
        hints = get_type_hints(type(table))
        for setting in fields(table):
            if get_origin(hints[setting.name]) is Literal:
                closed += 1
                for choice in get_args(hints[setting.name]):
                    assert f'"{choice}"' in setting_doc(setting), setting.name
    # camera.backend, camera.plane, board.backend, board.approach, illuminator backend,
    # orientation and colour, parallax.use
    assert closed == 8


def test_values_are_read_and_typed(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('log_dir = "/var/log/fl"\n[lock]\ngain = 1\noffset_um = -2.5\n'
                    '[camera]\nbackend = "picamera2"\n[board]\nbackend = "serial"\n')
    config = load_config(path)
    assert config.lock.gain == 1.0 and isinstance(config.lock.gain, float)
    assert config.lock.offset_um == -2.5
    assert config.camera.backend == "picamera2"
    assert config.log_dir == "/var/log/fl"
    assert config.lock.rate_hz == Config().lock.rate_hz  # untouched keys keep their defaults


@pytest.mark.parametrize(("data", "message"), [
    ({"lock": {"gain": 1.5}}, "lock.gain: must be in (0, 1]"),
    ({"lock": {"gain": 0}}, "lock.gain: must be in (0, 1]"),
    ({"lock": {"gian": 0.5}}, "lock.gian: unknown key"),
    ({"locks": {}}, "locks: unknown key"),
    ({"lock": 3}, "lock: must be a table"),
    ({"lock": {"in_tolerance_count": 2.5}}, "lock.in_tolerance_count: must be an integer"),
    ({"lock": {"rate_hz": "fast"}}, "lock.rate_hz: must be a number"),
    ({"lock": {"recover_from_lost": 1}}, "lock.recover_from_lost: must be true or false"),
    ({"lock": {"max_step_um": float("nan")}}, "lock.max_step_um: must be finite"),
    ({"gates": {"dark_fraction": 2}}, "gates.dark_fraction: must be in [0, 1]"),
    # the confidence threshold belongs to the model bundle it was calibrated for
    ({"gates": {"min_confidence": 0.4}}, "gates.min_confidence: unknown key"),
    ({"camera": {"backend": "webcam"}},
     "camera.backend: must be one of 'virtual', 'picamera2', got 'webcam'"),
    ({"camera": {"plane": "rgb"}}, "camera.plane: must be one of 'raw', 'luminance'"),
    ({"board": {"backend": 3}}, "board.backend: must be a string, got 3"),
    ({"optics": {"preset": "hubble"}}, "optics.preset: must be one of"),
    ({"board": {"backend": "serial"}}, "board.backend:"),
    ({"camera": {"backend": "picamera2"}}, "board.backend:"),
])
def test_bad_values_name_their_key(data, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert message in str(info.value)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[lock\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_config(broken)
    bad = tmp_path / "bad.toml"
    bad.write_text("[lock]\ngain = 7\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: lock\.gain"):
        load_config(bad)


def test_every_board_backend_the_config_accepts_has_a_rig_opener():
    assert set(BACKENDS) == set(get_args(BoardBackend))
    for target in BACKENDS.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), target


def test_every_setting_has_its_rule_and_every_table_its_key():
    """One range rule per setting (a bool or a closed set of choices is its own rule; the
    offset's is the lock window's), and each table's errors name the key the file uses."""
    config = Config()
    tables = {f.name: getattr(config, f.name) for f in fields(Config)
              if is_dataclass(getattr(config, f.name))}
    assert {name: getattr(table, "SECTION", None) for name, table in tables.items()} == {
        name: name for name in tables}
    settings = [(Config, f) for f in fields(Config) if f.name not in tables]
    settings += [(type(table), f) for table in tables.values() for f in fields(table)]
    unruled = []
    for kind, setting in settings:
        hint = get_type_hints(kind)[setting.name]
        if setting_rule(setting) is None and hint is not bool and get_origin(hint) is not Literal:
            unruled.append(setting.name)
    assert unruled == ["offset_um"]


BIG = 10**39  # a 40-digit integer


@pytest.mark.parametrize(("data", "message"), [
    ({"lock": {"rate_hz": 1e-300}}, "lock.rate_hz: must be in [0.01, 100] Hz, got 1e-300"),
    ({"lock": {"rate_hz": 1e300}}, "lock.rate_hz: must be in [0.01, 100] Hz, got 1e+300"),
    ({"camera": {"timeout_s": 1e300}}, "camera.timeout_s: must be in [0.05, 60] s"),
    ({"board": {"heartbeat_s": 1000}}, "board.heartbeat_s: must be in [0.2, 60] s, got 1000"),
    ({"board": {"heartbeat_s": 1e-6}}, "board.heartbeat_s: must be in [0.2, 60] s"),
    ({"board": {"steps_per_um": 1e300}}, "board.steps_per_um: must be in [0.1, 1000] steps/µm"),
    ({"board": {"travel_min_um": -1e300}}, "board.travel_min_um: must be in [-100000, 100000]"),
    ({"board": {"travel_max_um": 1e300}}, "board.travel_max_um: must be in [-100000, 100000]"),
    ({"lock": {"travel_window_um": 1e9}}, "lock.travel_window_um: must be in (0, 200000] µm"),
    ({"lock": {"travel_window_um": 5000}}, "lock.travel_window_um: must be at most the travel "
                                           "(2000 µm"),
    ({"focus": {"search_window_um": 2001}}, "focus.search_window_um: must be at most the travel"),
    ({"camera": {"exposure_us": 2**63 - 1}},
     "camera.exposure_us: must be in [1, 10000000] µs, got 9223372036854775807"),
    ({"camera": {"exposure_us": 3_000_000}},
     "camera.timeout_s: must be longer than the exposure (3 s), got 2"),
    ({"sim": {"frame_size": 1}}, "sim.frame_size: must be 0 or in [32, 2048] px, got 1"),
    ({"sim": {"frame_size": BIG}}, "sim.frame_size: must be 0 or in [32, 2048] px"),
    ({"lock": {"in_tolerance_count": BIG}}, "lock.in_tolerance_count: must be in [1, 1000]"),
    ({"lock": {"rate_hz": BIG}}, "lock.rate_hz: must be in [0.01, 100] Hz"),
    ({"lock": {"rate_hz": 10**400}},
     "lock.rate_hz: must be finite, got an integer of about 400 digits"),
    ({"sim": {"seed": -1}}, "sim.seed: must be in [0, 4294967295], got -1"),
    ({"sim": {"start_z_um": 1500}}, "sim.start_z_um: must be inside the travel [-1000, 1000] µm"),
    ({"lock": {"offset_um": 1e6}},
     "lock.offset_um: must be within ±50 µm (half of lock.travel_window_um), got 1e+06"),
    ({"lock": {"offset_um": -50.5}}, "lock.offset_um: must be within ±50 µm"),
    ({"lock": {"in_tolerance_count": True}}, "lock.in_tolerance_count: must be an integer"),
    ({"lock": {"rate_hz": False}}, "lock.rate_hz: must be a number, got False"),
    ({"service": {"host": ""}}, "service.host: must be text of 1 to 253 characters"),
    ({"service": {"port": 65536}}, "service.port: must be in [0, 65535], got 65536"),
    ({"log_dir": "runs\0"}, "log_dir: must be text of 1 to 4096 characters without NUL"),
    ({"model": {"bundle": "b" * 5000}}, "model.bundle: must be text of 0 to 4096 characters"),
    ({"lock": {7: 1}}, "lock: keys must be text, got 7"),
])
def test_nonsense_values_are_refused_naming_the_key_and_the_range(data, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_values_at_the_edges_of_their_ranges_are_accepted():
    config = config_from_dict({"lock": {"rate_hz": 100, "offset_um": -50.0},
                               "board": {"heartbeat_s": 0.2, "travel_min_um": -100000,
                                         "travel_max_um": 100000},
                               "focus": {"search_window_um": 200000},
                               "sim": {"frame_size": 32, "seed": 2**32 - 1}})
    assert config.lock.offset_um == -50.0 and config.focus.search_window_um == 200000.0


def test_a_config_changed_at_run_time_is_held_to_the_same_rules():
    config = Config()
    assert with_offset(config, 50.0).lock.offset_um == offset_limit_um(config.lock) == 50.0
    with pytest.raises(ConfigError, match=r"lock\.offset_um: must be within ±50 µm"):
        with_offset(config, 50.01)
    with pytest.raises(ConfigError, match=r"lock\.rate_hz: must be in \[0\.01, 100\] Hz"):
        dataclasses.replace(config.lock, rate_hz=0.0)


def test_the_heartbeat_range_is_one_the_board_accepts():
    """The board refuses a deadline outside its own range (firmware/focusboard/config.py)."""
    source = (Path(__file__).resolve().parents[2] / "firmware/focusboard/config.py").read_text()
    constants: dict[str, Any] = {
        node.targets[0].id: node.value.value for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)}
    low_s, high_s = HEARTBEAT_RANGE_S
    assert constants["HEARTBEAT_MIN_MS"] <= low_s * 1000 < high_s * 1000 \
        <= constants["HEARTBEAT_MAX_MS"]


def test_file_problems_are_one_line_naming_the_file(tmp_path):
    cases = {
        "binary.toml": b"\x00\x01\x02TOML?",
        "latin1.toml": "[lock]\n# d\xe9j\xe0 vu\n".encode("latin-1"),
        "huge.toml": b"#" * (MAX_FILE_BYTES + 1),
        "deep.toml": b"a = " + b"[" * 100_000 + b"]" * 100_000,
        "digits.toml": b"[lock]\nrate_hz = " + b"9" * 5000 + b"\n",
    }
    expected = {"binary.toml": "a binary file", "latin1.toml": "not UTF-8 text (byte 0xe9",
                "huge.toml": "larger than 1 MiB", "deep.toml": "not a config TOML can hold",
                "digits.toml": "not a config TOML can hold"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ConfigError) as info:
            load_config(tmp_path / name)
        assert str(info.value).startswith(f"{tmp_path / name}: {expected[name]}"), name
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="a directory, not a config file"):
        load_config(tmp_path)
    # opens, but its first bytes cannot be read (EIO), even by root:
    with pytest.raises(ConfigError, match=r"^/proc/self/mem: cannot read the config file"):
        load_config("/proc/self/mem")


def test_a_key_that_is_not_a_bare_word_is_quoted_in_its_one_line_error():
    """Found by tests/test_config_properties.py: a TOML key may hold a line break."""
    with pytest.raises(ConfigError) as info:
        config_from_dict({"lock": {"ga\nin": 1}})
    assert str(info.value).startswith("lock.'ga\\nin': unknown key")
