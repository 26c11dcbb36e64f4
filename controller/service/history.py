"""The service's recent step records, numbered, for clients that poll ``/api/log?since=SEQ``.

Each entry is a step record as the API shows it (``step_entry``). A lock runs for days, so only
the newest ``capacity`` entries are kept (the run log on disk has them all). Sequence numbers
start at 1 and never repeat within a service's life, so a client that remembers the last number
it saw gets exactly the entries it has not seen, and learns how many it missed if it fell behind
the buffer.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.runlog import StepRecord


def step_entry(record: StepRecord, wall_time: float) -> dict[str, Any]:
    """A step record as the API shows it: gates as a list, wall-clock time, no NaN."""
    row = record.to_row()
    row["rejected"] = [gate for gate in record.rejected.split("+") if gate]
    row["time"] = wall_time
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in row.items()}


@dataclass(frozen=True)
class Page:
    entries: list[dict[str, Any]]  # oldest first, each with its "seq"
    last_seq: int  # the newest sequence number so far (0: none yet)
    missed: int  # entries after ``since`` that fell out of the buffer before this request
    more: bool  # the limit cut the page short: ask again with the last entry's seq


class StepHistory:
    """A bounded, thread-safe buffer of numbered entries (the worker appends, HTTP reads).
    Listeners (the live events) hear of each entry as it is stored, in order: there is one
    appender."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("history capacity must be >= 1")  # a caller's bug
        self._entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._last_seq = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._last_seq

    def listen(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener`` with every entry stored from now on (it must not block)."""
        self._listeners.append(listener)

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Store a copy of ``entry`` numbered by its ``seq`` key, tell the listeners, and return
        the copy."""
        with self._lock:
            self._last_seq += 1
            stored = {"seq": self._last_seq, **entry}
            self._entries.append(stored)
        for listener in self._listeners:
            listener(stored)
        return stored

    def since(self, seq: int, limit: int) -> Page:
        """Up to ``limit`` entries with a sequence number above ``seq``, oldest first."""
        with self._lock:
            oldest = self._entries[0]["seq"] if self._entries else self._last_seq + 1
            missed = max(0, min(oldest, self._last_seq + 1) - max(seq, 0) - 1)
            newer = [e for e in self._entries if e["seq"] > seq]
            return Page(newer[:limit], self._last_seq, missed, len(newer) > limit)
