"""The box's TOML configuration: typed, frozen settings with a default for every value.

Every command takes the same file (``--config PATH``); a missing file section means "defaults".
An unknown key, a wrong type or an out-of-range value is a ConfigError that names the key path
(``lock.gain: must be in (0, 1]``), because a silently ignored typo in a focus lock is a crashed
objective days later. Units follow docs/conventions.md: µm, seconds, Hz.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

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


def _setting(default: Any, *checks: Check, doc: str) -> Any:
    """A setting: its default, its checks, and the sentence deploy/focuslock.example.toml
    prints beside it (``focuslock config example`` writes that file from these)."""
    return field(default=default, metadata={"checks": checks, "doc": doc})


def setting_doc(setting: Field[Any]) -> str:
    """The doc of one setting of a settings table ('' for a table of the Config)."""
    return str(setting.metadata.get("doc", ""))


# The closed sets of choices; a Literal keeps each value the plain string the TOML file has.
CameraBackend = Literal["virtual", "picamera2"]
CameraPlane = Literal["raw", "luminance"]
BoardBackend = Literal["virtual", "firmware-sim", "serial"]


@dataclass(frozen=True)
class OpticsSettings:
    """The optical system the box has (the presets are in controller/optics.py)."""

    preset: str = _setting("paper", _one_of(*PRESETS),
                           doc='"paper" (20x/0.5, 2048² sCMOS) or "pi-hq" (Pi HQ, 10x/0.25)')


@dataclass(frozen=True)
class CameraSettings:
    """The autofocus camera."""

    backend: CameraBackend = _setting(
        "virtual", doc='"virtual" (the simulated microscope) or "picamera2" (Pi camera)')
    exposure_us: int = _setting(5000, _positive(), doc="fixed; auto exposure is always off")
    analogue_gain: float = _setting(1.0, (lambda v: v >= 1, "must be >= 1"), doc="fixed; >= 1")
    timeout_s: float = _setting(2.0, _positive(),
                                doc="no frame within this: camera fault, the loop stops safely")
    camera_index: int = _setting(0, _non_negative(), doc="picamera2: which camera")
    plane: CameraPlane = _setting(
        "raw", doc='picamera2: "raw" sensor pixels or the ISP\'s "luminance"')


@dataclass(frozen=True)
class BoardSettings:
    """The focus drive and the LED array: one board, or their simulated stand-ins."""

    backend: BoardBackend = _setting(
        "virtual",
        doc='"virtual" (in-process), "firmware-sim" (the real firmware under MicroPython on a '
            'pty: the digital twin) or "serial" (the focus board on USB)',
    )
    port: str = _setting("", doc='e.g. "/dev/focusboard" (udev symlink); empty: by serial number')
    serial_number: str = _setting("", doc="USB serial number of the board")
    steps_per_um: float = _setting(10.0, _positive(), doc="motor steps per µm of focus travel")
    heartbeat_s: float = _setting(
        0.5, _positive(), doc="the board stops and turns LEDs off when the host falls silent")
    travel_min_um: float = _setting(-1000.0, doc="soft travel limit, enforced by the board itself")
    travel_max_um: float = _setting(1000.0, doc="soft travel limit, enforced by the board itself")


@dataclass(frozen=True)
class ModelSettings:
    """The model bundle that reads the distance to focus (and carries its own confidence
    threshold)."""

    bundle: str = _setting("", doc="model bundle directory; empty: the bundled default model")


@dataclass(frozen=True)
class LockSettings:
    """Continuous lock: the control law and when the lock calls itself locked or lost."""

    rate_hz: float = _setting(2.0, _positive(), doc="lock steps per second")
    offset_um: float = _setting(0.0, doc="hold z = z_focus + offset_um")
    gain: float = _setting(0.6, _unit_interval_open_low(),
                           doc="fraction of a small error corrected per step (filters noise)")
    capture_gain: float = _setting(
        0.9, _unit_interval_open_low(),
        doc="fraction of a large error corrected (after a knock, at start)")
    capture_beyond_um: float = _setting(2.0, _non_negative(),
                                        doc="errors larger than this are large")
    dead_band_um: float = _setting(0.1, _non_negative(), doc="no move for smaller errors")
    max_step_um: float = _setting(10.0, _positive(), doc="largest single correction")
    travel_window_um: float = _setting(
        100.0, _positive(), doc="never leave ± half of this around where the lock started"
    )
    tolerance_um: float = _setting(0.5, _positive(),
                                   doc='a reading within this is "in tolerance"')
    in_tolerance_count: int = _setting(
        3, _positive(), doc='consecutive in-tolerance readings before "locked"')
    rejections_before_lost: int = _setting(
        5, _positive(), doc='consecutive untrusted readings before "lost" (no moves)')
    recover_from_lost: bool = _setting(
        True, doc="resume once readings are trusted again (moving on trusted ones only)"
    )


@dataclass(frozen=True)
class FocusSettings:
    """Focus now: iterate until within tolerance, at most max_steps moves."""

    max_steps: int = _setting(5, _positive(), doc="moves at most")
    tolerance_um: float = _setting(0.5, _positive(), doc="done once a reading is within this")
    gain: float = _setting(1.0, _unit_interval_open_low(),
                           doc="fraction of the error corrected per move")
    max_step_um: float = _setting(40.0, _positive(), doc="largest single move")
    search_window_um: float = _setting(
        80.0, _positive(),
        doc="never leaves ± half of this around where it started (a little more than the "
            "model's ±30 µm range)")


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

    sample: str = _setting("sparse-cells", doc='simulated sample: "sparse-cells" or "dense-cells"')
    frame_size: int = _setting(0, _non_negative(),
                               doc="square frames of this many pixels; 0: the optics preset's")
    seed: int = _setting(0, doc="seed of the sample, the focal plane's random walk and the "
                                "sensor noise")
    focus_z_um: float = _setting(0.0, doc="true focal plane, in drive coordinates")
    start_z_um: float = _setting(8.0, doc="where the drive starts")
    drift_um_per_min: float = _setting(0.0, doc="thermal drift of the focal plane")
    random_walk_um_per_sqrt_s: float = _setting(0.0, _non_negative(),
                                                doc="random walk of the focal plane")
    backlash_um: float = _setting(0.0, _non_negative(),
                                  doc="play of the focus mechanism on reversal")
    settle_s: float = _setting(0.05, _non_negative(), doc="mechanics ring-down after a move")


@dataclass(frozen=True)
class ServiceSettings:
    """``focuslock serve``: where the HTTP API and the dashboard listen, what they do at start."""

    host: str = _setting("127.0.0.1", (lambda v: v != "", "must not be empty"),
                         doc='listen address; "0.0.0.0" exposes the API to the network')
    port: int = _setting(8470, (lambda v: 0 <= v <= 65535, "must be in [0, 65535]"),
                         doc="TCP port; 0: any free port")
    autostart_lock: bool = _setting(False, doc="true: start the focus lock when the service starts")


@dataclass(frozen=True)
class Config:
    """The whole file: where run logs go, then one table per part of the box."""

    log_dir: str = _setting("focuslock-runs", doc="run logs (JSON lines), CSVs and plots")
    log_max_mb: float = _setting(50.0, _positive(),
                                 doc="a step log rotates past this size (about a day at 2 Hz)")
    log_keep: int = _setting(4, _positive(), doc="rotated step logs kept; the oldest is dropped")
    optics: OpticsSettings = field(default_factory=OpticsSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    board: BoardSettings = field(default_factory=BoardSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    lock: LockSettings = field(default_factory=LockSettings)
    focus: FocusSettings = field(default_factory=FocusSettings)
    gates: GateSettings = field(default_factory=GateSettings)
    sim: SimSettings = field(default_factory=SimSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)

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
    if kind is str or get_origin(kind) is Literal:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string, got {value!r}")
        choices = get_args(kind)
        if choices and value not in choices:
            raise ConfigError(f"{key}: must be one of {', '.join(map(repr, choices))}, "
                              f"got {value!r}")
        return value
    raise TypeError(f"config field {key} has unsupported type {kind!r}")  # a bug, not user input
