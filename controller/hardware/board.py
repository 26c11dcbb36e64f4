"""The host driver of the focus board: a focus drive in µm and an illuminator over USB serial.

The board executes and protects itself; this side decides. The packets, retries and sessions are
the link's (controller/hardware/board_link.py); the port comes from outside as an opener
(``controller.hardware.box.serial_opener`` for the real board). A heartbeat thread keeps the
board's deadline fed while the driver is connected.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
import time
from dataclasses import dataclass

from controller.hardware import board_leds, protocol
from controller.hardware.board_link import (
    BoardError,
    BoardFault,
    BoardInfo,
    BoardLink,
    LinkLost,
    PortOpener,
    TravelLimit,
    unpack_reply,
)
from controller.hardware.board_settings import FocusBoardSettings
from controller.hardware.interfaces import (
    DriveFault,
    FocusDrive,
    HardwareError,
    Illuminator,
    PositionUnknown,
)
from controller.optics import LedArray, Pattern

log = logging.getLogger(__name__)



class NotFinite(DriveFault):
    """A position or move that is not a finite number of µm; refused before anything is sent."""


@dataclass(frozen=True)
class BoardStatus:
    position_steps: int
    target_steps: int
    moving: bool
    position_known: bool
    motor_enabled: bool
    endstop_min: bool
    endstop_max: bool
    fault: int
    fault_detail: str
    lit_led_count: int
    leds_in_colour: bool  # the lit LEDs show the colours the host chose (SET_LEDS_RGB)
    pattern_tag: int
    rx_errors: int

    @property
    def fault_text(self) -> str:
        name = protocol.FAULT_NAMES.get(self.fault, f"fault {self.fault}")
        return f"{name} ({self.fault_detail})" if self.fault_detail else name

    @classmethod
    def from_payload(cls, payload: bytes) -> BoardStatus:
        size = struct.calcsize(protocol.STATUS_REPLY)
        position, target, flags, fault, lit_count, tag, rx_errors = unpack_reply(
            protocol.STATUS_REPLY, payload, "STATUS", text_follows=True)
        return cls(
            position_steps=position, target_steps=target,
            moving=bool(flags & protocol.F_MOVING),
            position_known=bool(flags & protocol.F_POSITION_KNOWN),
            motor_enabled=bool(flags & protocol.F_MOTOR_ENABLED),
            endstop_min=bool(flags & protocol.F_ENDSTOP_MIN),
            endstop_max=bool(flags & protocol.F_ENDSTOP_MAX),
            fault=fault, fault_detail=payload[size:].decode(errors="replace"),
            lit_led_count=lit_count, leds_in_colour=bool(flags & protocol.F_LEDS_IN_COLOUR),
            pattern_tag=tag, rx_errors=rx_errors,
        )


class FocusBoard(FocusDrive, Illuminator):
    """The focus board as the controller's focus drive (µm) and illuminator (LED patterns)."""

    def __init__(self, open_port: PortOpener, settings: FocusBoardSettings | None = None) -> None:
        self.settings = settings or FocusBoardSettings()
        self.link = BoardLink(open_port, self.settings.link, on_new_session=self._configure_board)
        self.leds: LedArray | None = None
        self._settled_at = time.monotonic()
        self._pattern_tag = 0
        self._beating = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.heartbeat_error: HardwareError | None = None
        self._unheard_reboot: PositionUnknown | None = None  # found by the heartbeat thread
        # Where the board last said it rests (steps), for checking moves before they are sent;
        # None once anything could have moved it since (a move, a stop, homing, a new boot).
        self._resting_steps: int | None = None

    # -- connection ----------------------------------------------------------------------------

    def connect(self) -> FocusBoard:
        info = self.link.open()
        try:
            self._configure_board(info)
        except BaseException:  # whatever went wrong (even Ctrl-C), the port is let go
            self._release()
            raise
        self._beating.set()
        self._heartbeat = threading.Thread(target=self._beat, name="focus-board-heartbeat",
                                           daemon=True)
        self._heartbeat.start()
        return self

    def __enter__(self) -> FocusBoard:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def info(self) -> BoardInfo:
        if self.link.info is None:
            raise LinkLost("the focus board is not connected")
        return self.link.info

    def _configure_board(self, info: BoardInfo) -> None:
        """Send limits, speed, acceleration and deadline; learn and check the LED geometry."""
        s = self.settings
        self._resting_steps = None  # a new boot does not vouch for its position
        low, high = s.limit_steps
        config = struct.pack(protocol.CONFIG, low, high, s.home_steps, s.speed_steps,
                             s.accel_steps, s.heartbeat_ms)
        self.link.call(protocol.CONFIGURE, config)
        board_leds = self._read_led_geometry(info.led_count)
        if s.leds is not None and board_leds is not None:
            self._check_led_geometry(s.leds, board_leds)
        self.leds = s.leds or board_leds

    def _read_led_geometry(self, count: int) -> LedArray | None:
        positions: list[tuple[float, float, float]] = []
        while len(positions) < count:
            payload = self.link.call(protocol.LED_GEOMETRY,
                                     struct.pack(protocol.LED_GEOMETRY_REQUEST, len(positions)))
            try:
                _, page = protocol.unpack_led_geometry(payload)
            except ValueError as exc:
                raise BoardError(f"focus board: a malformed LED_GEOMETRY reply: {exc}") from None
            if not page:
                break
            positions.extend((x / 10, y / 10, d / 10) for x, y, d in page)
        return LedArray.dome(positions) if positions else None

    def _check_led_geometry(self, configured: LedArray, board: LedArray) -> None:
        if len(configured) != len(board):
            raise HardwareError(f"focus board has {len(board)} LEDs, the configuration "
                                f"{len(configured)}")
        for i, (a, b) in enumerate(zip(configured.positions_mm, board.positions_mm, strict=True)):
            if math.dist(a, b) > self.settings.led_geometry_tolerance_mm:
                raise HardwareError(f"focus board LED {i} is at {b} mm, the configuration "
                                    f"says {a} mm")

    def close(self) -> None:
        """Stop the motor, darken the LEDs, and tell the board the host is leaving."""
        self._beating.clear()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=2)
            self._heartbeat = None
        self._release()

    def _release(self) -> None:
        if self.link.info is not None:
            try:
                self.link.call(protocol.RELEASE)
            except HardwareError as exc:
                log.warning("focus board: could not release it cleanly: %s", exc)
        self.link.close()

    def _beat(self) -> None:
        period = self.settings.heartbeat_s / 4
        while self._beating.is_set():
            time.sleep(period / 4)
            if time.monotonic() - self.link.last_activity < period:
                continue
            try:
                self.link.call(protocol.HEARTBEAT)
                self.heartbeat_error = None
            except PositionUnknown as exc:  # the board rebooted: tell the next drive command
                self._unheard_reboot = exc
            except HardwareError as exc:  # seen by the next command; keep beating
                if self.heartbeat_error is None:
                    log.warning("focus board heartbeat: %s", exc)
                self.heartbeat_error = exc
                time.sleep(period)

    # -- board commands ------------------------------------------------------------------------

    def status(self) -> BoardStatus:
        status = BoardStatus.from_payload(self.link.call(protocol.STATUS))
        resting = status.position_known and not status.moving and not status.fault
        self._resting_steps = status.position_steps if resting else None
        return status

    def clear_fault(self) -> None:
        self.link.call(protocol.CLEAR_FAULT)

    def home(self) -> float:
        """Seek the min endstop; afterwards the position is the lower limit minus the clearance."""
        self._unheard_reboot = None
        self._resting_steps = None
        reply = self.link.call(protocol.HOME, struct.pack(protocol.HOME_REQUEST, 0))
        (duration_ms,) = unpack_reply(protocol.HOME_REPLY, reply, "HOME")
        return self._wait_for_motion(duration_ms)

    def set_position_um(self, z_um: float) -> None:
        """Declare where the drive is now (re-reference without an endstop); a position
        outside the travel limits is refused here, as the board would refuse it."""
        steps = self._inside_travel("position", z_um, self._steps("position", z_um))
        self._unheard_reboot = None  # whatever happened before, the position is now known
        self._resting_steps = None
        self.link.call(protocol.SET_POSITION, struct.pack(protocol.SET_POSITION_REQUEST, steps))
        self._resting_steps = steps  # the board accepts a position only while it rests

    # -- FocusDrive ----------------------------------------------------------------------------

    def _raise_unheard_reboot(self) -> None:
        """A reboot the heartbeat noticed is reported once, by the next drive command."""
        notice, self._unheard_reboot = self._unheard_reboot, None
        if notice is not None:
            raise notice

    def position_um(self) -> float:
        self._raise_unheard_reboot()
        status = self.status()
        self._raise_for(status)
        return status.position_steps / self.settings.steps_per_um

    def move_by(self, delta_um: float) -> float:
        """Move relative to where the board rests; a move leaving the travel limits is refused
        here, before it is sent (and by the board, should it ever be sent)."""
        steps = self._steps("move by", delta_um)
        low, high = self.settings.limit_steps
        if abs(steps) > high - low:  # from anywhere inside the travel, this leaves it
            raise self._travel_limit("move by", delta_um)
        self._raise_unheard_reboot()
        start = self._resting_steps
        if start is None:
            start = self._resting_steps_now()
        if start is not None:
            self._inside_travel("move by", delta_um, start + steps)
        return self._move(protocol.MOVE_RELATIVE, steps)

    def move_to(self, z_um: float) -> float:
        """Move to ``z_um``; a target outside the travel limits is refused before it is sent."""
        steps = self._inside_travel("move to", z_um, self._steps("move to", z_um))
        self._raise_unheard_reboot()
        return self._move(protocol.MOVE_ABSOLUTE, steps)

    def _steps(self, what: str, z_um: float) -> int:
        """µm as whole steps; not a number, or a number no step count can hold, is refused."""
        if math.isnan(z_um):
            raise NotFinite(f"focus board: {what} {z_um} µm: not a number")
        scaled = z_um * self.settings.steps_per_um
        if not math.isfinite(scaled):
            raise self._travel_limit(what, z_um)
        return round(scaled)

    def _inside_travel(self, what: str, z_um: float, target_steps: int) -> int:
        low, high = self.settings.limit_steps
        if not low <= target_steps <= high:
            raise self._travel_limit(what, z_um)
        return target_steps

    def _travel_limit(self, what: str, z_um: float) -> TravelLimit:
        low, high = self.settings.travel_um
        return TravelLimit(f"focus board: {what} {z_um:g} µm is outside travel limits "
                           f"[{low:g}, {high:g}] µm")

    def _resting_steps_now(self) -> int | None:
        """Ask the board where it rests; None when it cannot say (the board then refuses the
        move itself: position unknown, fault or busy)."""
        self.status()
        return self._resting_steps

    def stop(self) -> None:
        self._resting_steps = None
        try:
            self.link.call(protocol.STOP)
        except PositionUnknown:
            pass  # a rebooted board is not moving
        except LinkLost as exc:
            log.warning("focus board: stop not delivered: %s", exc)

    @property
    def travel_um(self) -> tuple[float, float]:
        return self.settings.travel_um

    @property
    def settled_at(self) -> float:
        return self._settled_at

    def _move(self, mode: int, steps: int) -> float:
        self._resting_steps = None
        reply = self.link.call(protocol.MOVE, struct.pack(protocol.MOVE_REQUEST, mode, steps, 0))
        _, duration_ms = unpack_reply(protocol.MOVE_REPLY, reply, "MOVE")
        return self._wait_for_motion(duration_ms)

    def _wait_for_motion(self, duration_ms: int) -> float:
        """Poll until the board stopped; the patience is sized from the planned duration."""
        deadline = time.monotonic() + duration_ms / 1000 * 1.5 + 1.0
        while True:
            time.sleep(min(0.02, max(0.002, duration_ms / 1000 / 10)))
            status = self.status()
            if not status.moving:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise DriveFault(f"focus board: a move planned for {duration_ms} ms "
                                 "did not finish; stopped it")
        self._raise_for(status)
        time.sleep(self.settings.settle_s)
        self._settled_at = time.monotonic()
        return status.position_steps / self.settings.steps_per_um

    @staticmethod
    def _raise_for(status: BoardStatus) -> None:
        if status.fault:
            raise BoardFault(f"focus board fault: {status.fault_text}")
        if not status.position_known:
            raise PositionUnknown("focus board: position unknown until homed or set")

    # -- Illuminator ---------------------------------------------------------------------------

    def show(self, pattern: Pattern) -> None:
        """Light the pattern: in the board's own colour when its LEDs have no wavelength
        (SET_LEDS), else each LED on its emitter of that colour (SET_LEDS_RGB)."""
        if board_leds.in_colour(pattern):
            self.set_led_colours(self.led_colours(pattern))
        else:
            self.set_leds(self.led_levels(pattern))

    def set_leds(self, levels: list[tuple[int, int]], wavelength_um: float | None = None) -> None:
        """Light exactly these (LED index, 0..255): in the board's own colour, or, given a
        wavelength, on each LED's emitter of that colour. An index the board lacks, a brightness
        out of range, more LEDs than one packet holds or a colour the board cannot show are
        refused before anything is sent."""
        if wavelength_um is not None:
            channel = board_leds.emitter(wavelength_um, self.settings, "LEDs by index")
            self.set_led_colours(board_leds.in_one_colour(levels, channel))
            return
        board_leds.check_levels(levels, self.info.led_count)
        self.link.call(protocol.SET_LEDS, protocol.pack_set_leds(self._next_tag(), levels))

    def set_led_colours(self, colours: list[tuple[int, int, int, int]]) -> None:
        """Light exactly these (LED index, red, green, blue 0..255); refused before anything is
        sent on a board whose LEDs have one colour each, and as set_leds refuses."""
        self._require_colours("LED colours")
        board_leds.check_colours(colours, self.info.led_count)
        self.link.call(protocol.SET_LEDS_RGB, protocol.pack_set_leds_rgb(self._next_tag(), colours))

    def led_levels(self, pattern: Pattern) -> list[tuple[int, int]]:
        """The board's (LED index, 0..255) for a pattern without colours
        (controller/hardware/board_leds.py)."""
        return board_leds.led_levels(pattern, self._led_array(), self.settings)

    def led_colours(self, pattern: Pattern) -> list[tuple[int, int, int, int]]:
        """The board's (LED index, red, green, blue) for a pattern in colour; refused on a
        board that cannot show colours (controller/hardware/board_leds.py)."""
        self._require_colours(f"pattern {pattern.name!r}")
        return board_leds.led_colours(pattern, self._led_array(), self.settings)

    def _led_array(self) -> LedArray:
        if self.leds is None:
            raise HardwareError("focus board: no LED geometry known (connect first)")
        return self.leds

    def _require_colours(self, what: str) -> None:
        if not self.info.capabilities & protocol.CAP_LED_RGB:
            raise HardwareError(
                f"{what}: this focus board cannot show colours (its LEDs have one colour "
                "each, or its firmware predates SET_LEDS_RGB); use a pattern without "
                "wavelengths")

    def _next_tag(self) -> int:
        self._pattern_tag = self._pattern_tag % 0xFFFF + 1
        return self._pattern_tag

    def off(self) -> None:
        self.link.call(protocol.LEDS_OFF)

    @property
    def pattern_tag(self) -> int:
        """The tag of the last pattern sent; the board's status echoes it while it is lit."""
        return self._pattern_tag

