"""The systemd notify protocol on a real AF_UNIX datagram socket, as systemd would receive it:
READY and STATUS, and WATCHDOG pings that come from the loop's thread, so they stop when a step
hangs while the HTTP server is still answering."""

from __future__ import annotations

import os
import socket
import time

import pytest

from controller.service.sdnotify import Notifier
from tests.service.conftest import HangingModel, hanging_hardware, service_config


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    yield sock, str(path)
    sock.close()


def receive(sock: socket.socket, seconds: float) -> list[str]:
    """Every datagram that arrives within ``seconds``."""
    messages = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return messages


def drain(sock: socket.socket) -> None:
    receive(sock, 0.01)


def test_ready_status_and_stopping_reach_the_socket(notify_socket):
    sock, path = notify_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    assert notifier.enabled and notifier.watchdog_s == 2.0
    notifier.ready("listening on\nhttp://127.0.0.1:1/")
    notifier.watchdog()
    notifier.stopping("bye")
    assert receive(sock, 0.2) == ["READY=1\nSTATUS=listening on http://127.0.0.1:1/",
                                  "WATCHDOG=1", "STOPPING=1\nSTATUS=bye"]
    notifier.close()


def test_abstract_socket_names_work():
    name = f"focuslock-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        notifier.status("hello")
        assert receive(sock, 0.2) == ["STATUS=hello"]
        notifier.close()
    finally:
        sock.close()


def test_outside_systemd_nothing_is_sent_and_nothing_fails(tmp_path):
    quiet = Notifier.from_environ({})
    assert not quiet.enabled and quiet.watchdog_s is None
    quiet.ready("x")  # no socket: a no-op
    other_pid = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone"),
                                       "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_s is None  # the watchdog was meant for another process
    other_pid.ready("systemd went away")  # unreachable socket: logged once, never raised
    other_pid.close()


def test_watchdog_pings_stop_while_a_step_hangs_and_resume_after(notify_socket, start_service,
                                                                  tmp_path):
    sock, path = notify_socket
    config = service_config(tmp_path)
    models: list[HangingModel] = []
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    running = start_service(config, hardware=hanging_hardware(config, models), notifier=notifier,
                            stall_after_s=0.5)
    client = running.client
    idle = receive(sock, 0.5)
    assert idle.count("WATCHDOG=1") >= 3  # every 50 ms asked (a quarter of 200 ms)
    client.post("/api/lock/start")
    client.wait_for(lambda s: s["state"] == "locked", what="locked")
    model = models[-1]
    model.free.clear()
    try:
        assert model.stuck.wait(5)
        drain(sock)
        hung = receive(sock, 0.6)
        assert "WATCHDOG=1" not in hung  # systemd would restart us now
        code, health = client.get("/api/health")
        assert code == 503 and "no progress" in health["reason"]
        assert client.get("/api/status")[0] == 200  # the server itself still answers
    finally:
        model.free.set()
    resumed = receive(sock, 0.3)
    assert resumed.count("WATCHDOG=1") >= 2
    assert client.get("/api/health")[0] == 200


def test_status_tells_systemd_what_the_lock_is_doing(notify_socket, start_service):
    sock, path = notify_socket
    running = start_service(notifier=Notifier.from_environ({"NOTIFY_SOCKET": path}))
    running.client.post("/api/lock/start")
    running.client.wait_for(lambda s: s["state"] == "locked", what="locked")
    statuses = [m for m in receive(sock, 0.2) if m.startswith("STATUS=")]
    assert statuses[-1] == "STATUS=locked: in tolerance"
    assert "STATUS=focusing: correcting" in statuses
    assert len(statuses) < 8  # one per change, not one per step
