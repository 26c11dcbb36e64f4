"""The focus board's link: request/reply packets over a serial port the caller opens.

One command is in flight at a time; a command whose reply does not come is sent again with the
same sequence number (the board answers a repeat from its cache and never runs it twice). The
board's boot nonce is the session: when it changes the board has rebooted or been replaced, and
the link raises PositionUnknown instead of trusting the old position.

The link never opens a device itself: it is given an opener (PyMeasure's habit), which it calls
once on ``open`` and again when the port vanished (a pulled cable, a board that re-enumerated).
``controller.hardware.box.serial_opener`` makes one for a USB serial device; tests give a
scripted port instead (tests/hardware/scripted_port.py).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from controller.hardware import protocol
from controller.hardware.interfaces import DriveFault, HardwareError, PositionUnknown

log = logging.getLogger(__name__)


class BoardError(HardwareError):
    """The board refused a command; ``code`` is the protocol's error code."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class LinkLost(HardwareError):
    """No answer from the board (no cable, no power, or a line too noisy to get through)."""


class TravelLimit(DriveFault):
    """The move would leave the soft travel limits the board enforces."""


class BoardFault(DriveFault):
    """The board has latched a fault (heartbeat, endstop, homing...) that the host must clear."""


class SerialPort(Protocol):
    """What the link needs of a serial port: pyserial's ``Serial`` or a test's scripted port.

    ``read`` returns what has arrived within the port's short read timeout (about 10 ms), maybe
    nothing; a port that vanished raises OSError (pyserial's SerialException is one).
    """

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


PortOpener = Callable[[], SerialPort]
"""Opens the board's port (again); raises LinkLost when the port is not there."""


@dataclass(frozen=True)
class LinkSettings:
    """How patient the link is with a silent board and a vanished port."""

    reply_timeout_s: float = 0.1  # before a command is sent again
    retries: int = 8
    reconnect_s: float = 5.0  # how long a lost port is looked for before giving up


@dataclass(frozen=True)
class BoardInfo:
    protocol_version: int
    firmware_version: str
    board_id: str
    capabilities: int
    led_count: int
    session: int

    @property
    def simulated(self) -> bool:
        return bool(self.capabilities & protocol.CAP_SIMULATED)

    @property
    def has_min_endstop(self) -> bool:
        return bool(self.capabilities & protocol.CAP_ENDSTOP_MIN)


def unpack_reply(fmt: str, payload: bytes, what: str, *,
                 text_follows: bool = False) -> tuple[Any, ...]:
    """A reply payload's fields; a payload of the wrong length (a board bug, or another
    firmware) is a BoardError naming the reply, never a struct.error. ``text_follows``: the
    fixed fields may be followed by text."""
    size = struct.calcsize(fmt)
    if len(payload) != size and not (text_follows and len(payload) > size):
        raise BoardError(f"focus board: a malformed {what} reply ({len(payload)} bytes, "
                         f"expected {size}{' or more' if text_follows else ''})")
    return tuple(struct.unpack(fmt, payload[:size]))


_ERRORS: dict[int, type[HardwareError]] = {
    protocol.E_POSITION_UNKNOWN: PositionUnknown,
    protocol.E_FAULT: BoardFault,
    protocol.E_LIMIT: TravelLimit,
    protocol.E_BUSY: DriveFault,
}


class BoardLink:
    """Packets over one serial port: sequence numbers, retries, sessions, reconnects.

    ``on_new_session(info)`` runs (inside the link's lock) when the board answers with a new
    boot nonce, before PositionUnknown is raised to the caller, so the owner can reconfigure it.
    """

    def __init__(self, open_port: PortOpener, settings: LinkSettings | None = None,
                 on_new_session: Callable[[BoardInfo], None] | None = None) -> None:
        self.open_port = open_port
        self.settings = settings or LinkSettings()
        self.on_new_session = on_new_session
        self.info: BoardInfo | None = None
        self.retransmissions = 0
        self.last_activity = 0.0
        self._port: SerialPort | None = None
        self._parser = protocol.PacketParser()
        self._lock = threading.RLock()
        self._next_seq = 0
        self._last_reply_session = 0

    # -- opening -------------------------------------------------------------------------------

    def open(self) -> BoardInfo:
        """Open the port and learn the board's session; check the protocol version."""
        with self._lock:
            self._open_port()
            try:
                info = self.identify()
            except HardwareError:
                self.close()
                raise
            self.info = info
            return info

    def close(self) -> None:
        with self._lock:
            if self._port is not None:
                self._port.close()
                self._port = None

    def _open_port(self) -> None:
        self._port = self.open_port()
        self._port.reset_input_buffer()
        self._parser = protocol.PacketParser()

    def _reopen(self) -> None:
        """The port vanished (cable pulled): look for it again for ``reconnect_s``."""
        self.close()
        deadline = time.monotonic() + self.settings.reconnect_s
        while True:
            try:
                self._open_port()
                log.warning("focus board: port reopened after it was lost")
                return
            except LinkLost:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    # -- commands ------------------------------------------------------------------------------

    def identify(self) -> BoardInfo:
        payload = self._exchange(protocol.IDENTIFY, b"", session=0)[1]
        if len(payload) < 1 or payload[0] != protocol.PROTOCOL_VERSION:
            version = payload[0] if payload else "none"
            raise BoardError(f"focus board speaks protocol {version}, this driver "
                             f"{protocol.PROTOCOL_VERSION}: update the firmware or the host")
        version, major, minor, patch, board_id, caps, leds, next_seq = unpack_reply(
            protocol.IDENTIFY_REPLY, payload, "IDENTIFY", text_follows=True)
        self._next_seq = next_seq
        return BoardInfo(version, f"{major}.{minor}.{patch}", board_id.hex(), caps, leds,
                         self._last_reply_session)

    def call(self, command: int, payload: bytes = b"") -> bytes:
        """Run one command; return the reply payload or raise the error the board gave."""
        with self._lock:
            if self.info is None:
                raise LinkLost("the focus board link is not open")
            for _ in range(2):
                code, reply = self._exchange(command, payload, self.info.session)
                if code == protocol.E_BAD_SEQUENCE:
                    # Nothing ran: the host lost count (e.g. another host talked to the board).
                    # Learn the board's next number and send the command once more.
                    self.identify()
                    continue
                if code == protocol.E_STALE_SESSION or self._last_reply_session != (
                        self.info.session):
                    self._new_session()
                if code != protocol.OK:
                    error = _ERRORS.get(code, BoardError)
                    text = protocol.error_text(code, reply)
                    if error is BoardError:
                        raise BoardError(f"focus board: {text}", code)
                    raise error(f"focus board: {text}")
                return reply
            raise BoardError("focus board: sequence numbers would not agree")

    def _new_session(self) -> None:
        old = self.info
        new = self.identify()
        self.info = new
        if old is not None and old.board_id != new.board_id:
            what = f"was replaced (id {old.board_id} -> {new.board_id})"
        else:
            what = "rebooted"
        log.warning("focus board %s; its position is unknown", what)
        if self.on_new_session is not None:
            self.on_new_session(new)
        raise PositionUnknown(
            f"focus board {what}: its position is unknown until it is homed or set")

    def _exchange(self, command: int, payload: bytes, session: int) -> tuple[int, bytes]:
        """Send until the reply with our sequence number arrives; (status code, payload)."""
        seq = self._next_seq
        # The number is used up even if no reply comes: the board may have run the command,
        # and a later command under the same number would get that command's cached reply.
        self._next_seq = (seq + 1) & 0xFF
        request = protocol.Packet(seq, command, session, payload).encode()
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            if attempt:
                self.retransmissions += 1
            try:
                if self._port is None:
                    self._reopen()
                assert self._port is not None
                self._port.write(request)
                reply = self._await(self._port, seq, self.settings.reply_timeout_s)
            except OSError:
                self._reopen()
                continue
            if reply is not None:
                self._last_reply_session = reply.session
                self.last_activity = time.monotonic()
                return reply.code, reply.payload
        raise LinkLost(f"no reply from the focus board after {attempts} tries "
                       f"(command {command})")

    def _await(self, port: SerialPort, seq: int, timeout_s: float) -> protocol.Packet | None:
        deadline = time.monotonic() + timeout_s
        while True:
            data = port.read(port.in_waiting or 1)
            for packet in self._parser.feed(data) if data else []:
                if packet.seq == seq:
                    return packet
                log.debug("focus board: dropped a stale reply %r", packet)
            if time.monotonic() > deadline:
                for packet in self._parser.discard_partial():
                    if packet.seq == seq:
                        return packet
                return None
