"""The systemd notify protocol, spoken with a plain datagram socket (no libsystemd binding).

systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace) to a
``Type=notify`` service and, with ``WatchdogSec=``, ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``).
The service says ``READY=1`` once it answers requests, ``STATUS=...`` for ``systemctl status``,
``WATCHDOG=1`` at least every ``WATCHDOG_USEC`` (from the loop's own thread, so a hung loop stops
the pings and systemd restarts it), and ``STOPPING=1`` on its way out. Outside systemd
(no ``NOTIFY_SOCKET``) every call does nothing, so the same code runs from a terminal.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to systemd; silent when not started by systemd."""

    def __init__(self, address: str | None, watchdog_s: float | None = None) -> None:
        self.address = address
        self.watchdog_s = watchdog_s  # systemd's deadline; None: no watchdog configured
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()  # the worker and the main thread both send
        self._warned = False
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """The notifier systemd asked for through the environment."""
        address = environ.get("NOTIFY_SOCKET") or None
        watchdog_s = None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog_s = int(usec) / 1e6
        return cls(address, watchdog_s)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *assignments: str) -> None:
        """One datagram of newline-separated ``KEY=VALUE`` assignments."""
        if self._socket is None or self.address is None:
            return
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with self._lock:
                self._socket.sendto("\n".join(assignments).encode(), target)
        except OSError as exc:  # systemd gone or the socket unreachable: never fatal
            if not self._warned:
                log.warning("sd_notify to %s failed: %s", self.address, exc)
                self._warned = True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={_one_line(status)}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={_one_line(status)}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={_one_line(status)}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _one_line(text: str) -> str:
    """A STATUS value ends at the newline that separates assignments."""
    return " ".join(text.split())
