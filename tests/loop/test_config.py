"""The TOML config: defaults, typed values, documented settings, and errors that name the key.

The shipped example file is tested with the other deploy files (tests/deploy).
"""

import importlib
from dataclasses import fields, is_dataclass
from typing import Literal, get_args, get_origin, get_type_hints

import pytest

from controller.config import (
    BoardBackend,
    Config,
    ConfigError,
    config_from_dict,
    load_config,
    setting_doc,
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
    assert closed == 3  # camera.backend, camera.plane, board.backend


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
