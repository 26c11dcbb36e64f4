"""A monotonic microsecond clock that does not wrap (MicroPython's ticks wrap every ~18 min)."""

try:
    from time import ticks_diff, ticks_us  # type: ignore[attr-defined]
except ImportError:  # CPython: the firmware's logic under unit tests
    from time import monotonic_ns

    def ticks_us() -> int:
        return monotonic_ns() // 1000

    def ticks_diff(a: int, b: int) -> int:
        return a - b


class Clock:
    def __init__(self) -> None:
        self._last = ticks_us()
        self._now = 0

    def now_us(self) -> int:
        """Microseconds since boot; call at least once per wrap period (the main loop does)."""
        t = ticks_us()
        self._now += ticks_diff(t, self._last)
        self._last = t
        return self._now
