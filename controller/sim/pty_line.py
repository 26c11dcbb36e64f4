"""The serial line of a fake device: a raw pty whose host end is ``port`` (what a driver opens,
like /dev/ttyACM0) and whose device end a thread serves, a line (ended by ``\\n``) at a time.

``unplug`` is a pulled cable: the pty goes away, and the host's next read or write fails.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from collections.abc import Callable


class PtyLine:
    """Calls ``on_line(text)`` for each line the host sends (decoded, stripped) and ``on_idle()``
    between reads, polling every ``poll_s``, from its own thread once started."""

    def __init__(self, name: str, on_line: Callable[[str], None], *,
                 on_idle: Callable[[], None] = lambda: None, poll_s: float = 0.05) -> None:
        self._on_line = on_line
        self._on_idle = on_idle
        self._poll_s = poll_s
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._unplugged = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def write(self, data: bytes) -> None:
        """Send to the host; nothing once the cable is out."""
        with contextlib.suppress(OSError):
            os.write(self._master, data)

    def wait(self, seconds: float) -> None:
        """Pass time in the device (a firmware busy stepping), cut short by an unplug."""
        self._unplugged.wait(seconds)

    def unplug(self) -> None:
        self._unplugged.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _serve(self) -> None:
        pending = b""
        while not self._unplugged.is_set():
            ready, _, _ = select.select([self._master], [], [], self._poll_s)
            if ready:
                try:
                    pending += os.read(self._master, 4096)
                except OSError:
                    return
            while b"\n" in pending:
                line, _, pending = pending.partition(b"\n")
                self._on_line(line.decode("ascii", "replace").strip())
            self._on_idle()
