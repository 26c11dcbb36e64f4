"""A stand-in for Micro-Manager's pgFocus adapter on the master side of a pty: it sends what the
adapter sends (mmCoreAndDevices DeviceAdapters/pgFocus/pgFocus.cpp) and reads the replies as its
monitoring thread does: lines split at ``\\r`` (``\\n`` dropped), the first word picks the
parser, numbers read in the adapter's order and types; ``GAIN:`` and ``MPV:`` are sent back as
``gain x`` / ``mpv x``, as the adapter's setters do."""

from __future__ import annotations

import math
import os
import select
import time
from collections import deque
from dataclasses import dataclass, field

IDENTITY = "BIG-pgFocus"
START_UP = ("version", "slope", "gain", "intercept", "residuals", "l")  # Initialize's order
QUEUE = 31  # qoffsetMax_ 30: pop when above 30, then push
DAU_PER_VOLT = 1638
READ_WINDOW_S = 0.3  # how long one poll listens for STATS lines before it polls again


@dataclass
class Stats:
    running_ms: int
    loop_us: int
    light_min: int
    light_max: int
    dac: int
    offset: float
    slope: float
    exposure: int
    adc: int
    adc_difference: int


STATS_TYPES = (int, int, int, int, int, float, float, int, int, int)


@dataclass
class Adapter:
    fd: int  # the pty's master side
    lines: list[str] = field(default_factory=list)  # every line received, in order
    offsets: deque[float] = field(default_factory=lambda: deque(maxlen=QUEUE))
    stats: list[Stats] = field(default_factory=list)
    slope: float = 0.0
    mpv: int = 10
    gain: float = 1.0
    version: str = "NA"
    intercept: float = 0.0
    residuals: float = 0.0
    light: list[int] = field(default_factory=list)
    last_status: str = "NA"
    last_error: str = "NA"
    _partial: str = ""

    def send(self, command: str) -> None:
        os.write(self.fd, command.encode("latin-1") + b"\r")

    def exchange(self, command: str, timeout_s: float = 30.0) -> list[str]:
        """Send ``command``, then ``i`` as a fence: the replies to ``command`` are the lines
        before the identity (the bridge answers in order)."""
        self.send(command)
        return self.fence(timeout_s)

    def fence(self, timeout_s: float = 30.0) -> list[str]:
        """Send ``i`` and read up to its answer: every line before it (the bridge answers in
        order)."""
        self.send("i")
        start = len(self.lines)
        deadline = time.monotonic() + timeout_s
        while IDENTITY not in self.lines[start:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"no identity within {timeout_s} s: {self.lines[start:]}")
            self.receive(deadline - time.monotonic())
        return self.lines[start:start + self.lines[start:].index(IDENTITY)]

    def start_up(self) -> list[str]:
        """pgFocusHub::Initialize: the queries, without waiting for answers between them."""
        for command in START_UP[:-1]:
            self.send(command)
        replies = self.exchange(START_UP[-1])
        return replies + self.fence()  # the answer to the "gain x" that GAIN: made it send

    def poll_until(self, done, timeout_s: float = 60.0, what: str = "") -> None:
        """The monitoring thread: ``v``, read what comes, again, until ``done(self)``."""
        deadline = time.monotonic() + timeout_s
        while not done(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out polling for {what}: {self.lines[-5:]}")
            self.send("v")
            self.receive(READ_WINDOW_S)

    def receive(self, timeout_s: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout_s))
        if not ready:
            return
        data = os.read(self.fd, 4096).decode("latin-1")
        for char in data:
            if char == "\r":
                self._parse(self._partial)
                self._partial = ""
            elif char != "\n":
                self._partial += char

    def standard_deviation_nm(self) -> float:
        """The adapter's "Standard Deviation nM": sample SD of its offsets, scaled to nm."""
        n = len(self.offsets)
        mean = sum(self.offsets) / n
        sd = math.sqrt(sum((x - mean) ** 2 for x in self.offsets) / (n - 1))
        return sd * self.slope / DAU_PER_VOLT * self.mpv * 1000

    def _parse(self, message: str) -> None:
        if not message:
            return
        self.lines.append(message)
        words = message.split()
        mode, rest = words[0], words[1:]
        if mode == "STATS:":
            assert len(rest) == len(STATS_TYPES), message
            stats = Stats(*(kind(word) for kind, word in zip(STATS_TYPES, rest, strict=True)))
            self.stats.append(stats)
            self.offsets.append(stats.offset)
            self.slope = stats.slope
        elif mode == "LIGHT:":
            self.light = [int(word) for word in rest[1:]]
        elif mode == "VERSION:":
            self.version = rest[0]
        elif mode == "INTERCEPT:":
            self.intercept = float(rest[0])
        elif mode == "SLOPE:":
            self.slope = float(rest[0])
        elif mode == "GAIN:":
            self.gain = float(rest[0])
            self.send(f"gain {self.gain:g}")
        elif mode == "MPV:":
            self.mpv = int(rest[0])
            self.send(f"mpv {self.mpv}")
        elif mode == "RESIDUALS:":
            self.residuals = float(rest[0])
        elif mode == "INFO:":
            self.last_status = message[6:]
        elif mode == "ERROR:":
            self.last_error = message[7:]
