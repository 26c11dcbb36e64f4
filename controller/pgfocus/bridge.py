"""The bridge: answers the pgFocus adapter's commands by driving the running focus-lock service
through its HTTP client, one serial line in, the reply lines out.

Everything it says answers a command (the adapter's device detection reads the line that
follows ``i`` as the identity, so an unprompted line could spoil it): state changes and the
lock's steps are told at the next ``v`` poll. Each lock step with a trusted reading becomes one
``STATS:`` line, so the adapter's standard deviation over its last 31 lines is the jitter of the
last 31 steps. The service not answering is an ``ERROR:`` line, never an exception: the bridge
serves on and picks up when the service is back.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from controller import __version__
from controller.pgfocus import protocol
from controller.pgfocus.protocol import Command, ProtocolError, Stats, error, info
from controller.service.client import ApiError, FocuslockClient

log = logging.getLogger("controller.pgfocus")

BUSY = frozenset({"focus", "stopping"})  # focus now runs: the lock waits until it has finished
TROUBLE = frozenset({"lost", "fault"})  # states told as ERROR: lines, the rest as INFO:
LINE_ENDS = re.compile(rb"[\r\n]")


class SerialPort(Protocol):
    """What the bridge needs of a pyserial port (opened with a read timeout)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...


class PgFocusBridge:
    """One adapter's view of the service at ``client``; ``um_per_pixel`` scales the lock's µm
    to the adapter's sensor pixels."""

    def __init__(self, client: FocuslockClient, um_per_pixel: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.um_per_pixel = um_per_pixel
        self.clock = clock
        self.started = clock()
        self.mpv = protocol.DEFAULT_MPV  # the adapter's "Microns Per Volt", as it tells us
        self.gain = 1.0  # the adapter's "Input Gain": kept and reported, nothing reads it here
        self.exposure_us = 10_000  # its "Exposure": likewise (the box's camera keeps its own)
        self.pending: str | None = None  # "lock" or "stop", once focus now has finished
        self.last_seq: int | None = None  # the newest step told (None: not in touch yet)
        self.last_state: tuple[str, str] | None = None

    # -- the serial loop ----------------------------------------------------------------------

    def serve(self, port: SerialPort, stop: threading.Event) -> None:
        """Answer the adapter until ``stop`` is set; the port's read timeout bounds how long a
        stop or a pending lock command waits. Serial errors propagate (the port went away)."""
        buffer = b""
        while not stop.is_set():
            chunk = port.read(max(1, port.in_waiting))
            if not chunk:
                if self.pending:
                    port.write(protocol.reply(self._guarded(self._settle_pending)))
                continue
            *lines, buffer = LINE_ENDS.split(buffer + chunk)
            if len(buffer) > protocol.MAX_LINE_CHARS:
                buffer = b""
                lines.append(b"\0")  # refused as garbage below
            for raw in lines:
                if raw:
                    port.write(protocol.reply(self.handle(raw.decode("ascii", "replace"))))

    def handle(self, line: str) -> list[str]:
        """The reply lines to one command line (without its line end)."""
        try:
            command = protocol.parse_command(line)
        except ProtocolError as exc:
            return [error(str(exc))]
        return self._guarded(lambda: self._dispatch(command))

    def _guarded(self, action: Callable[[], list[str]]) -> list[str]:
        try:
            return action()
        except ProtocolError as exc:
            return [error(str(exc))]
        except ApiError as exc:
            log.warning("focuslock service: %s", exc)
            return [error(f"focuslock service: {exc}")]

    # -- commands -----------------------------------------------------------------------------

    def _dispatch(self, command: Command) -> list[str]:
        word, argument = command.word, command.argument
        if word == "v":
            return self._poll()
        if word == "f":
            return self._start_lock()
        if word == "s":
            return self._stop_lock()
        if word == "i":
            return [protocol.IDENTITY]
        if word == "l":
            return [protocol.light_line(self._time_ms())]
        if word == "c":
            return [error("calibration is the focuslock box's own (docs/calibrate.md); "
                          "nothing moved")]
        if word in protocol.SILENT:
            return []
        if word == "offset":
            return self._offset(argument)
        if argument:
            return self._set(word, argument)
        return [self._query(word)]

    def _query(self, word: str) -> str:
        values = {
            "version": f"VERSION: focuslock-{__version__}",
            "slope": f"SLOPE: {self._slope():.4f}",
            "gain": f"GAIN: {self.gain:.4f}",
            "mpv": f"MPV: {self.mpv}",
            "exposure": f"EXPOSURE: {self.exposure_us}",
            "intercept": "INTERCEPT: 0.0000",  # the µm-to-pixel map is exact: no fit, no
            "residuals": "RESIDUALS: 1.000000",  # intercept, nothing left over
        }
        return values[word]

    def _set(self, word: str, argument: str) -> list[str]:
        """``gain``, ``mpv``, ``exposure`` with a value: kept, answered OK (as the firmware)."""
        if word == "gain":
            self.gain = protocol.number(argument, 0, 1e6)
            if self.gain == 0:
                raise ProtocolError("Out of Range")
        elif word == "mpv":
            self.mpv = round(protocol.number(argument, 1, 1e6))
        else:
            self.exposure_us = round(protocol.number(argument, 1, 1e7))
        return ["OK"]

    def _offset(self, argument: str) -> list[str]:
        if not argument:
            status = self.client.status()
            return [f"OFFSET: {self._px(status['offset_um']):.2f}"]
        px = protocol.number(argument, 0, protocol.SENSOR_PIXELS, high_open=True)
        self.client.set_offset(protocol.um_from_px(px, self.um_per_pixel))
        return ["OK"]

    def _start_lock(self) -> list[str]:
        """Idempotent: a running lock is fine; during focus now the lock starts after it."""
        mode = self.client.status()["mode"]
        if mode in BUSY:
            self.pending = "lock"
            return [info("Focus ON once focus now has finished")]
        self.pending = None
        if mode != "lock":
            try:
                self.client.lock()
            except ApiError as exc:  # someone else started it between the two requests
                if exc.status != 409 or self.client.status()["mode"] != "lock":
                    raise
        return [info("Focus ON")]

    def _stop_lock(self) -> list[str]:
        """Stop the lock where it is (no move); focus now in progress finishes first."""
        if self.client.status()["mode"] in BUSY:
            self.pending = "stop"
            return [info("Stopping once focus now has finished")]
        self.pending = None
        self.client.unlock()
        return [info("Stopping")]

    def _settle_pending(self, status: dict[str, Any] | None = None) -> list[str]:
        """Carry out a lock command that waited for focus now, once it has finished."""
        status = status or self.client.status()
        if self.pending is None or status["mode"] in BUSY:
            return []
        return self._start_lock() if self.pending == "lock" else self._stop_lock()

    # -- the poll -----------------------------------------------------------------------------

    def _poll(self) -> list[str]:
        """``v``: what changed since the last poll, then one STATS line per new trusted lock
        step; with nothing running, one STATS line at the held offset."""
        status = self.client.status()
        lines = self._state_change(status) + self._settle_pending(status)
        steps = self._new_steps(status)
        lines += [self._stats(status, record["z_um"], status["offset_um"] - record["error_um"])
                  for record in steps]
        if not steps and status["mode"] != "lock":
            lines.append(self._stats(status, status["z_um"], status["offset_um"]))
        return lines

    def _state_change(self, status: dict[str, Any]) -> list[str]:
        state = (str(status["state"]), str(status.get("reason") or ""))
        if state == self.last_state:
            return []
        self.last_state = state
        text = f"focuslock {state[0]}" + (f": {state[1]}" if state[1] else "")
        return [error(text) if state[0] in TROUBLE else info(text)]

    def _new_steps(self, status: dict[str, Any]) -> list[dict[str, Any]]:
        """The trusted step records since the last poll, at most the adapter's 31 newest."""
        last_step = status.get("last_step")
        newest = int(last_step["seq"]) if last_step else 0
        if self.last_seq is None or newest < self.last_seq:  # first contact, or a new service
            self.last_seq = newest
            return []
        if newest == self.last_seq:
            return []
        since = max(self.last_seq, newest - protocol.ADAPTER_QUEUE)
        records = self.client.log(since=since, limit=protocol.ADAPTER_QUEUE)["records"]
        self.last_seq = max([newest] + [int(r["seq"]) for r in records])  # steps keep coming
        return [r for r in records if r.get("error_um") is not None and not r.get("rejected")]

    def _stats(self, status: dict[str, Any], z_um: float | None, from_focus_um: float) -> str:
        """A STATS line: the drive at ``z_um`` (None: not known), ``from_focus_um`` from focus."""
        return protocol.stats_line(Stats(
            time_ms=self._time_ms(), loop_us=round(1e6 / status["rate_hz"]),
            dau=protocol.dau_from_z(z_um or 0.0, self.mpv),
            offset_px=self._px(from_focus_um), slope=self._slope(),
            exposure_us=self.exposure_us))

    def _px(self, um: float) -> float:
        return protocol.px_from_um(um, self.um_per_pixel)

    def _slope(self) -> float:
        return protocol.slope_dau_per_px(self.um_per_pixel, self.mpv)

    def _time_ms(self) -> int:
        return round((self.clock() - self.started) * 1000)
