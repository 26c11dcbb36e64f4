"""The Waller lab's ``illuminate`` LED-array firmware as the illuminator (docs/illuminate.md).

The array answers text commands on a 115200-baud serial port: a command ends with ``\\n``, its
arguments follow it separated by ``.``, and every reply ends with the firmware's terminator
``-==-`` and a newline (after a JSON reply the terminator shares the line of the closing brace).
The link has no checksum and free-text errors, so every reply is held to what that command
answers in machine mode; a reply that is garbage, refused or missing its terminator in time
faults the driver: the LEDs are commanded off and nothing more is sent until it is reopened.

The array says where its LEDs are (``pledposna``: NA of the direction from the sample to each LED,
in its own axes); the driver turns that into the project's NA (the light's direction of travel in
image axes), so the optics record and the model bundle check see the array's real geometry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, NoReturn

from controller.config import ArrayOrientation, Config, IlluminatorSettings
from controller.hardware.board_link import PortOpener, SerialPort
from controller.hardware.box import serial_opener
from controller.hardware.interfaces import HardwareError, Illuminator
from controller.hardware.rig import Rig
from controller.optics import Led, LedArray, Pattern, Preset

log = logging.getLogger(__name__)

BAUD = 115200
TERMINATOR = b"-==-\n"
MACHINE_MODE = "Command output set to machine-readable"  # the reply to ``machine``
REPLY_BASE_S = 0.5  # a command's reply starts within this (the firmware answers in ~ms)
BYTES_PER_S = BAUD / 10  # 8N1
NA_LINE_BYTES = 40  # one LED of pledposna: '        "580" : [-0.123, 0.456],'
MAX_LINE_BYTES = 60  # one USB packet: the firmware parses what has arrived, so a line stays in one
EMITTER_LEVELS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
                  "white": (255, 255, 255)}
DOME_RADIUS_MM = 50.0  # the LED array the preset records: the LEDs at their NA on a sphere


class IlluminateError(HardwareError):
    """The illuminate array did not answer as it should; its LEDs were commanded off."""


@dataclass(frozen=True)
class Placement:
    """Where one LED of a pattern lands on the array: its LED number and how far off in NA."""

    wanted: Led
    led: int
    na: tuple[float, float]

    @property
    def off_na(self) -> float:
        return math.hypot(self.na[0] - self.wanted.na_x, self.na[1] - self.wanted.na_y)

    def __str__(self) -> str:
        return (f"LED {self.led} at NA ({self.na[0]:+.3f}, {self.na[1]:+.3f}), "
                f"{self.off_na:.3f} off")


def image_na(na_x: float, na_y: float, orientation: ArrayOrientation) -> tuple[float, float]:
    """The project's NA (direction of travel, image axes) of an LED the firmware reports at
    (na_x, na_y) (direction towards the LED, its own axes)."""
    own = {"x": na_x, "y": na_y}
    out = []
    for axis in orientation.split(","):
        sign = -1.0 if axis.startswith("-") else 1.0
        out.append(-sign * own[axis[-1]])
    return out[0], out[1]


class IlluminateArray(Illuminator):
    """An illuminate LED array over a serial port that ``open_port`` opens (again on reopen)."""

    def __init__(self, open_port: PortOpener, settings: IlluminatorSettings) -> None:
        self.open_port = open_port
        self.settings = settings
        self.leds: dict[int, tuple[float, float]] = {}  # LED number -> NA, as the array said
        self.fault: str | None = None
        self._port: SerialPort | None = None
        self._channels = 0

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> IlluminateArray:
        """Connect (again): machine mode, no auto-clear, dark, and the array's geometry read."""
        self._release()
        self.fault = None
        self._port = self.open_port()
        self._port.reset_input_buffer()
        self._ask("machine", MACHINE_MODE, after_stale=True)
        self._ask("ac.0", "AC.0")  # patterns are drawn as several `l` commands that add up
        self._ask("x", "")
        params = self._json("pp", 2000)
        count, channels = params.get("led_count"), params.get("color_channel_count")
        if not (isinstance(count, int) and count > 0 and channels in (1, 3)):
            self._fault(f"pp: no led_count and color_channel_count (1 or 3) in {params!r}")
        self._channels = channels
        self.leds = self._positions(self._json("pledposna", count * NA_LINE_BYTES), count)
        if channels == 3:
            r, g, b = EMITTER_LEVELS[self.settings.colour]
            self._ask(f"sc.{r}.{g}.{b}", f"CO.{r}.{g}.{b}")
        return self

    def _positions(self, reply: dict[str, Any], count: int) -> dict[int, tuple[float, float]]:
        listed = reply.get("led_position_list_na")
        if not isinstance(listed, dict) or len(listed) != count:
            self._fault(f"pledposna: expected {count} LED positions, got "
                        f"{len(listed) if isinstance(listed, dict) else listed!r}")
        leds = {}
        for key, value in listed.items():
            ok = (key.isdigit() and isinstance(value, list) and len(value) == 2
                  and all(isinstance(v, int | float) and math.isfinite(v) for v in value))
            if not ok:
                self._fault(f"pledposna: LED {key!r} at {value!r} is not a number and two NAs")
            if math.hypot(*value) < 1.0:  # the firmware marks LEDs it does not drive -2000
                leds[int(key)] = image_na(value[0], value[1], self.settings.orientation)
        if not leds:
            self._fault("pledposna: the array reports no LED inside NA 1")
        return leds

    # -- the Illuminator -------------------------------------------------------------------

    def placements(self, pattern: Pattern) -> list[Placement]:
        """The array's LED nearest each of the pattern's LEDs; one farther off than
        ``na_tolerance`` is refused, naming the nearest."""
        if not self.leds:
            raise IlluminateError("illuminate: not open (no LED positions read)")
        if pattern.wavelengths != (None,):
            raise IlluminateError(f"illuminate: pattern {pattern.name!r} names LED colours; the "
                                  f"array lights every pattern in illuminator.colour")
        placed = []
        for wanted in pattern.leds:
            number = min(self.leds, key=lambda n: math.hypot(self.leds[n][0] - wanted.na_x,
                                                             self.leds[n][1] - wanted.na_y))
            placement = Placement(wanted, number, self.leds[number])
            if not placement.off_na <= self.settings.na_tolerance:
                raise IlluminateError(
                    f"illuminate: pattern {pattern.name!r} asks for an LED at NA "
                    f"({wanted.na_x:+.3f}, {wanted.na_y:+.3f}) the array does not have; the "
                    f"nearest is {placement} (illuminator.na_tolerance "
                    f"{self.settings.na_tolerance:g})")
            placed.append(placement)
        if len({p.led for p in placed}) != len(placed):
            raise IlluminateError(f"illuminate: pattern {pattern.name!r} lands two LEDs on one")
        return placed

    def show(self, pattern: Pattern) -> None:
        placed = self.placements(pattern)
        log.info("illuminate: pattern %r on %s", pattern.name, "; ".join(map(str, placed)))
        scale = 255 / max(1.0, *(p.wanted.brightness for p in placed))
        levels: dict[int, list[int]] = {}
        for p in placed:
            if p.wanted.brightness > 0:
                level = max(1, min(255, round(p.wanted.brightness * scale)))
                levels.setdefault(level, []).append(p.led)
        self._ask("x", "")
        for level, numbers in sorted(levels.items()):
            self._ask(f"sb.{level}", f"SB.{level}")
            for line in _led_lines(numbers):
                self._ask(line, "")

    def off(self) -> None:
        self._ask("x", "")

    def close(self) -> None:
        """LEDs off (unless the link already failed, when they were commanded off then)."""
        try:
            if self._port is not None and self.fault is None:
                self.off()
        finally:
            self._release()

    # -- the link --------------------------------------------------------------------------

    def _ask(self, command: str, expected: str | None, reply_bytes: int = 64, *,
             after_stale: bool = False) -> str:
        """Send one command and return its reply without the terminator; anything but the
        ``expected`` reply (None: any) faults the driver. ``after_stale``: replies to commands
        sent before (the off sent on a fault) may come first; the firmware answers in order,
        so the last reply is this command's."""
        if self.fault is not None:
            raise IlluminateError(f"illuminate: stopped after a fault ({self.fault}); nothing "
                                  f"is sent until it is reopened")
        if self._port is None:
            raise IlluminateError("illuminate: not open")
        timeout_s = REPLY_BASE_S + 2 * (len(command) + 1 + reply_bytes) / BYTES_PER_S
        try:
            self._port.write(command.encode("ascii") + b"\n")
            raw = self._read_reply(self._port, timeout_s)
        except OSError as exc:
            self._fault(f"the port is gone ({exc}); unplugged?")
        if not raw.endswith(TERMINATOR):
            got = f" (got {raw[:60]!r})" if raw else ""
            self._fault(f"no reply ending in -==- to {command!r} within {timeout_s:.2f} s{got}")
        body = raw[:-len(TERMINATOR)]
        if after_stale:
            body = body.rpartition(TERMINATOR)[2]
        try:
            reply = body.decode("ascii").strip()
        except UnicodeDecodeError:
            self._fault(f"garbage in the reply to {command!r}: {raw[:60]!r}")
        if reply.upper().startswith("ERR") or "not implemented" in reply:
            self._fault(f"the array refused {command!r}: {reply[:120]!r}")
        if expected is not None and reply != expected:
            self._fault(f"unexpected reply to {command!r}: {reply[:120]!r} (expected "
                        f"{expected!r})")
        return reply

    def _json(self, command: str, reply_bytes: int) -> dict[str, Any]:
        reply = self._ask(command, None, reply_bytes)
        try:
            data = json.loads(reply)
        except ValueError:
            self._fault(f"{command}: the reply is not JSON: {reply[:120]!r}")
        if not isinstance(data, dict):
            self._fault(f"{command}: the reply is not a JSON object: {reply[:120]!r}")
        return data

    @staticmethod
    def _read_reply(port: SerialPort, timeout_s: float) -> bytes:
        """Bytes up to and including the terminator, or what came before the timeout."""
        deadline = time.monotonic() + timeout_s
        raw = b""
        while not raw.endswith(TERMINATOR) and time.monotonic() < deadline:
            raw += port.read(max(1, port.in_waiting))
        return raw

    def _fault(self, reason: str) -> NoReturn:
        """Stop using the link: LEDs commanded off (best effort), the reason kept and raised."""
        self.fault = reason
        if self._port is not None:
            with contextlib.suppress(OSError):
                self._port.write(b"x\n")
        raise IlluminateError(f"illuminate: {reason}; LEDs commanded off, reopen the array")

    def _release(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(OSError):
                port.close()

    # -- the geometry the optics record uses -----------------------------------------------

    def led_array(self) -> LedArray:
        """The array's LEDs (in LED-number order) where they light the sample from."""
        positions = []
        for number in sorted(self.leds):
            na_x, na_y = self.leds[number]
            height = math.sqrt(max(1.0 - na_x * na_x - na_y * na_y, 1e-9))
            positions.append((-na_x * DOME_RADIUS_MM, -na_y * DOME_RADIUS_MM,
                              height * DOME_RADIUS_MM))
        return LedArray.dome(positions)

    def as_lit(self, pattern: Pattern) -> Pattern:
        """The pattern as the array lights it: each LED at its real NA, brightness kept."""
        return Pattern(pattern.name, tuple(dataclasses.replace(p.wanted, na_x=p.na[0],
                                                               na_y=p.na[1])
                                           for p in self.placements(pattern)))

    def fitted(self, preset: Preset) -> Preset:
        """The preset on this array: its LEDs, and its autofocus and ground-truth patterns as
        lit here (each refused, naming the nearest LED, if the array has no LED for it)."""
        parallax = preset.parallax
        if parallax is not None:
            first, second = (self.as_lit(Pattern("parallax", (led,))).leds[0]
                             for led in (parallax.first, parallax.second))
            parallax = dataclasses.replace(parallax, first=first, second=second)
        return dataclasses.replace(preset, leds=self.led_array(),
                                   autofocus=self.as_lit(preset.autofocus),
                                   ground_truth=self.as_lit(preset.ground_truth),
                                   parallax=parallax)


def _led_lines(numbers: list[int]) -> list[str]:
    """``l.i.j...`` commands naming the LEDs, each short enough to arrive in one piece."""
    lines, line = [], "l"
    for number in numbers:
        if len(line) + 1 + len(str(number)) > MAX_LINE_BYTES:
            lines.append(line)
            line = "l"
        line += f".{number}"
    return [*lines, line]


def serial_port_opener(port: str, serial_number: str | None = None) -> PortOpener:
    """Opens the array's USB serial device (by serial number when one is given), anew on every
    reopen, since a replugged Teensy may get a new path."""
    return serial_opener(port, serial_number, BAUD, device="the illuminate array")


def attach_illuminate(rig: Rig, config: Config) -> Rig:
    """Backend ``illuminator.backend = "illuminate"`` on the box: the array on its own port
    lights the sample in place of the board's LEDs, and the preset is the array's geometry."""
    settings = config.illuminator
    array = IlluminateArray(serial_port_opener(settings.port, settings.serial_number or None),
                            settings)
    try:
        array.open()
        rig.preset = array.fitted(rig.preset)
    except BaseException:
        array.close()
        raise
    rig.illuminator = array
    return rig
