"""The board's command side: sessions, sequence numbers, replies, and every command's handler.

Bytes in, bytes out: ``receive`` takes what came over the serial line and returns the replies
to send, ``tick`` runs the safety checks between commands. Exactly-once execution: a packet must
carry this boot's session nonce and the next sequence number to run; a repeat of the last one
is answered from the cache; anything else is refused without effect. IDENTIFY, which changes
nothing, is answered whatever its sequence number, and tells the host the session to use.
"""

import struct

from . import FIRMWARE_VERSION, protocol
from .config import MotionConfig
from .errors import CommandError
from .leds import Leds
from .motion import Axis
from .safety import Safety

TYPE_CHECKING = False  # mypy reads the imports below; MicroPython has no typing module
if TYPE_CHECKING:
    from collections.abc import Callable

    from .hal import Hardware

STALE_PARTIAL_US = 50000  # a packet that stopped arriving this long ago began with garbage


def _args(fmt: str, payload: bytes) -> tuple:
    if len(payload) != struct.calcsize(fmt):
        raise CommandError(protocol.E_BAD_ARGUMENT,
                           f"payload of {len(payload)} bytes, expected {struct.calcsize(fmt)}")
    return struct.unpack(fmt, payload)


def _decoded(unpack: "Callable[[bytes], tuple]", payload: bytes) -> tuple:
    """A variable-length payload's fields; a malformed one is the host's bad argument."""
    try:
        return unpack(payload)
    except ValueError as exc:
        raise CommandError(protocol.E_BAD_ARGUMENT, str(exc)) from None


class Board:
    """The firmware's logic over one hardware layer (``hal_rp2`` or ``hal_sim``)."""

    def __init__(self, hal: "Hardware", config: MotionConfig) -> None:
        config.validate(hal.max_speed, hal.max_accel)
        self.hal = hal
        self.config = config
        self.axis = Axis(hal.stepper, config)
        self.leds = Leds(hal.leds)
        self.safety = Safety(config.heartbeat_ms)
        self.parser = protocol.PacketParser()
        self.session = hal.boot_nonce
        self._last_seq = 0
        self._cached: "bytes | None" = None
        self._last_rx_us = 0
        hal.stepper.enable(False)
        if hal.watchdog_reset:
            self.safety.latch(protocol.FAULT_WATCHDOG_RESET, "the main loop stalled")
        self._handlers = {
            protocol.STATUS: self._status,
            protocol.HEARTBEAT: self._nothing,
            protocol.CLEAR_FAULT: self._clear_fault,
            protocol.LED_GEOMETRY: self._led_geometry,
            protocol.RELEASE: self._release,
            protocol.MOVE: self._move,
            protocol.STOP: self._stop,
            protocol.HOME: self._home,
            protocol.SET_POSITION: self._set_position,
            protocol.SET_LEDS: self._set_leds,
            protocol.LEDS_OFF: self._leds_off,
            protocol.SET_LEDS_RGB: self._set_leds_rgb,
            protocol.CONFIGURE: self._configure,
            protocol.GET_CONFIG: self._get_config,
        }

    # -- the link ------------------------------------------------------------------------------

    def receive(self, data: bytes, now_us: int) -> list:
        """Replies (encoded packets) to whatever complete packets ``data`` finished."""
        self._last_rx_us = now_us
        return [self.handle(packet, now_us) for packet in self.parser.feed(data)]

    def handle(self, packet: "protocol.Packet", now_us: int) -> bytes:
        if packet.code == protocol.IDENTIFY:
            return self._reply(packet.seq, protocol.OK, self._identify())
        if packet.session != self.session:
            return self._reply(packet.seq, protocol.E_STALE_SESSION,
                               f"this boot's session is {self.session}".encode())
        if packet.seq == self._last_seq and self._cached is not None:
            if self.safety.armed:  # a retransmission still shows the host is alive
                self.safety.feed(now_us)
            return self._cached
        expected = (self._last_seq + 1) & 0xFF
        if packet.seq != expected:
            return self._reply(packet.seq, protocol.E_BAD_SEQUENCE,
                               f"expected sequence {expected}".encode())
        self.safety.feed(now_us)
        handler = self._handlers.get(packet.code)
        try:
            if handler is None:
                raise CommandError(protocol.E_UNKNOWN_COMMAND, f"command {packet.code}")
            reply = self._reply(packet.seq, protocol.OK, handler(packet.payload, now_us))
        except CommandError as exc:
            reply = self._reply(packet.seq, exc.code, exc.text.encode())
        self._last_seq = packet.seq
        self._cached = reply
        return reply

    def _reply(self, seq: int, code: int, payload: bytes) -> bytes:
        return protocol.Packet(seq, code, self.session, payload).encode()

    # -- between commands ----------------------------------------------------------------------

    def tick(self, now_us: int) -> list:
        """Safety work between commands; returns replies to packets a stalled partial hid."""
        fault = self.axis.update(now_us)
        if fault:
            self._enter_fault(fault, f"stopped at step {self.axis.position}", now_us)
        if self.safety.expired(now_us):
            self.safety.disarm()
            self._enter_fault(protocol.FAULT_HEARTBEAT,
                              f"no command for {self.config.heartbeat_ms} ms", now_us)
        if not self.axis.moving and self.hal.stepper.enabled and (
                self.safety.faulted or not self.safety.armed):
            self.hal.stepper.enable(False)
        if self.parser.pending and now_us - self._last_rx_us > STALE_PARTIAL_US:
            self._last_rx_us = now_us
            return [self.handle(packet, now_us) for packet in self.parser.discard_partial()]
        return []

    def _enter_fault(self, fault: int, detail: str, now_us: int) -> None:
        self.safety.latch(fault, detail)
        self.axis.stop(now_us)
        self.leds.off()

    def internal_fault(self, detail: str, now_us: int) -> None:
        """The main loop caught an exception: make everything safe and say so."""
        self.safety.latch(protocol.FAULT_INTERNAL, detail[:100])
        self.leds.off()
        self.hal.stepper.halt(now_us)
        self.hal.stepper.enable(False)
        self.axis.known = False
        self.axis.update(now_us)

    # -- commands ------------------------------------------------------------------------------

    def _identify(self) -> bytes:
        major, minor, patch = FIRMWARE_VERSION
        return struct.pack(
            protocol.IDENTIFY_REPLY, protocol.PROTOCOL_VERSION, major, minor, patch,
            self.hal.board_id, self.hal.capabilities, self.leds.count,
            (self._last_seq + 1) & 0xFF)

    def _status(self, payload: bytes, now_us: int) -> bytes:
        _args("", payload)
        self.axis.update(now_us)
        low, high = self.hal.endstops()
        flags = (
            (protocol.F_MOVING if self.axis.moving else 0)
            | (protocol.F_POSITION_KNOWN if self.axis.known else 0)
            | (protocol.F_MOTOR_ENABLED if self.hal.stepper.enabled else 0)
            | (protocol.F_ENDSTOP_MIN if low else 0)
            | (protocol.F_ENDSTOP_MAX if high else 0)
            | (protocol.F_FAULT if self.safety.faulted else 0)
            | (protocol.F_LEDS_IN_COLOUR if self.leds.in_colour else 0)
        )
        return struct.pack(
            protocol.STATUS_REPLY, self.axis.position, self.axis.target, flags,
            self.safety.fault, len(self.leds.colours), self.leds.tag,
            self.parser.crc_errors & 0xFFFF) + self.safety.detail.encode()

    def _nothing(self, payload: bytes, now_us: int) -> bytes:
        _args("", payload)
        return b""

    def _clear_fault(self, payload: bytes, now_us: int) -> bytes:
        _args("", payload)
        self._refuse_while_moving()
        self.safety.clear()
        return b""

    def _led_geometry(self, payload: bytes, now_us: int) -> bytes:
        (first,) = _args(protocol.LED_GEOMETRY_REQUEST, payload)
        positions = self.hal.leds.positions_dmm
        if first > len(positions):
            raise CommandError(protocol.E_BAD_ARGUMENT, f"first LED {first} beyond the last")
        page = positions[first:first + protocol.LED_GEOMETRY_PAGE]
        return protocol.pack_led_geometry(first, page)

    def _release(self, payload: bytes, now_us: int) -> bytes:
        """The host leaves: stop, darken, disable the motor, and expect no heartbeat."""
        _args("", payload)
        self.axis.stop(now_us)
        self.leds.off()
        self.safety.disarm()
        return b""

    def _move(self, payload: bytes, now_us: int) -> bytes:
        mode, steps, speed = _args(protocol.MOVE_REQUEST, payload)
        self._refuse_in_fault()
        self._refuse_while_moving()
        if mode == protocol.MOVE_RELATIVE:
            target = self.axis.position + steps
        elif mode == protocol.MOVE_ABSOLUTE:
            target = steps
        else:
            raise CommandError(protocol.E_BAD_ARGUMENT, f"move mode {mode}")
        ramp = self.axis.move_to(target, self._speed(speed), now_us)
        return struct.pack(protocol.MOVE_REPLY, self.axis.target, int(ramp.duration * 1000) + 1)

    def _stop(self, payload: bytes, now_us: int) -> bytes:
        _args("", payload)
        self.axis.stop(now_us)
        return b""

    def _home(self, payload: bytes, now_us: int) -> bytes:
        (speed,) = _args(protocol.HOME_REQUEST, payload)
        self._refuse_in_fault()
        self._refuse_while_moving()
        if not self.hal.capabilities & protocol.CAP_ENDSTOP_MIN:
            raise CommandError(protocol.E_NOT_SUPPORTED, "no min endstop: set the position")
        ramp = self.axis.home(self._speed(speed), now_us)
        return struct.pack(protocol.HOME_REPLY, int(ramp.duration * 1000) + 1)

    def _set_position(self, payload: bytes, now_us: int) -> bytes:
        (steps,) = _args(protocol.SET_POSITION_REQUEST, payload)
        self._refuse_while_moving()
        low, high = self.config.limit_min, self.config.limit_max
        if not low <= steps <= high:
            raise CommandError(protocol.E_LIMIT, f"position {steps} outside [{low}, {high}]")
        self.axis.set_position(steps)
        return b""

    def _set_leds(self, payload: bytes, now_us: int) -> bytes:
        self._refuse_in_fault()
        self.leds.show(*_decoded(protocol.unpack_set_leds, payload))
        return b""

    def _set_leds_rgb(self, payload: bytes, now_us: int) -> bytes:
        self._refuse_in_fault()
        self.leds.show_colours(*_decoded(protocol.unpack_set_leds_rgb, payload))
        return b""

    def _leds_off(self, payload: bytes, now_us: int) -> bytes:
        _args("", payload)
        self.leds.off()
        return b""

    def _configure(self, payload: bytes, now_us: int) -> bytes:
        self._refuse_while_moving()
        new = MotionConfig.from_payload(payload)
        new.validate(self.hal.max_speed, self.hal.max_accel)
        for name in ("limit_min", "limit_max", "home_position", "speed", "accel",
                     "heartbeat_ms"):
            setattr(self.config, name, getattr(new, name))
        self.safety.heartbeat_ms = new.heartbeat_ms
        self.safety.feed(now_us)
        return self.config.payload()

    def _get_config(self, payload: bytes, now_us: int) -> bytes:
        _args("", payload)
        return self.config.payload()

    # -- shared refusals -----------------------------------------------------------------------

    def _speed(self, requested: int) -> int:
        if requested == 0:
            return self.config.speed
        if requested > self.hal.max_speed:
            raise CommandError(protocol.E_BAD_ARGUMENT,
                               f"speed {requested} above the board's {self.hal.max_speed} steps/s")
        return requested

    def _refuse_in_fault(self) -> None:
        if self.safety.faulted:
            raise CommandError(protocol.E_FAULT, protocol.FAULT_NAMES[self.safety.fault] + ": "
                               + self.safety.detail)

    def _refuse_while_moving(self) -> None:
        if self.axis.moving:
            raise CommandError(protocol.E_BUSY, "a move is running; stop it or wait")
