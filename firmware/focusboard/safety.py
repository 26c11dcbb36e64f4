"""The board's own guard: the host's heartbeat deadline and the latched fault.

The deadline is armed by the first command of a session and re-armed by every command after
it; when it passes the board stops, darkens and latches a fault that only the host clears.
"""

from . import protocol


class Safety:
    def __init__(self, heartbeat_ms: int) -> None:
        self.heartbeat_ms = heartbeat_ms
        self.fault = protocol.FAULT_NONE
        self.detail = ""
        self._deadline_us: "int | None" = None

    @property
    def armed(self) -> bool:
        return self._deadline_us is not None

    def feed(self, now_us: int) -> None:
        """A valid command arrived: the host is alive until ``heartbeat_ms`` from now."""
        self._deadline_us = now_us + self.heartbeat_ms * 1000

    def disarm(self) -> None:
        self._deadline_us = None

    def expired(self, now_us: int) -> bool:
        return self._deadline_us is not None and now_us >= self._deadline_us

    def latch(self, fault: int, detail: str) -> None:
        """Record the first fault; later ones do not overwrite the reason the host must see."""
        if self.fault == protocol.FAULT_NONE:
            self.fault = fault
            self.detail = detail

    def clear(self) -> None:
        self.fault = protocol.FAULT_NONE
        self.detail = ""

    @property
    def faulted(self) -> bool:
        return self.fault != protocol.FAULT_NONE
