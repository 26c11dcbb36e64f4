"""The OpenFlexure Sangaboard's z axis as the focus drive (firmware v0.5 and v1.0).

The Sangaboard speaks free text over 115200-baud serial: one command a line, one reply a line
(``\\n`` or ``\\r\\n``), no checksum, and errors as prose. So this driver trusts nothing it does
not understand: every reply must match its exact form or the drive faults; each move's patience
is sized from its length (steps × the board's step delay, its ramps, and a margin); after every
move the position is read back and must be where the move said; and once anything went wrong
(no reply, garbage, an unplugged cable, a read-back that disagrees) the drive is latched: no
further command that moves is ever sent until a new driver connects.

Only z is moved (``mrz``); x and y are left where they are. Backlash is taken out by ending every
move in the same direction (``approach``): a move the other way overshoots by ``backlash_um``
and comes back.

v0.5 blocks while it moves and answers ``done`` at the end; it has no ``stop``. v1.0 is put in
non-blocking mode (``blocking_moves false``: ``done.`` at once, then ``moving?`` polls), so a
move that overruns its time can be stopped; blocking mode is restored on close, as the
OpenFlexure software expects it. The port comes from outside (an open pyserial ``Serial``, or a
pty in tests), like a PyMeasure adapter.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import termios
import time
from dataclasses import dataclass
from typing import Literal

from controller.config import BoardSettings
from controller.hardware.board import NotFinite
from controller.hardware.board_link import SerialPort, TravelLimit
from controller.hardware.interfaces import DriveFault, FocusDrive

log = logging.getLogger(__name__)

BAUDRATE = 115200
Approach = Literal["up", "down"]

VERSION = re.compile(r"(?:Sangaboard Firmware|OpenFlexure Motor Board) v(\d+)\.(\d+)(\S*)")
SUPPORTED = {(0, 5), (1, 0)}
POSITION = re.compile(r"(-?\d+) (-?\d+) (-?\d+)")
STEP_DELAY = re.compile(r"minimum step delay (\d+)")
RAMP_TIME = {(0, 5): re.compile(r"ramp time (\d+)"), (1, 0): re.compile(r"ramp_time (\d+)")}
MOVE_DONE = {(0, 5): "done", (1, 0): "done."}  # v0.5: when the move ended; v1.0: when it began
RELEASED = {(0, 5): "motors released", (1, 0): "done"}
MAX_LINE = 200  # no reply the driver asks for is longer; more is garbage


class SangaboardError(DriveFault):
    """The Sangaboard's link failed; the drive is latched and moves no more."""


class NoReply(SangaboardError):
    """No (whole) reply within the time the command should take."""


class BadReply(SangaboardError):
    """A reply that is not the one the command gives (garbage, an error, another firmware)."""


class PortGone(SangaboardError):
    """The serial port vanished (an unplugged cable)."""


class ReadbackMismatch(SangaboardError):
    """After a move, the board says z is somewhere other than where the move should end."""


@dataclass(frozen=True)
class SangaboardSettings:
    """What the z axis's steps mean and how patient the driver is."""

    steps_per_um: float = 1.0
    travel_um: tuple[float, float] = (-1000.0, 1000.0)  # enforced here: the board has none
    backlash_um: float = 0.0  # overshoot for a move against ``approach``; 0: no overshoot
    approach: Approach = "up"  # the direction every move ends in
    reply_timeout_s: float = 1.0  # for a command that does not move
    move_margin_s: float = 1.0  # added to a move's planned duration (and half of it again)
    poll_s: float = 0.01  # v1.0: how often ``moving?`` is asked during a move
    settle_s: float = 0.05  # mechanics settle after the last step

    def __post_init__(self) -> None:
        low, high = self.travel_um
        if not (math.isfinite(self.steps_per_um) and self.steps_per_um > 0):
            raise ValueError(f"sangaboard: steps_per_um {self.steps_per_um} is not > 0")
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"sangaboard: travel {self.travel_um} µm is not (min < max)")
        if not (math.isfinite(self.backlash_um) and self.backlash_um >= 0):
            raise ValueError(f"sangaboard: backlash_um {self.backlash_um} is not >= 0")
        if self.approach not in ("up", "down"):
            raise ValueError(f'sangaboard: approach {self.approach!r} is not "up" or "down"')


class SangaboardFocus(FocusDrive):
    """The Sangaboard's z axis in µm. Public methods check; ``_do_*`` talk to the board."""

    def __init__(self, port: SerialPort, settings: SangaboardSettings | None = None) -> None:
        self.port = port
        self.settings = settings or SangaboardSettings()
        self.version: tuple[int, int] | None = None
        self.firmware = ""
        self.fault: SangaboardError | None = None  # latched: no move after it
        self.moves_sent = 0  # ``mrz`` commands written, for tests and the log
        self._step_delay_s = 0.0
        self._ramp_s = 0.0
        self._settled_at = time.monotonic()

    # -- connection ----------------------------------------------------------------------------

    def connect(self) -> SangaboardFocus:
        """Check the firmware, learn its pacing, and (v1.0) make moves non-blocking."""
        self.port.reset_input_buffer()  # a boot banner or an old reply is not an answer
        self.firmware = self._query("version", VERSION.pattern)
        match = VERSION.fullmatch(self.firmware)
        assert match is not None  # _query checked the form
        version = (int(match[1]), int(match[2]))
        if version not in SUPPORTED:
            raise self._latch(BadReply(f"sangaboard: firmware {self.firmware!r} is not v0.5 or "
                                       "v1.0; not driving it"))
        self.version = version
        self._step_delay_s = int(self._query_match("dt?", STEP_DELAY)[1]) / 1e6
        self._ramp_s = int(self._query_match("ramp_time?", RAMP_TIME[version])[1]) / 1e6
        if version == (1, 0):
            self._query("blocking_moves false", "done.")
        self._do_read_z()
        return self

    def __enter__(self) -> SangaboardFocus:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Restore v1.0's blocking moves, de-energise the motors, let the port go."""
        try:
            if self.fault is None and self.version is not None:
                if self.version == (1, 0):
                    self._query("blocking_moves true", "done.")
                self._query("release", RELEASED[self.version])
        except SangaboardError as exc:
            log.warning("sangaboard: not released cleanly: %s", exc)
        finally:
            with contextlib.suppress(OSError, termios.error):
                self.port.close()

    # -- FocusDrive: checks --------------------------------------------------------------------

    def position_um(self) -> float:
        self._raise_if_faulted()
        return self._do_read_z() / self.settings.steps_per_um

    def move_by(self, delta_um: float) -> float:
        delta_um = self._finite("move by", delta_um)
        self._raise_if_faulted()
        here = self._do_read_z()
        target = self._steps_inside_travel("move by", here / self.settings.steps_per_um + delta_um)
        return self._do_move_to(target, here) / self.settings.steps_per_um

    def move_to(self, z_um: float) -> float:
        target = self._steps_inside_travel("move to", self._finite("move to", z_um))
        self._raise_if_faulted()
        return self._do_move_to(target, self._do_read_z()) / self.settings.steps_per_um

    def stop(self) -> None:
        """v1.0: ``stop``; v0.5 moves block, so there is never one to stop. Never raises."""
        if self.version == (1, 0):
            try:
                self._do_stop()
            except SangaboardError as exc:
                log.warning("sangaboard: stop not confirmed: %s", exc)

    @property
    def travel_um(self) -> tuple[float, float]:
        return self.settings.travel_um

    @property
    def settled_at(self) -> float:
        return self._settled_at

    def _raise_if_faulted(self) -> None:
        if self.version is None:
            raise SangaboardError("sangaboard: not connected")
        if self.fault is not None:
            raise SangaboardError(f"sangaboard: no moves after an earlier fault ({self.fault})")

    @staticmethod
    def _finite(what: str, z_um: float) -> float:
        if not math.isfinite(z_um):
            raise NotFinite(f"sangaboard: {what} {z_um} µm: not a finite number")
        return z_um

    def _steps_inside_travel(self, what: str, z_um: float) -> int:
        low, high = self.settings.travel_um
        if not low <= z_um <= high:
            raise TravelLimit(f"sangaboard: {what} {z_um:g} µm is outside travel limits "
                              f"[{low:g}, {high:g}] µm")
        return round(z_um * self.settings.steps_per_um)

    # -- the board -----------------------------------------------------------------------------

    def _do_move_to(self, target: int, here: int) -> int:
        """From ``here``, reach ``target`` steps ending in the approach direction, each leg read
        back."""
        sign = 1 if self.settings.approach == "up" else -1
        overshoot = round(self.settings.backlash_um * self.settings.steps_per_um)
        if overshoot and (target - here) * sign < 0:  # against the approach: go past, come back
            here = self._do_leg(here, target - sign * overshoot)
        z = self._do_leg(here, target)
        time.sleep(self.settings.settle_s)
        self._settled_at = time.monotonic()
        return z

    def _do_leg(self, here: int, target: int) -> int:
        steps = target - here
        if steps == 0:
            return here
        timeout = abs(steps) * self._step_delay_s * 1.5 + 2 * self._ramp_s + \
            self.settings.move_margin_s
        self.moves_sent += 1
        if self.version == (0, 5):
            self._query(f"mrz {steps}", MOVE_DONE[(0, 5)], timeout_s=timeout)
        else:
            self._query(f"mrz {steps}", MOVE_DONE[(1, 0)])
            self._do_await_stop(timeout)
        z = self._do_read_z()
        if z != target:
            raise self._latch(ReadbackMismatch(
                f"sangaboard: moved z by {steps} steps to reach {target}, but it reads back "
                f"{z}; lost steps or another program moved it. No further moves"))
        return z

    def _do_await_stop(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._query("moving?", "true|false") == "true":
            if time.monotonic() > deadline:
                self._do_stop()
                raise self._latch(NoReply(f"sangaboard: a move planned for at most "
                                          f"{timeout_s:.2f} s still runs; stopped it"))
            time.sleep(self.settings.poll_s)

    def _do_stop(self) -> None:
        self._query("stop", "Move aborted")

    def _do_read_z(self) -> int:
        return int(self._query_match("p?", POSITION)[3])

    def _query_match(self, command: str, form: re.Pattern[str]) -> re.Match[str]:
        match = form.fullmatch(self._query(command, form.pattern))
        assert match is not None  # _query checked the form
        return match

    def _query(self, command: str, form: str, *, timeout_s: float | None = None) -> str:
        """Send one command, return its one reply line if it has exactly the form ``form`` (a
        regular expression); anything else latches the drive."""
        try:
            self.port.reset_input_buffer()
            self.port.write(command.encode("ascii") + b"\n")
            line = self._read_line(command, timeout_s or self.settings.reply_timeout_s)
        except (OSError, termios.error) as exc:  # SerialException is an OSError; a flush on
            # a vanished tty is a termios.error: either way the cable is out
            raise self._latch(PortGone(f"sangaboard: the port is gone during {command!r}: "
                                       f"{exc}")) from None
        if not re.fullmatch(form, line):
            raise self._latch(BadReply(f"sangaboard: {command!r} got {line!r}, not a reply "
                                       "it gives; not understood, nothing more is sent"))
        return line

    def _read_line(self, command: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        buffer = bytearray()
        while not buffer.endswith(b"\n"):
            if time.monotonic() > deadline:
                raise self._latch(NoReply(
                    f"sangaboard: no reply to {command!r} within {timeout_s:.2f} s"
                    + (f" (only {bytes(buffer)!r})" if buffer else "")))
            if len(buffer) > MAX_LINE:
                raise self._latch(BadReply(f"sangaboard: {command!r} got a line longer than "
                                           f"{MAX_LINE} bytes: {bytes(buffer[:40])!r}..."))
            buffer += self.port.read(max(1, self.port.in_waiting))
        try:
            line = buffer.decode("ascii")
        except UnicodeDecodeError:
            raise self._latch(BadReply(f"sangaboard: {command!r} got non-text "
                                       f"{bytes(buffer)!r}")) from None
        return line.removesuffix("\n").removesuffix("\r")

    def _latch(self, fault: SangaboardError) -> SangaboardError:
        if self.fault is None:
            self.fault = fault
            log.error("%s", fault)
        return fault


def settings_from_config(board: BoardSettings, settle_s: float = 0.05) -> SangaboardSettings:
    """The driver's settings from the config's ``[board]`` table."""
    return SangaboardSettings(steps_per_um=board.steps_per_um,
                              travel_um=(board.travel_min_um, board.travel_max_um),
                              backlash_um=board.backlash_um, approach=board.approach,
                              settle_s=settle_s)


def open_sangaboard(path: str, settings: SangaboardSettings) -> SangaboardFocus:
    """The Sangaboard at ``path`` (e.g. /dev/ttyACM0 or a pty), connected."""
    import serial

    try:
        port = serial.Serial(path, BAUDRATE, timeout=0.01, write_timeout=1.0)
    except (serial.SerialException, OSError) as exc:
        raise PortGone(f"sangaboard: cannot open {path}: {exc}") from exc
    drive = SangaboardFocus(port, settings)
    try:
        return drive.connect()
    except BaseException:
        port.close()
        raise
