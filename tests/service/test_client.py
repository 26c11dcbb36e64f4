"""The Python client an acquisition script uses, against a real server on loopback driving the
virtual rig: focus, lock, wait until locked, offset, unlock, events; refusals as ApiError with
the server's sentence; a box that wants the token, driven with it."""

from __future__ import annotations

import socket
import threading

import pytest

from controller.service.client import (
    ApiError,
    FocuslockClient,
    LockNotRunning,
    MissedEvent,
    StateEvent,
    StepEvent,
)
from tests.service.conftest import oracle_hardware, service_config

TIMEOUT_S = 30.0


@pytest.fixture
def client(running) -> FocuslockClient:
    return FocuslockClient(running.server.url, timeout=TIMEOUT_S)


def test_the_client_drives_a_lock_end_to_end(running, client):
    report = client.focus(timeout_s=TIMEOUT_S)
    assert report["success"] is True and abs(report["z_um"]) < 0.5
    assert client.lock()["mode"] == "lock"
    status = client.wait_locked(TIMEOUT_S)
    assert status["state"] == "locked" and status["mode"] == "lock"
    assert client.set_offset(2.5)["offset_um"] == 2.5
    for event in client.events():  # the lock moves to the new plane and holds it there
        if (isinstance(event, StepEvent) and event.record["state"] == "locked"
                and abs(event.record["z_um"] - 2.5) < 0.5):
            break
    assert client.health() == {"healthy": True, "reason": "ok", "state": "locked"}
    status = client.unlock()
    assert status["mode"] == "idle" and status["leds"] == "off"
    assert client.status()["state"] == "idle"
    assert running.hardware[-1].rig.illuminator.pattern is None


def test_events_are_typed_and_resume_after_a_seq(running, client):
    client.lock()
    events = client.events()
    first = next(events)
    assert isinstance(first, StateEvent) and first.state in ("idle", "focusing")
    step = next(e for e in events if isinstance(e, StepEvent))
    assert step.seq == step.record["seq"]
    events.close()
    resumed = client.events(since=step.seq)
    assert isinstance(next(resumed), StateEvent)
    assert next(e for e in resumed if isinstance(e, StepEvent)).seq == step.seq + 1
    resumed.close()


def test_a_resume_past_the_history_yields_a_missed_event(start_service):
    running = start_service(history_capacity=3)
    client = FocuslockClient(running.server.url, timeout=TIMEOUT_S)
    client.lock()
    running.client.wait_for(lambda s: (s["last_step"] or {}).get("seq", 0) >= 8, what="8 steps")
    events = client.events(since=1)
    assert isinstance(next(events), StateEvent)
    missed = next(events)
    assert isinstance(missed, MissedEvent) and missed.since == 1 and missed.missed >= 4
    events.close()


def test_refusals_raise_api_error_with_the_servers_sentence(running, client):
    with pytest.raises(ApiError, match="within ±50 µm") as refused:
        client.set_offset(80)
    assert refused.value.status == 400
    assert refused.value.message == running.client.put("/api/offset", {"offset_um": 80})[1][
        "error"]  # the server's own sentence
    client.lock()
    with pytest.raises(ApiError, match="already running") as again:
        client.lock()
    assert again.value.status == 409
    with pytest.raises(ApiError, match="the lock is running") as focus:
        client.focus(5)
    assert focus.value.status == 409
    assert client.status()["mode"] == "lock"  # nothing changed by a refusal


def test_wait_locked_says_why_it_gave_up(start_service, tmp_path):
    config = service_config(tmp_path)
    unsure = start_service(config, hardware=lambda: oracle_hardware(config, confidence=0.1))
    client = FocuslockClient(unsure.server.url, timeout=TIMEOUT_S)
    with pytest.raises(LockNotRunning, match="mode idle, state idle"):
        client.wait_locked(TIMEOUT_S)  # nothing to wait for
    client.lock()  # every reading below the model's confidence: never locks
    with pytest.raises(TimeoutError, match=r"not locked within 0\.5 s: state (focusing|lost)"):
        client.wait_locked(0.5)
    client.unlock()


def test_wait_locked_polls_where_no_event_stream_is_left(running, client):
    running.service.events.max_subscribers = 0  # every stream taken: the stream answers 503
    client.lock()
    assert client.wait_locked(TIMEOUT_S)["state"] == "locked"


class OneAnswerServer:
    """A real socket server that answers one request with ``reply`` and keeps what it got."""

    def __init__(self, reply: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.reply = reply
        self.request = b""
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            connection.settimeout(TIMEOUT_S)
            while b"\r\n\r\n" not in self.request:
                self.request += connection.recv(4096)
            connection.sendall(self.reply)

    def headers(self) -> dict[str, str]:
        self.thread.join(TIMEOUT_S)
        self.listener.close()
        lines = self.request.decode().split("\r\n\r\n")[0].split("\r\n")[1:]
        return {name.lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines)}


def http_reply(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def test_with_the_token_the_client_locks_a_box_that_wants_it_and_without_it_nothing_moves(
        start_service, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    token_file.chmod(0o600)
    running = start_service(service_config(tmp_path, service={
        "token_file": str(token_file), "read_requires_token": True}))
    anonymous = FocuslockClient(running.server.url, timeout=TIMEOUT_S)
    with pytest.raises(ApiError) as refused:
        anonymous.lock()
    assert refused.value.status == 401 and "token" in str(refused.value)
    with pytest.raises(ApiError):
        next(iter(anonymous.events()))
    box = FocuslockClient(running.server.url, token="s3cret-token", timeout=TIMEOUT_S)
    assert box.status()["mode"] == "idle"  # the refused lock never started
    assert box.lock()["mode"] == "lock"
    assert box.wait_locked(TIMEOUT_S)["state"] == "locked"  # follows the events, with the token
    assert box.unlock()["mode"] == "idle"


def test_something_else_answering_or_nothing_is_an_api_error_without_a_status():
    server = OneAnswerServer(http_reply("404 Not Found", b"<h1>nope</h1>", "text/html"))
    with pytest.raises(ApiError, match="HTTP 404 with something other") as other:
        FocuslockClient(server.url, timeout=TIMEOUT_S).status()
    assert other.value.status is None
    server.headers()
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    with pytest.raises(ApiError, match="no answer from") as nobody:
        FocuslockClient(f"127.0.0.1:{port}", timeout=TIMEOUT_S).status()
    assert nobody.value.status is None
    with pytest.raises(ValueError, match="not an http"):
        FocuslockClient("ftp://box")
