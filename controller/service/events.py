"""Live events for ``GET /api/events``: the service's state changes, step records and a guided
calibration's progress, pushed to every subscriber as server-sent events (text/event-stream).

The worker publishes; it must never wait for a client. So each subscriber has a bounded queue
the worker only ever appends to without blocking: a subscriber that does not keep up overflows
its queue and is dropped (its stream is cut), and the worker goes on. The number of subscribers
is bounded too. A subscriber that names the last step it saw (``Last-Event-ID`` or ``?since=``)
first gets the steps after it from the step history, with a ``missed`` event when some fell out
of that bounded history; steps are numbered by their ``seq``, which is each step event's ``id``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.service.errors import Unavailable
from controller.service.history import StepHistory

log = logging.getLogger(__name__)

MAX_SUBSCRIBERS = 16
QUEUE_SIZE = 256  # events a subscriber may fall behind by: 13 s of a 20 Hz lock
HEARTBEAT_S = 15.0  # a comment this often keeps proxies and clients sure the stream is alive
RETRY_MS = 2000  # how long an EventSource waits before it reconnects
REPLAY_PAGE = 500  # history entries read at a time when a subscriber resumes


@dataclass(frozen=True)
class Event:
    """One server-sent event: its type, its JSON data and, for a step, its sequence number."""

    kind: str  # "state", "step", "missed" or "calibration"
    data: dict[str, Any]
    id: int | None = None

    def encode(self) -> bytes:
        lines = ([f"id: {self.id}"] if self.id is not None else []) + [
            f"event: {self.kind}", f"data: {json.dumps(self.data, allow_nan=False)}"]
        return ("\n".join(lines) + "\n\n").encode()


HEARTBEAT = b": keep-alive\n\n"


class Subscription:
    """One subscriber's queue and stream. The worker offers events (never blocking); the
    subscriber's own thread writes them out (``stream``) until the hub drops or closes it."""

    def __init__(self, hub: EventHub, since: int | None) -> None:
        self._hub = hub
        self._since = since
        self._queue: deque[Event] = deque()
        self._ready = threading.Condition()
        self._ended = ""  # why the stream ends, once it must
        self._dropped = False  # it ended because its client fell behind
        self._cut: Callable[[], None] = lambda: None

    def offer(self, event: Event) -> None:
        """Queue ``event``; on overflow end the stream and cut the connection (any thread)."""
        with self._ready:
            if self._ended:
                return
            if len(self._queue) < self._hub.queue_size:
                self._queue.append(event)
                self._ready.notify()
                return
            self._end_locked(f"fell {self._hub.queue_size} events behind")
            self._dropped = True
        self._hub.count_drop()
        self.cut()  # its writer may be blocked on a full socket: make that write fail now

    def cut(self) -> None:
        """Cut the connection under the stream, so a write blocked on a client that does not
        read fails at once (what was sent before still arrives, then the end)."""
        with self._ready:
            cut = self._cut
        cut()

    def end(self, why: str) -> None:
        """End the stream: its writer returns after the event it is writing (any thread)."""
        with self._ready:
            self._end_locked(why)

    def _end_locked(self, why: str) -> None:
        if not self._ended:
            self._ended = why
            self._queue.clear()
            self._ready.notify()

    def stream(self, write: Callable[[bytes], object], cut: Callable[[], None]) -> None:
        """Write the stream until it ends (the subscriber's thread): the current state, the
        steps it missed, then live events, a heartbeat comment when nothing happens. ``write``
        raises OSError when the client has gone; ``cut`` makes a blocked ``write`` fail."""
        with self._ready:
            self._cut = cut
        write(f"retry: {RETRY_MS}\n\n".encode())
        write(self._hub.state_event().encode())
        healthy = self._hub.healthy()
        # queued steps came after subscribing: new unless the history replay wrote them too
        last_seq = 0 if self._since is None else self._replay(self._since, write)
        while (event := self._next(self._hub.heartbeat_s)) is not None:
            if isinstance(event, Event):
                if event.kind == "state":
                    healthy = event.data["healthy"]
                elif event.kind == "step" and event.id is not None:
                    if event.id <= last_seq:  # already replayed from the history
                        continue
                    last_seq = event.id
                write(event.encode())
            elif (now := self._hub.healthy()) != healthy:  # a stalled worker publishes nothing
                healthy = now
                write(self._hub.state_event().encode())
            else:
                write(HEARTBEAT)

    def close(self) -> None:
        """Leave the hub (the subscriber's thread, when its stream is over)."""
        with self._ready:
            self._end_locked("closed")
            why = self._ended if self._dropped else ""
        if why:
            log.info("an event stream was dropped: its client %s", why)
        self._hub.unsubscribe(self)

    def _replay(self, since: int, write: Callable[[bytes], object]) -> int:
        """Write the history's steps after ``since``; the last sequence number written. A
        ``since`` beyond the newest step is from an earlier life of the service: from 0."""
        history = self._hub.history
        if since > history.last_seq:
            since = 0
        page = history.since(since, REPLAY_PAGE)
        if page.missed:
            write(Event("missed", {"since": since, "missed": page.missed}).encode())
        while True:
            for entry in page.entries:
                since = entry["seq"]
                write(Event("step", entry, since).encode())
            if not page.more:
                return since
            page = history.since(since, REPLAY_PAGE)

    def _next(self, timeout_s: float) -> Event | bool | None:
        """The next queued event, False after ``timeout_s`` without one, None once ended."""
        with self._ready:
            if not self._queue and not self._ended:
                self._ready.wait(timeout_s)
            if self._ended:
                return None
            return self._queue.popleft() if self._queue else False


class EventHub:
    """The subscribers and what is published to them: state changes (the worker calls
    ``publish_state``) and every step the history numbers."""

    def __init__(self, history: StepHistory, status: Callable[[], dict[str, Any]], *,
                 max_subscribers: int = MAX_SUBSCRIBERS, queue_size: int = QUEUE_SIZE,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.history = history
        self.max_subscribers = max_subscribers
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self._status = status
        self._subscribers: list[Subscription] = []
        self._closed = False
        self._dropped = 0
        self._lock = threading.Lock()
        history.listen(self._publish_step)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    @property
    def dropped(self) -> int:
        """Subscribers dropped because they fell behind, since the service started."""
        with self._lock:
            return self._dropped

    def subscribe(self, since: int | None = None) -> Subscription:
        """A new subscriber, resuming after step ``since`` if given; Unavailable (503) when
        the hub is full or closed."""
        with self._lock:
            if self._closed:
                raise Unavailable("the service is stopping")
            if len(self._subscribers) >= self.max_subscribers:
                raise Unavailable(f"{self.max_subscribers} event streams are open already, "
                                  f"the most the service serves; poll /api/status and /api/log")
            subscription = Subscription(self, since)
            self._subscribers.append(subscription)
            return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)

    def publish_state(self) -> None:
        """The status changed (the worker, never blocking on a subscriber)."""
        self._publish(self.state_event())

    def publish_calibration(self, job: dict[str, Any]) -> None:
        """A calibration job changed (never blocking on a subscriber)."""
        self._publish(Event("calibration", job))

    def state_event(self) -> Event:
        return Event("state", self._status())

    def healthy(self) -> bool:
        return bool(self._status()["healthy"])

    def close(self) -> None:
        """End every stream (their writers return promptly) and refuse new ones."""
        with self._lock:
            self._closed = True
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.end("the service is stopping")
            subscription.cut()

    def count_drop(self) -> None:
        with self._lock:
            self._dropped += 1

    def _publish_step(self, entry: dict[str, Any]) -> None:
        self._publish(Event("step", entry, entry["seq"]))

    def _publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.offer(event)
