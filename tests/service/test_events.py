"""Live events on a real server on loopback: ``GET /api/events`` streams the state and every
step as server-sent events, resumes from the step history, drops a subscriber that does not read
without slowing the lock, refuses subscribers beyond its bound and ends every stream when the
service stops."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from controller.service.errors import Unavailable
from tests.service.conftest import Running, hanging_hardware, service_config

TIMEOUT_S = 30.0  # generous: the machine is shared


@dataclass(frozen=True)
class Sse:
    kind: str
    id: int | None
    data: Any  # the JSON data; None for a heartbeat comment


class Stream:
    """A raw client of GET /api/events: the status line, headers, then events as they come."""

    def __init__(self, port: int, path: str = "/api/events", *, last_event_id: str | None = None,
                 receive_buffer: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:  # before connecting, so the window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(TIMEOUT_S)
        self.sock.connect(("127.0.0.1", port))
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        self.file = self.sock.makefile("rb")

    def head(self) -> tuple[int, dict[str, str]]:
        status = int(self.file.readline().split()[1])
        headers = {}
        while (line := self.file.readline().decode().rstrip("\r\n")):
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        return status, headers

    def json_body(self, headers: dict[str, str]) -> Any:
        return json.loads(self.file.read(int(headers["content-length"])))

    def next(self, *, heartbeats: bool = False) -> Sse:
        """The next event (or, with ``heartbeats``, comment); EOFError when the stream ends."""
        kind, event_id, data = "", None, None
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError("the server ended the stream")
            text = line.decode().rstrip("\n")
            if text.startswith(":") and heartbeats:
                return Sse("heartbeat", None, None)
            field, _, value = text.partition(": ")
            if field == "event":
                kind = value
            elif field == "id":
                event_id = int(value)
            elif field == "data":
                data = json.loads(value)
            elif not text and kind:
                return Sse(kind, event_id, data)

    def until(self, wanted, what: str) -> list[Sse]:
        """Events up to and including the first that ``wanted`` accepts."""
        seen: list[Sse] = []
        while not seen or not wanted(seen[-1]):
            try:
                seen.append(self.next())
            except (EOFError, TimeoutError) as exc:
                raise AssertionError(f"no {what} in {[(e.kind, e.id) for e in seen]}") from exc
        return seen

    def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        return self.file.read()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def opened(running: Running, **options: Any) -> Stream:
    stream = Stream(running.server.server_address[1], **options)
    status, headers = stream.head()
    assert status == 200, stream.json_body(headers)
    assert headers["content-type"] == "text/event-stream"
    return stream


def is_state(name: str):
    return lambda e: e.kind == "state" and e.data["state"] == name


def steps_of(events: list[Sse]) -> list[int]:
    ids = [e.id for e in events if e.kind == "step"]
    assert all(e.id == e.data["seq"] for e in events if e.kind == "step")
    return [i for i in ids if i is not None]


def test_a_subscriber_gets_the_state_then_each_step_in_order_with_its_seq(running):
    stream = opened(running)
    try:
        first = stream.next()
        assert first.kind == "state" and first.id is None
        assert first.data["state"] == "idle" and first.data["mode"] == "idle"
        assert first.data == {**running.client.get("/api/status")[1],
                              "uptime_s": first.data["uptime_s"]}
        running.client.post("/api/lock/start")
        events = stream.until(is_state("locked"), "locked state")
        states = [(e.data["state"], e.data["mode"]) for e in events if e.kind == "state"]
        assert states[0] == ("focusing", "lock") and states[-1] == ("locked", "lock")
        seqs = steps_of(events)
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 2
        step = next(e for e in events if e.kind == "step")
        _, log = running.client.get("/api/log?since=0&limit=1")
        assert step.data == log["records"][0]  # the record as /api/log gives it
        # the state event comes after the step that changed the state
        locked_step = next(e for e in events if e.kind == "step" and e.data["state"] == "locked")
        assert events.index(locked_step) < len(events) - 1
        running.client.post("/api/lock/stop")
        stopped = stream.until(is_state("idle"), "idle after the stop")[-1]
        assert stopped.data["mode"] == "idle" and stopped.data["leds"] == "off"
    finally:
        stream.close()


def test_a_quiet_stream_sends_heartbeats(running):
    running.service.events.heartbeat_s = 0.05
    stream = opened(running)
    try:
        assert stream.next().kind == "state"
        assert stream.next(heartbeats=True).kind == "heartbeat"
    finally:
        stream.close()


def test_last_event_id_resumes_after_the_last_step_seen(running):
    port = running.server.server_address[1]
    running.client.post("/api/lock/start")
    stream = opened(running)
    seen = steps_of(stream.until(lambda e: e.kind == "step", "a step"))
    stream.close()
    last = seen[-1]
    running.client.wait_for(lambda s: s["last_step"]["seq"] >= last + 5, what="5 more steps")
    # the header wins over ?since=, as a browser's EventSource reconnects with its first URL
    resumed = opened(running, path="/api/events?since=0", last_event_id=str(last))
    try:
        assert resumed.next().kind == "state"
        seqs = steps_of(resumed.until(lambda e: e.kind == "step" and e.id >= last + 8,
                                      "steps after the resume"))
        assert seqs == list(range(last + 1, last + 9))  # none missed, none twice
    finally:
        resumed.close()
    since = opened(running, path=f"/api/events?since={last}")
    try:
        assert steps_of(since.until(lambda e: e.kind == "step", "a step")) == [last + 1]
    finally:
        since.close()
    bad = Stream(port, last_event_id="seven")
    status, headers = bad.head()
    assert status == 400 and "Last-Event-ID" in bad.json_body(headers)["error"]
    bad.close()


def test_a_resume_beyond_the_bounded_history_says_how_many_steps_were_missed(start_service):
    running = start_service(history_capacity=5)
    running.client.post("/api/lock/start")
    running.client.wait_for(lambda s: (s["last_step"] or {}).get("seq", 0) >= 12,
                            what="12 steps")
    stream = opened(running, path="/api/events?since=2")
    try:
        assert stream.next().kind == "state"
        missed = stream.next()
        assert missed.kind == "missed" and missed.data["since"] == 2
        replayed = stream.next()
        assert replayed.kind == "step" and replayed.id == 2 + missed.data["missed"] + 1
    finally:
        stream.close()
    # an id from an earlier life of the service (beyond the newest step): from the oldest kept
    stream = opened(running, last_event_id="1000000")
    try:
        assert stream.next().kind == "state"
        assert stream.next().kind == "missed"
    finally:
        stream.close()


def test_a_subscriber_that_does_not_read_is_dropped_and_the_others_keep_getting_steps(running):
    hub = running.service.events
    hub.queue_size = 4
    reader = opened(running)
    assert reader.next().kind == "state"
    # a client with a tiny receive window that never reads: its stream backs up into its queue
    stuck = Stream(running.server.server_address[1], receive_buffer=1024)
    running.client.wait_for(lambda s: hub.subscribers == 2, what="two subscribers")
    running.client.post("/api/lock/start")
    received: list[Sse] = []
    try:
        while hub.dropped == 0:
            received.append(reader.next())  # keeps pace: never dropped
        dropped_at = running.service.history.last_seq
        received += reader.until(lambda e: e.kind == "step" and e.id >= dropped_at + 5,
                                 "steps after the drop")
        seqs = steps_of(received)
        assert seqs == list(range(1, seqs[-1] + 1))  # the reader missed none meanwhile
        running.client.wait_for(lambda s: hub.subscribers == 1, what="the stuck one gone")
        assert hub.dropped == 1
        assert stuck.file.read(1 << 24).endswith(b"\n\n")  # the server ended its stream
        assert stuck.file.read() == b""
        assert running.client.get("/api/status")[1]["mode"] == "lock"
    finally:
        stuck.close()
        reader.close()


def test_subscribers_beyond_the_bound_are_refused_with_503(running):
    hub = running.service.events
    hub.max_subscribers = 2
    hub.heartbeat_s = 0.05  # a client that hangs up is noticed at the next write
    streams = [opened(running), opened(running)]
    try:
        extra = Stream(running.server.server_address[1])
        status, headers = extra.head()
        assert status == 503 and headers["content-type"] == "application/json"
        assert "2 event streams are open already" in extra.json_body(headers)["error"]
        extra.close()
        streams.pop().close()
        running.client.wait_for(lambda s: hub.subscribers == 1, what="one stream left")
        streams.append(opened(running))
        assert streams[-1].next().kind == "state"
    finally:
        for stream in streams:
            stream.close()


@pytest.mark.parametrize("reading", [True, False], ids=["reading", "not-reading"])
def test_stopping_the_service_ends_open_streams_promptly(start_service, reading):
    running = start_service()
    running.client.post("/api/lock/start")
    streams = [opened(running) for _ in range(3)]
    stuck = Stream(running.server.server_address[1], receive_buffer=1024)
    running.client.wait_for(lambda s: running.service.events.subscribers == 4,
                            what="four subscribers")
    if reading:
        for stream in streams:
            stream.until(is_state("locked"), "locked")

    def stop() -> None:  # as `focuslock serve` stops
        running.server.shutdown()
        running.server.server_close()
        running.service.close()

    stopper = threading.Thread(target=stop)
    stopper.start()
    stopper.join(TIMEOUT_S)
    assert not stopper.is_alive(), "stopping hung on open streams"
    try:
        for stream in [*streams, stuck]:
            stream.rest()  # returns: the server ended every stream, the stuck one's too
        with pytest.raises(Unavailable, match="stopping"):
            running.service.events.subscribe()
    finally:
        stuck.close()
        for stream in streams:
            stream.close()


def test_a_stalled_worker_shows_as_unhealthy_on_the_stream(start_service, tmp_path):
    config = service_config(tmp_path)
    models: list = []
    running = start_service(config, hardware=hanging_hardware(config, models), stall_after_s=0.5)
    running.service.events.heartbeat_s = 0.05
    running.client.post("/api/lock/start")
    stream = opened(running)
    try:
        stream.until(is_state("locked"), "locked")
        models[-1].free.clear()  # the next step hangs: the worker publishes nothing more
        unhealthy = stream.until(lambda e: e.kind == "state" and not e.data["healthy"],
                                 "an unhealthy state")[-1]
        assert "no progress" in unhealthy.data["health"]
    finally:
        models[-1].free.set()
        stream.close()
