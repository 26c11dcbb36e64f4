"""The box's TOML configuration: typed, frozen settings with a default and one range rule each.

Every command takes the same file (``--config PATH``); a missing file section means "defaults".
An unknown key, a wrong type or an out-of-range value is a ConfigError that names the key path
and the allowed range (``lock.gain: must be in (0, 1], got 1.5``), because a silently ignored
typo in a focus lock is a crashed objective days later. Units follow docs/conventions.md: µm,
seconds, Hz.

What is checked where:
- *here, whenever a settings table is made* (from a file, or by ``dataclasses.replace`` at run
  time): pure and cheap checks only. Types, each setting's range rule
  (controller/setting_rules.py; the example config prints the ranges) and the rules between
  settings in ``Config.__post_init__`` (the offset inside the lock's window: ``offset_limit_um``,
  which the HTTP API uses too; the windows inside the travel; the exposure inside the camera
  timeout).
- *at ``focuslock config check`` and at start* (controller/preflight.py): what needs the
  filesystem, the network or the simulator: the model bundle, the sample kind, the log folder,
  the listen address.

Longer than most modules because it is the one table of every setting (its default, range rule
and doc, which the example config prints); the rules live in setting_rules.py, the machine's
checks in preflight.py.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin, get_type_hints

from controller.errors import FocuslockError
from controller.optics import PRESETS
from controller.setting_rules import HostNames, OneOf, Rule, Text, Within, shown


class ConfigError(FocuslockError, ValueError):
    """A configuration file or value the box refuses; the message names the key path."""


MAX_FILE_BYTES = 1 << 20  # a config is a few kB; anything larger is not one (or /dev/zero)
BARE_KEY = re.compile(r"[A-Za-z0-9_-]{1,60}")  # a key shown as is; others quoted, as repr does
TRAVEL_BOUND_UM = 100_000.0  # ±10 cm: more than any focus drive has, small enough to stay exact
# The board's own deadline range is 20..60000 ms (firmware/focusboard/config.py); the host beats
# every quarter deadline and resends a lost beat after 0.1 s (LinkSettings), so a deadline below
# 0.2 s faults the board on one lost packet.
HEARTBEAT_RANGE_S = (0.2, 60.0)
NO_MODEL = "none"  # model.bundle: no network (the parallax cue alone)
INSTALLED = "installed"  # model.bundle: the store's current bundle (docs/calibrate.md)
UNIT_INTERVAL = Within(0, 1, open_low=True)  # gains: a fraction of the error, never nothing
FRACTION = Within(0, 1)
# The probe that finds an ambiguous sign (docs/loop.md, "The sign is never guessed"), one per mode
# as each has its own largest step and window
PROBE_RANGE = Within(0, 100, "µm", open_low=True)
PROBE_DOC = ("a reading whose sign is ambiguous is probed by a move of this many µm; at most "
             "max_step_um")


def _setting(default: Any, rule: Rule | None = None, *, doc: str) -> Any:
    """A setting: its default, its range rule, and the sentence deploy/focuslock.example.toml
    prints beside it (``focuslock config example`` writes that file from these)."""
    return field(default=default, metadata={"rule": rule, "doc": doc})


def setting_rule(setting: Field[Any]) -> Rule | None:
    """The range rule of one setting (None: its type says it all, as for a bool or a choice)."""
    rule: Rule | None = setting.metadata.get("rule")
    return rule


def setting_doc(setting: Field[Any]) -> str:
    """The doc of one setting of a settings table ('' for a table of the Config)."""
    return str(setting.metadata.get("doc", ""))


class _Table:
    """A settings table: every setting is held to its rule whenever the table is made."""

    SECTION: ClassVar[str]  # the table's key in the file ("" for the top level)

    def __post_init__(self) -> None:
        for setting in fields(self):  # type: ignore[arg-type]
            rule = setting_rule(setting)
            value = getattr(self, setting.name)
            if rule is not None and not rule.admits(value):
                raise ConfigError(f"{self.key(setting.name)}: must be {rule.requirement}, "
                                  f"got {shown(value)}")

    @classmethod
    def key(cls, name: str) -> str:
        """The key path of one of this table's settings, as the file and errors name it."""
        return f"{cls.SECTION}.{name}" if cls.SECTION else name


# The closed sets of choices; a Literal keeps each value the plain string the TOML file has.
CameraBackend = Literal["virtual", "picamera2"]
CameraPlane = Literal["raw", "luminance"]
BoardBackend = Literal["virtual", "firmware-sim", "serial", "sangaboard", "sangaboard-sim"]
FocusApproach = Literal["up", "down"]
ParallaxUse = Literal["auto", "off"]
IlluminatorBackend = Literal["board", "illuminate"]
# How the illuminate array's own axes lie in the image: "x,y" puts its x along image columns and
# its y along rows; a leading "-" mirrors that axis, "y,x" swaps them (a turned array).
ArrayOrientation = Literal["x,y", "-x,y", "x,-y", "-x,-y", "y,x", "-y,x", "y,-x", "-y,-x"]
IlluminateColour = Literal["red", "green", "blue", "white"]


@dataclass(frozen=True)
class OpticsSettings(_Table):
    """The optical system the box has (the presets are in controller/optics.py)."""

    SECTION = "optics"
    preset: str = _setting("paper", OneOf(tuple(PRESETS)),
                           doc='"paper" (20x/0.5, 2048² sCMOS) or "pi-hq" (Pi HQ, 10x/0.25)')
    led_distance_mm: float = _setting(
        0.0, Within(1, 1000, "mm", or_zero=True),
        doc="autofocus LED's distance below the sample, for the alignment check's advice in mm "
            "(focuslock check-alignment); 0: the preset's LED array's")


@dataclass(frozen=True)
class CameraSettings(_Table):
    """The autofocus camera."""

    SECTION = "camera"
    backend: CameraBackend = _setting(
        "virtual", doc='"virtual" (the simulated microscope) or "picamera2" (Pi camera)')
    exposure_us: int = _setting(5000, Within(1, 10_000_000, "µs"),
                                doc="fixed; auto exposure is always off")
    analogue_gain: float = _setting(1.0, Within(1, 64), doc="fixed")
    timeout_s: float = _setting(2.0, Within(0.05, 60, "s"),
                                doc="no frame within this: camera fault, the loop stops safely; "
                                    "longer than the exposure")
    camera_index: int = _setting(0, Within(0, 15), doc="picamera2: which camera")
    plane: CameraPlane = _setting(
        "raw", doc='picamera2: "raw" sensor pixels or the ISP\'s "luminance"')


@dataclass(frozen=True)
class BoardSettings(_Table):
    """The focus drive and the LED array: one board, or their simulated stand-ins."""

    SECTION = "board"
    backend: BoardBackend = _setting(
        "virtual",
        doc='"virtual" (in-process), "firmware-sim" (the real firmware under MicroPython on a '
            'pty: the digital twin), "serial" (the focus board on USB), "sangaboard" (an '
            'OpenFlexure Sangaboard\'s z as the focus drive: docs/sangaboard.md) or '
            '"sangaboard-sim" (a fake Sangaboard on a pty driving the virtual microscope)',
    )
    port: str = _setting("", Text(),
                         doc='e.g. "/dev/focusboard" (udev symlink); empty: by serial number')
    serial_number: str = _setting("", Text(), doc="USB serial number of the board")
    # 1000 steps/µm over ±100000 µm stays far inside the protocol's 32-bit step counts
    steps_per_um: float = _setting(10.0, Within(0.1, 1000, "steps/µm"),
                                   doc="motor steps per µm of focus travel")
    heartbeat_s: float = _setting(
        0.5, Within(*HEARTBEAT_RANGE_S, "s"),
        doc="the board stops and turns LEDs off when the host falls silent this long")
    travel_min_um: float = _setting(-1000.0, Within(-TRAVEL_BOUND_UM, TRAVEL_BOUND_UM, "µm"),
                                    doc="soft travel limit, enforced by the board itself")
    travel_max_um: float = _setting(1000.0, Within(-TRAVEL_BOUND_UM, TRAVEL_BOUND_UM, "µm"),
                                    doc="soft travel limit, enforced by the board itself; "
                                        "above travel_min_um")
    backlash_um: float = _setting(0.0, Within(0, 1000, "µm"),
                                  doc="sangaboard: a move against `approach` overshoots by "
                                      "this and comes back; 0: no overshoot")
    approach: FocusApproach = _setting(
        "up", doc='sangaboard: the direction every move ends in ("up" or "down")')


@dataclass(frozen=True)
class IlluminatorSettings(_Table):
    """What lights the sample: the focus board's LEDs, or an illuminate LED array
    (docs/illuminate.md) on its own USB port."""

    SECTION = "illuminator"
    backend: IlluminatorBackend = _setting(
        "board", doc='"board" (the focus board\'s LEDs, or their simulated stand-in) or '
                     '"illuminate" (a Waller-lab illuminate LED array; on the simulated '
                     'backends a fake one behind a pty)')
    port: str = _setting("", Text(), doc='illuminate: e.g. "/dev/ttyACM0"; empty: by serial '
                                         'number')
    serial_number: str = _setting("", Text(), doc="illuminate: USB serial number of its Teensy")
    na_tolerance: float = _setting(
        0.03, Within(0.001, 0.2),
        doc="illuminate: a pattern's LED is lit on the array's nearest LED only this close in NA")
    orientation: ArrayOrientation = _setting(
        "x,y", doc='illuminate: which of its axes runs along image columns, then rows: "x,y", '
                   '"-x,y", "x,-y", "-x,-y" (mirrored), "y,x", "-y,x", "y,-x", "-y,-x" (turned)')
    colour: IlluminateColour = _setting(
        "green", doc='illuminate: the emitters lit: "red", "green", "blue" or "white" (all three)')


@dataclass(frozen=True)
class ModelSettings(_Table):
    """The model bundle that reads the distance to focus (and carries its own confidence
    threshold)."""

    SECTION = "model"
    bundle: str = _setting("", Text(),
                           doc="model bundle directory; empty: the bundled default model; "
                               f"{INSTALLED!r}: the bundle installed in model.store (its "
                               f"current link; the bundled default while none is); "
                               f"{NO_MODEL!r}: no network, the parallax cue alone")
    store: str = _setting("focuslock-models", Text(required=True),
                          doc="installed model bundles (focuslock model install, calibrate): "
                              "one folder each, and the links current and previous")



@dataclass(frozen=True)
class ParallaxSettings(_Table):
    """The parallax cue (docs/parallax.md): a signed defocus from two illumination angles, where
    the optics preset has two parallax views, fused with the network's reading."""

    SECTION = "parallax"
    use: ParallaxUse = _setting("auto", doc='"auto": read the parallax cue where the optics '
                                            'preset has parallax views; "off": never')
    calibration: str = _setting(
        "", Text(), doc="the cue's calibration (focuslock parallax calibrate STACK); empty: the "
                        "optics' geometry, uncalibrated")
    sign_margin_um: float = _setting(2.0, Within(0, 30, "µm"),
                                     doc="within this of focus neither cue is asked for the sign")
    agree_um: float = _setting(2.0, Within(0, 30, "µm"),
                               doc="the network and the parallax cue agree within this ...")
    agree_fraction: float = _setting(0.25, FRACTION,
                                     doc="... or within this fraction of the parallax reading")


@dataclass(frozen=True)
class LockSettings(_Table):
    """Continuous lock: the control law and when the lock calls itself locked or lost."""

    SECTION = "lock"
    rate_hz: float = _setting(2.0, Within(0.01, 100, "Hz"), doc="lock steps per second")
    offset_um: float = _setting(0.0, doc="hold z = z_focus + offset_um; within ± half of "
                                         "travel_window_um")
    gain: float = _setting(0.6, UNIT_INTERVAL,
                           doc="fraction of a small error corrected per step (filters noise)")
    capture_gain: float = _setting(
        0.9, UNIT_INTERVAL, doc="fraction of a large error corrected (after a knock, at start)")
    capture_beyond_um: float = _setting(2.0, Within(0, 1000, "µm"),
                                        doc="errors larger than this are large")
    dead_band_um: float = _setting(0.1, Within(0, 100, "µm"), doc="no move for smaller errors")
    max_step_um: float = _setting(10.0, Within(0, 1000, "µm", open_low=True),
                                  doc="largest single correction")
    probe_um: float = _setting(3.0, PROBE_RANGE, doc=PROBE_DOC)
    travel_window_um: float = _setting(
        100.0, Within(0, 2 * TRAVEL_BOUND_UM, "µm", open_low=True),
        doc="never leave ± half of this around where the lock started; at most the travel")
    tolerance_um: float = _setting(0.5, Within(0, 100, "µm", open_low=True),
                                   doc='a reading within this is "in tolerance"')
    in_tolerance_count: int = _setting(
        3, Within(1, 1000), doc='consecutive in-tolerance readings before "locked"')
    rejections_before_lost: int = _setting(
        5, Within(1, 1000), doc='consecutive untrusted readings before "lost" (no moves)')
    recover_from_lost: bool = _setting(
        True, doc="resume once readings are trusted again (moving on trusted ones only)"
    )


def offset_limit_um(lock: LockSettings) -> float:
    """The largest ``|offset_um|`` the lock may hold: half its travel window, so the held z
    stays inside the window. The config's rule and the HTTP API's cap are this one number."""
    return lock.travel_window_um / 2


def with_offset(config: Config, offset_um: float) -> Config:
    """``config`` holding ``offset_um`` instead, held to the file's own rule (ConfigError)."""
    return replace(config, lock=replace(config.lock, offset_um=offset_um))


@dataclass(frozen=True)
class FocusSettings(_Table):
    """Focus now: iterate until within tolerance, at most max_steps moves."""

    SECTION = "focus"
    max_steps: int = _setting(
        7, Within(1, 100),
        doc="moves at most: room for a probe, two corrections and the finish's three, and one "
            "more (with 5 the finish was skipped after a third approach move: docs/loop.md)")
    tolerance_um: float = _setting(0.5, Within(0, 100, "µm", open_low=True),
                                   doc="done once a reading is within this")
    gain: float = _setting(1.0, UNIT_INTERVAL, doc="fraction of the error corrected per move")
    max_step_um: float = _setting(40.0, Within(0, 1000, "µm", open_low=True),
                                  doc="largest single move")
    probe_um: float = _setting(3.0, PROBE_RANGE, doc=PROBE_DOC)
    search_window_um: float = _setting(
        80.0, Within(0, 2 * TRAVEL_BOUND_UM, "µm", open_low=True),
        doc="never leaves ± half of this around where it started (a little more than the "
            "model's ±30 µm range); at most the travel")
    sharpness_finish_um: float = _setting(
        1.5, Within(0, 10, "µm"),
        doc="once the model puts focus within this, finish on the sharpness peak of the "
            "half-annulus pattern, the ground truth's focus (two or three more moves; a lock "
            "started after it holds that plane; 0: off; docs/loop.md); with sharpness_step_um "
            "at most probe_um")
    sharpness_step_um: float = _setting(
        1.5, Within(0, 10, "µm", open_low=True),
        doc="the finish measures the sharpness this far either side of the model's focus")


@dataclass(frozen=True)
class GateSettings(_Table):
    """Thresholds beyond which a frame is not trusted (no move). The confidence threshold is
    not here: it belongs to the model it was calibrated for (record.json ``min_confidence``)."""

    SECTION = "gates"
    dark_fraction: float = _setting(
        0.02, FRACTION, doc="mean below this fraction of full scale: too dark"
    )
    saturated_fraction: float = _setting(
        0.01, FRACTION, doc="more pixels than this at full scale: saturated"
    )
    min_contrast: float = _setting(
        0.004, FRACTION,
        doc="neighbouring 16x16-pixel block means differ less than this: empty field",
    )
    max_frame_age_s: float = _setting(1.0, Within(0, 60, "s", open_low=True),
                                      doc="older frames are stale")
    expected_error_um: float = _setting(
        1.0, Within(0, 30, "µm"),
        doc="a reading's expected error where the model states none: a probe decides a sign "
            "only by more than the two readings' expected errors")


# Simulated frames: no smaller than a useful feature patch, no larger than the largest camera
# a preset has (2048²): one such field already takes 64 MiB per complex plane.
SIM_FRAME_RANGE_PX = (32, 2048)


@dataclass(frozen=True)
class SimSettings(_Table):
    """The simulated microscope (sample, focus, stage) behind the virtual and firmware-sim
    backends; a real box ignores it."""

    SECTION = "sim"
    sample: str = _setting("sparse-cells", Text(required=True),
                           doc='simulated sample: "sparse-cells" or "dense-cells"')
    frame_size: int = _setting(0, Within(*SIM_FRAME_RANGE_PX, "px", or_zero=True),
                               doc="square frames of this many pixels; 0: the optics preset's")
    seed: int = _setting(0, Within(0, 2**32 - 1),
                         doc="seed of the sample, the focal plane's random walk and the sensor "
                             "noise")
    focus_z_um: float = _setting(0.0, Within(-TRAVEL_BOUND_UM, TRAVEL_BOUND_UM, "µm"),
                                 doc="true focal plane, in drive coordinates; inside the travel")
    start_z_um: float = _setting(8.0, Within(-TRAVEL_BOUND_UM, TRAVEL_BOUND_UM, "µm"),
                                 doc="where the drive starts; inside the travel")
    drift_um_per_min: float = _setting(0.0, Within(-100, 100, "µm/min"),
                                       doc="thermal drift of the focal plane")
    random_walk_um_per_sqrt_s: float = _setting(0.0, Within(0, 10, "µm/√s"),
                                                doc="random walk of the focal plane")
    backlash_um: float = _setting(0.0, Within(0, 100, "µm"),
                                  doc="play of the focus mechanism on reversal")
    settle_s: float = _setting(0.05, Within(0, 10, "s"), doc="mechanics ring-down after a move")
    led_shift_na_x: float = _setting(0.0, Within(-0.1, 0.1, "NA"),
                                     doc="the LEDs sit this far off their nominal NA along x "
                                         "(a misplaced array; focuslock check-alignment sees it)")
    led_shift_na_y: float = _setting(0.0, Within(-0.1, 0.1, "NA"),
                                     doc="the same along y")


@dataclass(frozen=True)
class ServiceSettings(_Table):
    """``focuslock serve``: where the HTTP API and the dashboard listen, what they do at start."""

    SECTION = "service"
    host: str = _setting("127.0.0.1", Text(required=True, max_chars=253),  # DNS's longest
                         doc='IPv4 listen address or host name; "0.0.0.0" exposes the API to '
                             'the network')
    port: int = _setting(8470, Within(0, 65535), doc="TCP port; 0: any free port")
    max_connections: int = _setting(32, Within(1, 1024),
                                    doc="connections served at once, live-event streams "
                                        "included; one more gets a 503 and Retry-After")
    autostart_lock: bool = _setting(False, doc="true: start the focus lock when the service starts")
    token_file: str = _setting(
        "", Text(), doc="file holding the API token on one line (focuslock token rotate makes "
                        "one); POST and PUT need it as Authorization: Bearer; empty: no token, "
                        "allowed only while host is loopback")
    read_requires_token: bool = _setting(
        False, doc="true: reads (status, log, metrics) need the token too; false: they are open")
    allowed_hosts: tuple[str, ...] = _setting(
        (), HostNames(), doc="names the Host header may carry besides localhost, 127.0.0.1, "
                             "[::1] and host: the box's name on the network, a reverse proxy's")


@dataclass(frozen=True)
class PgFocusSettings(_Table):
    """``focuslock pgfocus``: the serial line Micro-Manager's pgFocus adapter talks on."""

    SECTION = "pgfocus"
    port: str = _setting("", Text(), doc='serial device, e.g. "/dev/ttyGS0" (the Pi as a USB '
                                          'gadget) or "/dev/serial0" (its UART); --port wins')
    baud: int = _setting(57600, Within(1200, 4_000_000, "baud"),
                         doc="the adapter's speed is 57600; a USB gadget ignores it")
    um_per_pixel: float = _setting(
        0.25, Within(0, 100, "µm/px", open_low=True),
        doc="µm of focus per pgFocus sensor pixel: the adapter's offsets 0..128 are "
            "(offset - 64) × this µm of lock offset")


@dataclass(frozen=True)
class Config(_Table):
    """The whole file: where run logs go, then one table per part of the box."""

    SECTION = ""
    log_dir: str = _setting("focuslock-runs", Text(required=True),
                            doc="run logs (JSON lines), CSVs and plots")
    log_max_mb: float = _setting(50.0, Within(0.001, 100_000, "MB"),
                                 doc="a step log rotates past this size (about a day at 2 Hz)")
    log_keep: int = _setting(4, Within(1, 1000),
                             doc="rotated step logs kept; the oldest is dropped")
    optics: OpticsSettings = field(default_factory=OpticsSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    board: BoardSettings = field(default_factory=BoardSettings)
    illuminator: IlluminatorSettings = field(default_factory=IlluminatorSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    lock: LockSettings = field(default_factory=LockSettings)
    focus: FocusSettings = field(default_factory=FocusSettings)
    gates: GateSettings = field(default_factory=GateSettings)
    parallax: ParallaxSettings = field(default_factory=ParallaxSettings)
    sim: SimSettings = field(default_factory=SimSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    pgfocus: PgFocusSettings = field(default_factory=PgFocusSettings)

    def __post_init__(self) -> None:
        super().__post_init__()
        board = self.board
        if not board.travel_min_um < board.travel_max_um:
            raise ConfigError(f"board.travel_max_um: must be greater than board.travel_min_um "
                              f"({board.travel_min_um:g}), got {board.travel_max_um:g}")
        span = board.travel_max_um - board.travel_min_um
        for table, name in ((self.lock, "travel_window_um"), (self.focus, "search_window_um")):
            if getattr(table, name) > span:
                raise ConfigError(f"{table.key(name)}: must be at most the travel "
                                  f"({span:g} µm, board.travel_min_um to travel_max_um), "
                                  f"got {getattr(table, name):g}")
        for table in (self.lock, self.focus):
            if table.probe_um > table.max_step_um:
                raise ConfigError(f"{table.key('probe_um')}: must be at most "
                                  f"{table.key('max_step_um')} ({table.max_step_um:g}), "
                                  f"got {table.probe_um:g}")
        focus = self.focus
        if (focus.sharpness_finish_um > 0
                and focus.sharpness_finish_um + focus.sharpness_step_um > focus.probe_um):
            raise ConfigError(f"focus.sharpness_step_um: with focus.sharpness_finish_um it must "
                              f"add up to at most focus.probe_um ({focus.probe_um:g}), so no "
                              f"finishing move can worsen the focus by more than a probe; got "
                              f"{focus.sharpness_finish_um:g} + {focus.sharpness_step_um:g} "
                              f"(lower both, or focus.sharpness_finish_um = 0 turns the finish "
                              f"off)")
        limit = offset_limit_um(self.lock)
        if not abs(self.lock.offset_um) <= limit:
            raise ConfigError(f"lock.offset_um: must be within ±{limit:g} µm (half of "
                              f"lock.travel_window_um), got {self.lock.offset_um:g}")
        for name in ("focus_z_um", "start_z_um"):
            if not board.travel_min_um <= getattr(self.sim, name) <= board.travel_max_um:
                raise ConfigError(f"sim.{name}: must be inside the travel "
                                  f"[{board.travel_min_um:g}, {board.travel_max_um:g}] µm, "
                                  f"got {getattr(self.sim, name):g}")
        if not self.camera.exposure_us / 1e6 < self.camera.timeout_s:
            raise ConfigError(f"camera.timeout_s: must be longer than the exposure "
                              f"({self.camera.exposure_us / 1e6:g} s), got "
                              f"{self.camera.timeout_s:g}")
        if self.model.bundle == NO_MODEL and not self.reads_parallax:
            raise ConfigError(f"model.bundle: {NO_MODEL!r} leaves the parallax cue alone, which "
                              f"needs parallax.use = 'auto' and an optics preset with parallax "
                              f"views (optics.preset {self.optics.preset!r})")
        if self.camera.backend == "virtual" and board.backend == "serial":
            raise ConfigError("board.backend: 'serial' drives a real microscope, which the "
                              "virtual camera cannot see; use camera.backend = 'picamera2'")
        if (self.illuminator.backend == "illuminate" and board.backend == "serial"
                and not (self.illuminator.port or self.illuminator.serial_number)):
            raise ConfigError("illuminator.port: the illuminate array on a real microscope needs "
                              "its port or illuminator.serial_number")
        if self.camera.backend == "picamera2" and board.backend != "serial":
            raise ConfigError(f"board.backend: the Pi camera needs the real board ('serial'), "
                              f"got {board.backend!r}")


    @property
    def reads_parallax(self) -> bool:
        """The parallax cue is read: it is on and the optics preset has two views."""
        return self.parallax.use == "auto" and PRESETS[self.optics.preset].parallax is not None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read a TOML file (None: all defaults); any file problem is one line naming the path."""
    if path is None:
        return Config()
    path = Path(path)
    text = _read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # an integer of 5000 digits, arrays 10⁵ deep
        raise ConfigError(f"{path}: not a config TOML can hold: {exc}") from exc
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: "
                          f"{exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB, not a config file")
    if b"\0" in raw:
        raise ConfigError(f"{path}: a binary file (NUL bytes), not a TOML config")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start}); TOML files are UTF-8") from None


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Build and validate a Config from parsed TOML (or any nested mapping)."""
    config: Config = _build(Config, data, "")
    return config


def _build(cls: type, data: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a table, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for name in data:
        if not isinstance(name, str):
            raise ConfigError(f"{where}: keys must be text, got {shown(name)}")
    unknown = sorted(set(data) - set(known))
    if unknown:
        name = unknown[0] if BARE_KEY.fullmatch(unknown[0]) else shown(unknown[0])
        raise ConfigError(f"{prefix}{name}: unknown key "
                          f"(known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for name, value in data.items():
        kind = hints[name]
        if is_dataclass(kind):
            values[name] = _build(kind, value, f"{prefix}{name}.")  # type: ignore[arg-type]
        else:
            values[name] = _coerce(f"{prefix}{name}", kind, value)
    return cls(**values)


def _coerce(key: str, kind: Any, value: Any) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, got {shown(value)}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: must be an integer, got {shown(value)}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: must be a number, got {shown(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{key}: must be finite, got {shown(value)}")
        return number
    if get_origin(kind) is tuple:  # a TOML array of strings: tuple[str, ...]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{key}: must be a list of strings, got {shown(value)}")
        return tuple(value)
    if kind is str or get_origin(kind) is Literal:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string, got {shown(value)}")
        choices = get_args(kind)
        if choices and value not in choices:
            raise ConfigError(f"{key}: must be one of {', '.join(map(repr, choices))}, "
                              f"got {shown(value)}")
        return value
    raise TypeError(f"config field {key} has unsupported type {kind!r}")  # a bug, not user input
