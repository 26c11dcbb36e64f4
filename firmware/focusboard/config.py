"""The motion settings the host may change at run time, and their validation on the board.

The board checks every value itself (the host could be wrong or malicious): limits ordered,
speeds and acceleration within what the hardware layer says it can do, a sane heartbeat.
"""

import struct

from . import protocol
from .errors import CommandError

HEARTBEAT_MIN_MS = 20
HEARTBEAT_MAX_MS = 60000


class MotionConfig:
    def __init__(self, limit_min: int, limit_max: int, home_position: int, speed: int,
                 accel: int, heartbeat_ms: int) -> None:
        self.limit_min = limit_min
        self.limit_max = limit_max
        self.home_position = home_position
        self.speed = speed
        self.accel = accel
        self.heartbeat_ms = heartbeat_ms

    @classmethod
    def from_dict(cls, d: dict) -> "MotionConfig":
        return cls(d["limit_min"], d["limit_max"], d["home_position"], d["speed"], d["accel"],
                   d["heartbeat_ms"])

    @classmethod
    def from_payload(cls, payload: bytes) -> "MotionConfig":
        if len(payload) != struct.calcsize(protocol.CONFIG):
            raise CommandError(protocol.E_BAD_ARGUMENT, "CONFIGURE payload has the wrong length")
        return cls(*struct.unpack(protocol.CONFIG, payload))

    def payload(self) -> bytes:
        return struct.pack(protocol.CONFIG, self.limit_min, self.limit_max, self.home_position,
                           self.speed, self.accel, self.heartbeat_ms)

    def validate(self, max_speed: int, max_accel: int) -> None:
        """Raise CommandError naming the first value the board will not accept."""
        bad = protocol.E_BAD_ARGUMENT
        if self.limit_min >= self.limit_max:
            raise CommandError(bad, f"limit_min {self.limit_min} must be < limit_max "
                                    f"{self.limit_max}")
        if self.home_position >= self.limit_min:
            raise CommandError(bad, f"home_position {self.home_position} must be below "
                                    f"limit_min {self.limit_min}")
        if not 0 < self.speed <= max_speed:
            raise CommandError(bad, f"speed {self.speed} must be in 1..{max_speed} steps/s")
        if not 0 < self.accel <= max_accel:
            raise CommandError(bad, f"accel {self.accel} must be in 1..{max_accel} steps/s²")
        if not HEARTBEAT_MIN_MS <= self.heartbeat_ms <= HEARTBEAT_MAX_MS:
            raise CommandError(bad, f"heartbeat {self.heartbeat_ms} ms must be in "
                                    f"{HEARTBEAT_MIN_MS}..{HEARTBEAT_MAX_MS}")
