"""A serial port whose far end is a script, for testing the board driver byte by byte.

Every request packet the driver writes is decoded with the protocol module and handed to the
script, whose answer (bytes, built with the protocol module) is what the driver reads next.
``ScriptedBoard`` is a script that answers like a board on a clean line, with a few knobs
(reboot, replacement, refusals); tests wrap it to break the line.
"""

from __future__ import annotations

import errno
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from controller.hardware import protocol
from controller.hardware.board import FocusBoard
from controller.hardware.board_link import LinkSettings
from controller.hardware.board_settings import FocusBoardSettings

READ_TIMEOUT_S = 0.01  # what box.serial_opener gives pyserial
QUICK = LinkSettings(reply_timeout_s=0.02, retries=2, reconnect_s=0.0)


def reply(request: protocol.Packet, payload: bytes = b"", *, code: int = protocol.OK,
          session: int) -> bytes:
    """The encoded reply to ``request``."""
    return protocol.Packet(request.seq, code, session, payload).encode()


class ScriptedPort:
    """Implements the link's SerialPort; ``answer(request)`` gives the bytes the far end sends."""

    def __init__(self, answer: Callable[[protocol.Packet], bytes]) -> None:
        self.answer = answer
        self.written: list[bytes] = []
        self.requests: list[protocol.Packet] = []
        self.vanished = False  # like a pulled cable: every read and write fails
        self.closed = False
        self._parser = protocol.PacketParser()
        self._incoming = bytearray()
        self._lock = threading.Lock()  # the driver's heartbeat thread shares the port

    @property
    def in_waiting(self) -> int:
        return len(self._incoming)

    def read(self, size: int = 1, /) -> bytes:
        self._check()
        with self._lock:
            data = bytes(self._incoming[:size])
            del self._incoming[:size]
        if not data:
            time.sleep(READ_TIMEOUT_S)  # a real port waits its timeout before returning nothing
        return data

    def write(self, data: bytes, /) -> int:
        self._check()
        with self._lock:
            self.written.append(bytes(data))
            for request in self._parser.feed(data):
                self.requests.append(request)
                self._incoming += self.answer(request)
        return len(data)

    def reset_input_buffer(self) -> None:
        with self._lock:
            self._incoming.clear()

    def close(self) -> None:
        self.closed = True

    def commands(self) -> list[int]:
        """The commands received, heartbeats left out (their timing is the driver's own)."""
        return [r.code for r in self.requests if r.code != protocol.HEARTBEAT]

    def _check(self) -> None:
        if self.vanished or self.closed:
            raise OSError(errno.EIO, "Input/output error")


class ScriptedBoard:
    """Answers like a board on a clean line: a session, a position, ``led_count`` LEDs in a row,
    every move at once, and a fault when a test latches one.

    It trusts the host's sequence numbers (the firmware's checks are tested in test_board_logic)
    and records what it was asked, so tests look at exactly what the driver sent.
    """

    def __init__(self, session: int = 0x1234, board_id: bytes = b"SCRIPTED",
                 led_count: int = 0, capabilities: int = protocol.CAP_SIMULATED) -> None:
        self.session = session
        self.board_id = board_id
        self.led_count = led_count
        self.capabilities = capabilities
        self.next_seq = 0
        self.position_steps = 0
        self.position_known = False
        self.fault = protocol.FAULT_NONE
        self.fault_detail = b""
        self.lit: list[tuple[int, ...]] = []  # (index, level) or (index, red, green, blue)
        self.configs: list[tuple[int, ...]] = []
        self.moves: list[tuple[int, int]] = []  # (mode, steps)

    def latch_fault(self, fault: int, detail: bytes) -> None:
        """What a board does when it faults: latch it and turn the LEDs off."""
        self.fault, self.fault_detail = fault, detail
        self.lit = []

    def reboot(self, board_id: bytes | None = None) -> None:
        """A new boot: a new nonce, the position unknown (and maybe another board)."""
        self.session += 1
        self.position_known = False
        self.board_id = board_id or self.board_id

    def __call__(self, request: protocol.Packet) -> bytes:
        self.next_seq = (request.seq + 1) & 0xFF
        if request.code == protocol.IDENTIFY:
            return self._ok(request, struct.pack(
                protocol.IDENTIFY_REPLY, protocol.PROTOCOL_VERSION, 1, 2, 3, self.board_id,
                self.capabilities, self.led_count, self.next_seq))
        if request.session != self.session:
            return reply(request, b"another boot", code=protocol.E_STALE_SESSION,
                         session=self.session)
        if request.code == protocol.CONFIGURE:
            self.configs.append(struct.unpack(protocol.CONFIG, request.payload))
        elif request.code == protocol.SET_POSITION:
            (self.position_steps,) = struct.unpack(protocol.SET_POSITION_REQUEST,
                                                   request.payload)
            self.position_known = True
        elif request.code == protocol.MOVE:
            return self._move(request)
        elif request.code == protocol.STATUS:
            flags = protocol.F_POSITION_KNOWN if self.position_known else 0
            return self._ok(request, struct.pack(
                protocol.STATUS_REPLY, self.position_steps, self.position_steps, flags,
                self.fault, len(self.lit), 0, 0) + self.fault_detail)
        elif request.code == protocol.LED_GEOMETRY:
            (first,) = struct.unpack(protocol.LED_GEOMETRY_REQUEST, request.payload)
            page = range(first, min(self.led_count, first + protocol.LED_GEOMETRY_PAGE))
            return self._ok(request, protocol.pack_led_geometry(
                first, [(100 * i, 0, 400) for i in page]))
        elif request.code == protocol.SET_LEDS:
            self.lit = protocol.unpack_set_leds(request.payload)[1]
        elif request.code == protocol.SET_LEDS_RGB:
            self.lit = protocol.unpack_set_leds_rgb(request.payload)[1]
        elif request.code in (protocol.LEDS_OFF, protocol.RELEASE):
            self.lit = []
        return self._ok(request)

    def _move(self, request: protocol.Packet) -> bytes:
        mode, steps, _ = struct.unpack(protocol.MOVE_REQUEST, request.payload)
        self.moves.append((mode, steps))
        if not self.position_known:
            return reply(request, b"home or set first", code=protocol.E_POSITION_UNKNOWN,
                         session=self.session)
        self.position_steps = steps if mode == protocol.MOVE_ABSOLUTE else (
            self.position_steps + steps)
        return self._ok(request, struct.pack(protocol.MOVE_REPLY, self.position_steps, 0))

    def _ok(self, request: protocol.Packet, payload: bytes = b"") -> bytes:
        return reply(request, payload, session=self.session)


def connected(board: Callable[[protocol.Packet], bytes], **settings: Any) -> tuple[
        FocusBoard, ScriptedPort]:
    """The driver connected to a scripted far end, and the port it talks through."""
    port = ScriptedPort(board)
    # a deadline long enough that no heartbeat falls into these short tests' assertions
    values = {"steps_per_um": 10.0, "settle_s": 0.0, "heartbeat_s": 2.0, "link": QUICK,
              **settings}
    return FocusBoard(lambda: port, FocusBoardSettings(**values)).connect(), port
