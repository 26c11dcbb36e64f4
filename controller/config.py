"""The box's TOML configuration: typed, frozen settings with a default for every value.

Every command takes the same file (``--config PATH``); a missing file section means "defaults".
An unknown key, a wrong type or an out-of-range value is a ConfigError that names the key path
(``lock.gain: must be in (0, 1]``), because a silently ignored typo in a focus lock is a crashed
objective days later. Units follow ../shared/CONVENTIONS.md: µm, seconds, Hz.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

from controller.errors import FocuslockError
from controller.optics import PRESETS


class ConfigError(FocuslockError, ValueError):
    """A configuration file or value the box refuses; the message names the key path."""


Check = tuple[Callable[[Any], bool], str]


def _positive() -> Check:
    return (lambda v: v > 0, "must be > 0")


def _non_negative() -> Check:
    return (lambda v: v >= 0, "must be >= 0")


def _unit_interval_open_low() -> Check:
    return (lambda v: 0 < v <= 1, "must be in (0, 1]")


def _fraction() -> Check:
    return (lambda v: 0 <= v <= 1, "must be in [0, 1]")


def _one_of(*choices: str) -> Check:
    return (lambda v: v in choices, f"must be one of {', '.join(repr(c) for c in choices)}")


def _setting(default: Any, *checks: Check, doc: str = "") -> Any:
    return field(default=default, metadata={"checks": checks, "doc": doc})


@dataclass(frozen=True)
class OpticsSettings:
    preset: str = _setting("paper", _one_of(*PRESETS), doc="optical system (controller.optics)")


@dataclass(frozen=True)
class CameraSettings:
    backend: str = _setting("virtual", _one_of("virtual", "picamera2"))
    exposure_us: int = _setting(5000, _positive(), doc="fixed exposure; AE is always off")
    analogue_gain: float = _setting(1.0, (lambda v: v >= 1, "must be >= 1"))
    timeout_s: float = _setting(2.0, _positive(), doc="no frame within this -> camera fault")
    camera_index: int = _setting(0, _non_negative(), doc="picamera2: which camera")
    plane: str = _setting("raw", _one_of("raw", "luminance"),
                          doc="picamera2: the raw sensor plane or the ISP's luminance")


@dataclass(frozen=True)
class BoardSettings:
    backend: str = _setting(
        "virtual", _one_of("virtual", "firmware-sim", "serial"),
        doc="virtual: in-process drive; firmware-sim: the real firmware under MicroPython on a "
            "pty (the digital twin); serial: the focus board on USB",
    )
    port: str = _setting("", doc="serial device or udev symlink; empty: find by serial number")
    serial_number: str = _setting("", doc="USB serial number of the board to use")
    steps_per_um: float = _setting(10.0, _positive(), doc="motor steps per µm of focus travel")
    heartbeat_s: float = _setting(0.5, _positive(), doc="board stops when the host falls silent")
    travel_min_um: float = _setting(-1000.0, doc="soft limit the board itself enforces")
    travel_max_um: float = _setting(1000.0, doc="soft limit the board itself enforces")


@dataclass(frozen=True)
class ModelSettings:
    bundle: str = _setting("", doc="model bundle path; empty: the bundled default model")


@dataclass(frozen=True)
class LockSettings:
    """Continuous lock: the control law and when the lock calls itself locked or lost."""

    rate_hz: float = _setting(2.0, _positive(), doc="steps per second")
    offset_um: float = _setting(0.0, doc="hold z = z_focus + offset_um")
    gain: float = _setting(0.6, _unit_interval_open_low(),
                           doc="fraction of a small error corrected per step (filters noise)")
    capture_gain: float = _setting(0.9, _unit_interval_open_low(),
                                   doc="fraction of a large error corrected (a knock, a start)")
    capture_beyond_um: float = _setting(2.0, _non_negative(),
                                        doc="errors larger than this are large")
    dead_band_um: float = _setting(0.1, _non_negative(), doc="no move for smaller errors")
    max_step_um: float = _setting(10.0, _positive(), doc="largest single correction")
    travel_window_um: float = _setting(
        100.0, _positive(), doc="the lock stays within ± half of this around where it started"
    )
    tolerance_um: float = _setting(0.5, _positive(), doc="an in-tolerance reading")
    in_tolerance_count: int = _setting(3, _positive(), doc="consecutive readings -> locked")
    rejections_before_lost: int = _setting(5, _positive(), doc="consecutive rejections -> lost")
    recover_from_lost: bool = _setting(
        True, doc="resume (moving only on trusted readings) once frames are trusted again"
    )


@dataclass(frozen=True)
class FocusSettings:
    """Focus now: iterate until within tolerance, at most max_steps moves."""

    max_steps: int = _setting(5, _positive())
    tolerance_um: float = _setting(0.5, _positive())
    gain: float = _setting(1.0, _unit_interval_open_low())
    max_step_um: float = _setting(40.0, _positive(), doc="largest single move")


@dataclass(frozen=True)
class GateSettings:
    """Thresholds beyond which a frame is not trusted (no move). The confidence threshold is
    not here: it belongs to the model it was calibrated for (record.json ``min_confidence``)."""

    dark_fraction: float = _setting(
        0.02, _fraction(), doc="mean below this fraction of full scale: too dark"
    )
    saturated_fraction: float = _setting(
        0.01, _fraction(), doc="more pixels than this at full scale: saturated"
    )
    min_contrast: float = _setting(
        0.004, _non_negative(),
        doc="neighbouring 16x16-pixel block means differ less than this: empty field",
    )
    max_frame_age_s: float = _setting(1.0, _positive(), doc="older frames are stale")


@dataclass(frozen=True)
class SimSettings:
    """The simulated microscope (sample, focus, stage) behind the virtual and firmware-sim
    backends; a real box ignores it."""

    sample: str = _setting("sparse-cells", doc="simulator sample type")
    frame_size: int = _setting(0, _non_negative(),
                               doc="square frames of this many pixels; 0: the optics preset's")
    seed: int = _setting(0)
    focus_z_um: float = _setting(0.0, doc="true focal plane in drive coordinates")
    start_z_um: float = _setting(8.0, doc="where the drive starts")
    drift_um_per_min: float = _setting(0.0, doc="thermal drift of the focal plane")
    random_walk_um_per_sqrt_s: float = _setting(0.0, _non_negative())
    backlash_um: float = _setting(0.0, _non_negative())
    settle_s: float = _setting(0.05, _non_negative(), doc="mechanics ring-down after a move")


@dataclass(frozen=True)
class ServiceSettings:
    """``focuslock serve``: where the HTTP API listens and what it does at start."""

    host: str = _setting("127.0.0.1", (lambda v: v != "", "must not be empty"),
                         doc="address to listen on; 127.0.0.1 keeps the API on this machine")
    port: int = _setting(8470, (lambda v: 0 <= v <= 65535, "must be in [0, 65535]"),
                         doc="TCP port; 0: any free port")
    autostart_lock: bool = _setting(False, doc="start the focus lock as soon as the service runs")


@dataclass(frozen=True)
class Config:
    optics: OpticsSettings = field(default_factory=OpticsSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    board: BoardSettings = field(default_factory=BoardSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    lock: LockSettings = field(default_factory=LockSettings)
    focus: FocusSettings = field(default_factory=FocusSettings)
    gates: GateSettings = field(default_factory=GateSettings)
    sim: SimSettings = field(default_factory=SimSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    log_dir: str = _setting("focuslock-runs", doc="where run logs, CSVs and plots go")
    log_max_mb: float = _setting(50.0, _positive(), doc="a step log rotates past this size")
    log_keep: int = _setting(4, _positive(), doc="rotated step logs kept (oldest dropped)")

    def __post_init__(self) -> None:
        if not self.board.travel_min_um < self.board.travel_max_um:
            raise ConfigError("board.travel_max_um: must be greater than board.travel_min_um")
        if self.camera.backend == "virtual" and self.board.backend == "serial":
            raise ConfigError("board.backend: 'serial' drives a real microscope, which the "
                              "virtual camera cannot see; use camera.backend = 'picamera2'")
        if self.camera.backend == "picamera2" and self.board.backend != "serial":
            raise ConfigError(f"board.backend: the Pi camera needs the real board ('serial'), "
                              f"got {self.board.backend!r}")


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read a TOML file (None: all defaults)."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Build and validate a Config from parsed TOML (or any nested mapping)."""
    return _build(Config, data, "")


def _build(cls: type, data: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a table, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for name, value in data.items():
        kind = hints[name]
        key = f"{prefix}{name}"
        if is_dataclass(kind):
            values[name] = _build(kind, value, f"{key}.")  # type: ignore[arg-type]
            continue
        values[name] = _coerce(key, kind, value)
        for predicate, message in known[name].metadata.get("checks", ()):
            if not predicate(values[name]):
                raise ConfigError(f"{key}: {message}, got {value!r}")
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _coerce(key: str, kind: Any, value: Any) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: must be finite, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string, got {value!r}")
        return value
    raise TypeError(f"config field {key} has unsupported type {kind!r}")  # a bug, not user input
