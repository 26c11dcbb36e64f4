"""Time as the loop sees it: the monotonic clock of the box and the twin, or the simulated time
of the in-process virtual microscope.

The loop, the virtual camera and the virtual drive share one clock, so in-process simulations run
as fast as the CPU allows while behaving exactly as they would in real time (a move takes its
travel plus settling time, an exposure its exposure time, drift accumulates with elapsed time).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale (time.monotonic() on the real box)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass (no-op for zero or negative)."""
        ...


class MonotonicClock:
    """Real time."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class SimulatedClock:
    """Simulated time: sleeping advances it instantly."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds
