"""The focus board's wire format: packets, CRC and payload layouts, shared by host and board.

This one file runs under CPython (the host driver) and under MicroPython (the firmware imports it
as ``focusboard/protocol.py``, a symlink to this file), so the two ends cannot drift apart. It is
therefore written in the subset both interpreters share: no ``__future__`` imports, no
dataclasses or enums, annotations only with built-in types. ``firmware/PROTOCOL.md`` describes
the format in prose; ``tests/firmware/packet_vectors.json`` pins it to bytes.

Packet (little-endian)::

    sync 0xF5 | length u8 | seq u8 | code u8 | session u32 | payload | crc u16

``length`` counts seq..payload; the CRC-16/CCITT-FALSE covers length..payload. In a request
``code`` is the command and ``session`` the board's boot nonce as the host knows it; in a reply
``code`` is the status (0 = OK) and ``session`` the board's own boot nonce.
"""

import struct

PROTOCOL_VERSION = 1
SYNC = 0xF5
HEADER_LEN = 6  # seq, code, session: the part of ``length`` that is not payload
MAX_PAYLOAD = 255 - HEADER_LEN

# Commands (request ``code``).
IDENTIFY = 0x01
STATUS = 0x02
HEARTBEAT = 0x03
CLEAR_FAULT = 0x04
LED_GEOMETRY = 0x05
RELEASE = 0x06
MOVE = 0x10
STOP = 0x11
HOME = 0x12
SET_POSITION = 0x13
SET_LEDS = 0x20
LEDS_OFF = 0x21
SET_LEDS_RGB = 0x22
CONFIGURE = 0x30
GET_CONFIG = 0x31

# Reply status (reply ``code``); an error reply's payload is UTF-8 text saying why.
OK = 0
E_UNKNOWN_COMMAND = 1
E_BAD_ARGUMENT = 2
E_STALE_SESSION = 3
E_BAD_SEQUENCE = 4
E_FAULT = 5
E_POSITION_UNKNOWN = 6
E_LIMIT = 7
E_BUSY = 8
E_NOT_SUPPORTED = 9
ERROR_NAMES = {
    E_UNKNOWN_COMMAND: "unknown command",
    E_BAD_ARGUMENT: "bad argument",
    E_STALE_SESSION: "stale session",
    E_BAD_SEQUENCE: "bad sequence",
    E_FAULT: "board in fault state",
    E_POSITION_UNKNOWN: "position unknown",
    E_LIMIT: "outside travel limits",
    E_BUSY: "busy",
    E_NOT_SUPPORTED: "not supported",
}

# Faults the board latches until the host clears them (status ``fault``).
FAULT_NONE = 0
FAULT_HEARTBEAT = 1
FAULT_ENDSTOP = 2
FAULT_HOMING = 3
FAULT_WATCHDOG_RESET = 4
FAULT_INTERNAL = 5
FAULT_NAMES = {
    FAULT_NONE: "none",
    FAULT_HEARTBEAT: "heartbeat deadline missed",
    FAULT_ENDSTOP: "endstop hit during a move",
    FAULT_HOMING: "homing found no endstop",
    FAULT_WATCHDOG_RESET: "board was reset by its watchdog",
    FAULT_INTERNAL: "internal firmware error",
}

# Status flags.
F_MOVING = 0x01
F_POSITION_KNOWN = 0x02
F_MOTOR_ENABLED = 0x04
F_ENDSTOP_MIN = 0x08
F_ENDSTOP_MAX = 0x10
F_FAULT = 0x20
F_LEDS_IN_COLOUR = 0x40  # the lit pattern's colours are the host's (SET_LEDS_RGB)

# Capabilities (identify).
CAP_ENDSTOP_MIN = 0x01
CAP_ENDSTOP_MAX = 0x02
CAP_LED_MATRIX = 0x04
CAP_LED_PWM = 0x08
CAP_LED_RGB = 0x10  # each LED has red, green and blue emitters the host sets (SET_LEDS_RGB)
CAP_SIMULATED = 0x80

MOVE_RELATIVE = 0
MOVE_ABSOLUTE = 1

# Payload layouts (struct formats); variable parts are described beside their helpers.
IDENTIFY_REPLY = "<BBBB8sHHB"  # protocol, fw major, minor, patch, board id, caps, LEDs, next seq
STATUS_REPLY = "<iiBBHHH"  # position, target, flags, fault, lit LED count, pattern tag, rx errors;
# then the fault's detail as UTF-8 text
MOVE_REQUEST = "<BiI"  # mode, steps, speed (steps/s; 0 = configured speed)
MOVE_REPLY = "<iI"  # target, planned duration in ms
HOME_REQUEST = "<I"  # speed (steps/s; 0 = configured speed)
HOME_REPLY = "<I"  # longest duration in ms
SET_POSITION_REQUEST = "<i"
CONFIG = "<iiiIIH"  # limit min, limit max, home position, speed, acceleration, heartbeat ms
LED_GEOMETRY_REQUEST = "<H"  # first index
LED_GEOMETRY_HEAD = "<HB"  # first index, count; then count x LED_POSITION
LED_POSITION = "<hhh"  # x, y, d in 0.1 mm
LED_GEOMETRY_PAGE = 40
SET_LEDS_HEAD = "<HB"  # pattern tag, count; then count x LED_LEVEL or LED_COLOUR
LED_LEVEL = "<HB"  # index, brightness 0..255 (SET_LEDS: in the board's own colour)
LED_COLOUR = "<HBBB"  # index, red, green, blue 0..255 (SET_LEDS_RGB)


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), bytewise without a table."""
    for byte in data:
        x = ((crc >> 8) ^ byte) & 0xFF
        x ^= x >> 4
        crc = ((crc << 8) ^ (x << 12) ^ (x << 5) ^ x) & 0xFFFF
    return crc


class Packet:
    """One decoded packet; the same shape serves requests and replies."""

    __slots__ = ("code", "payload", "seq", "session")

    def __init__(self, seq: int, code: int, session: int, payload: bytes = b"") -> None:
        self.seq = seq
        self.code = code
        self.session = session
        self.payload = bytes(payload)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Packet)
            and self.seq == other.seq
            and self.code == other.code
            and self.session == other.session
            and self.payload == other.payload
        )

    def __repr__(self) -> str:
        return (f"Packet(seq={self.seq}, code={self.code}, session={self.session}, "
                f"payload={self.payload!r})")

    def encode(self) -> bytes:
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")
        body = struct.pack(
            "<BBBI", HEADER_LEN + len(self.payload), self.seq & 0xFF, self.code & 0xFF,
            self.session & 0xFFFFFFFF,
        ) + self.payload
        return bytes([SYNC]) + body + struct.pack("<H", crc16(body))


class PacketParser:
    """Turns a byte stream into packets; drops garbage and corrupt packets, then resynchronises.

    A corrupt packet costs only its sync byte: scanning restarts one byte later, so a good packet
    hidden behind garbage is still found. Counters say how much was thrown away.
    """

    def __init__(self) -> None:
        self._buf = b""
        self.crc_errors = 0
        self.dropped_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a packet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list:
        self._buf = self._buf + bytes(data)
        packets: list = []
        while True:
            buf = self._buf
            start = buf.find(bytes([SYNC]))
            if start < 0:
                self.dropped_bytes += len(buf)
                self._buf = b""
                return packets
            if start:
                self.dropped_bytes += start
                buf = buf[start:]
            self._buf = buf
            if len(buf) < 2:
                return packets
            length = buf[1]
            if length < HEADER_LEN:
                self._skip_sync()
                continue
            end = 2 + length
            if len(buf) < end + 2:
                return packets
            if crc16(buf[1:end]) != buf[end] | (buf[end + 1] << 8):
                self.crc_errors += 1
                self._skip_sync()
                continue
            session = struct.unpack("<I", buf[4:8])[0]
            packets.append(Packet(buf[2], buf[3], session, buf[8:end]))
            self._buf = buf[end + 2:]

    def discard_partial(self) -> list:
        """Give up on a partial packet that stopped arriving (its sync byte was garbage)."""
        if not self._buf:
            return []
        self._skip_sync()
        return self.feed(b"")

    def _skip_sync(self) -> None:
        self.dropped_bytes += 1
        self._buf = self._buf[1:]


def error_text(code: int, payload: bytes) -> str:
    """A reply's error as one line: its name and the board's own words."""
    name = ERROR_NAMES.get(code, f"error {code}")
    detail = payload.decode() if payload else ""
    return name + ": " + detail if detail else name


def _pack_list(head: str, item: str, first: int, items: list) -> bytes:
    """A payload of a head (``first``, count) and ``items`` packed one after another."""
    out = struct.pack(head, first, len(items))
    for fields in items:
        out += struct.pack(item, *fields)
    return out


def _unpack_list(name: str, head: str, item: str, payload: bytes) -> tuple:
    """``(first, [fields, ...])`` of such a payload; ValueError naming ``name`` when its length
    is not the one its count says."""
    head_size = struct.calcsize(head)
    item_size = struct.calcsize(item)
    if len(payload) < head_size:
        raise ValueError(name + " payload too short")
    first, count = struct.unpack(head, payload[:head_size])
    expected = head_size + count * item_size
    if len(payload) != expected:
        raise ValueError(f"{name} payload holds {len(payload)} bytes, expected {expected}")
    return first, [
        struct.unpack(item, payload[head_size + k * item_size:head_size + (k + 1) * item_size])
        for k in range(count)
    ]


def pack_set_leds(tag: int, levels: list) -> bytes:
    """SET_LEDS payload from ``[(index, brightness 0..255), ...]``; the pattern replaces all."""
    return _pack_list(SET_LEDS_HEAD, LED_LEVEL, tag, levels)


def unpack_set_leds(payload: bytes) -> tuple:
    """``(tag, [(index, brightness), ...])``; ValueError when the payload's length is wrong."""
    return _unpack_list("SET_LEDS", SET_LEDS_HEAD, LED_LEVEL, payload)


def pack_set_leds_rgb(tag: int, colours: list) -> bytes:
    """SET_LEDS_RGB payload from ``[(index, red, green, blue 0..255), ...]``; the pattern
    replaces all."""
    return _pack_list(SET_LEDS_HEAD, LED_COLOUR, tag, colours)


def unpack_set_leds_rgb(payload: bytes) -> tuple:
    """``(tag, [(index, red, green, blue), ...])``; ValueError when the payload's length is
    wrong."""
    return _unpack_list("SET_LEDS_RGB", SET_LEDS_HEAD, LED_COLOUR, payload)


def pack_led_geometry(first: int, positions_dmm: list) -> bytes:
    """LED_GEOMETRY reply: positions ``(x, y, d)`` in 0.1 mm from LED ``first`` on."""
    return _pack_list(LED_GEOMETRY_HEAD, LED_POSITION, first, positions_dmm)


def unpack_led_geometry(payload: bytes) -> tuple:
    """``(first, [(x, y, d) in 0.1 mm, ...])``; ValueError when the payload's length is wrong."""
    return _unpack_list("LED_GEOMETRY", LED_GEOMETRY_HEAD, LED_POSITION, payload)
