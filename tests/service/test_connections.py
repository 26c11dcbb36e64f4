"""The API under load and abuse, on a real server over real sockets (controller/service/
connections.py): the backlog, the bound on connections, the read deadlines, short bodies, deep
JSON, methods without routes, and file descriptors kept for the rig. Outcomes only (answered,
refused, closed by the server); every wait is generous."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller.service.api import ApiServer
from controller.service.connections import FD_RESERVE, Deadlines
from controller.service.daemon import FocusService
from tests.service.conftest import Client, oracle_hardware, service_config

WAIT_S = 30.0  # for anything the server must do: far beyond any deadline below
SHORT = Deadlines(header_s=1.0, body_s=1.0, idle_s=1.0, send_s=5.0)
LONG = Deadlines(header_s=WAIT_S * 4, body_s=WAIT_S * 4, idle_s=WAIT_S * 4)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    server: ApiServer
    service: FocusService
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def client(self) -> Client:
        return Client(self.port)

    def start(self) -> None:
        self.threads.append(self.server.start())


@pytest.fixture
def serve(tmp_path) -> Iterator[Callable[..., Served]]:
    made: list[Served] = []

    def make(*, max_connections: int = 32, deadlines: Deadlines = LONG,
             fd_reserve: int = FD_RESERVE, start: bool = True) -> Served:
        config = service_config(tmp_path, service={"max_connections": max_connections})
        service = FocusService(config, lambda: oracle_hardware(config))
        served = Served(ApiServer(("127.0.0.1", 0), service, deadlines=deadlines,
                                  fd_reserve=fd_reserve), service)
        service.start()
        made.append(served)
        if start:
            served.start()
        return served

    yield make
    for served in made:
        if served.threads:
            served.server.shutdown()
        served.server.server_close()
        served.service.close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)


def request_bytes(method: str, path: str, body: bytes = b"", *, length: int | None = None,
                  close: bool = True, headers: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: "
            f"{len(body) if length is None else length}\r\n{headers}"
            f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n").encode() + body


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset counts as closed)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def parse(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def offset(served: Served) -> float:
    return float(served.service.status().to_json()["offset_um"])


# -- the backlog and the bound ---------------------------------------------------------------

def test_a_burst_waits_in_the_backlog_and_every_client_is_answered(serve):
    served = serve(start=False)  # nothing accepts yet: every connection waits in the backlog
    waiting = [connect(served.port) for _ in range(100)]  # the old backlog of 5 dropped SYNs
    for sock in waiting:
        sock.sendall(request_bytes("GET", "/api/status"))
    served.start()
    answers = [parse(read_to_end(sock))[0] for sock in waiting]
    for sock in waiting:
        sock.close()
    assert set(answers) <= {200, 503} and len(answers) == 100


def test_200_concurrent_requests_are_all_answered_or_refused_cleanly(serve):
    served = serve()
    results: list[int | str] = []

    def ask() -> None:
        try:
            status, reply, response = served.client.request("GET", "/api/status")
            results.append(status if status == 200 else
                           f"{status} {response.getheader('Retry-After')} {reply['error']}")
        except OSError as exc:
            results.append(repr(exc))

    clients = [threading.Thread(target=ask) for _ in range(200)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(WAIT_S * 2)
    unclean = [r for r in results if r != 200 and not str(r).startswith("503 1 too busy")]
    assert len(results) == 200 and not unclean, unclean


def refusal_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def test_one_connection_over_the_bound_gets_a_fast_503_and_no_thread(serve):
    served = serve(max_connections=4)
    held = [connect(served.port) for _ in range(4)]  # silent: each holds a slot and a thread
    wait_until(lambda: served.server.open_connections == 4, "the 4 connections are held")
    threads = refusal_threads()
    for _ in range(10):
        status, reply, response = served.client.request("GET", "/api/status")
        assert status == 503 and response.getheader("Retry-After") == "1"
        assert "service.max_connections" in reply["error"]
        assert response.getheader("Connection") == "close"
    assert refusal_threads() == threads  # refused in the accepting thread
    held.pop().close()
    wait_until(lambda: served.server.open_connections == 3, "a slot is free")
    assert served.client.get("/api/status")[0] == 200
    for sock in held:
        sock.close()


# -- deadlines ----------------------------------------------------------------------------------

def trickle(sock: socket.socket, data: bytes, closed: threading.Event) -> None:
    """Send a byte every 0.1 s (each well within any per-read timeout) until the server closes."""
    for byte in data:
        try:
            sock.send(bytes([byte]))
        except OSError:
            break
        if closed.wait(0.1):
            break


def test_a_slow_header_client_is_cut_off_without_stalling_others(serve):
    served = serve(deadlines=SHORT)
    endless = b"GET /api/status HTTP/1.1\r\n" + b"X-Slow: " + b"a" * 100_000
    slow = [connect(served.port) for _ in range(8)]
    done = threading.Event()
    trickles = [threading.Thread(target=trickle, args=(sock, endless, done)) for sock in slow]
    for thread in trickles:
        thread.start()
    wait_until(lambda: served.server.open_connections >= 8, "the slow clients are connected")
    try:
        for _ in range(20):  # others are answered meanwhile, on new and kept-alive connections
            assert served.client.get("/api/status")[0] == 200
        for sock in slow:  # then the server closes each slow one, without an answer
            assert read_to_end(sock) == b""
    finally:
        done.set()
        for thread in trickles:
            thread.join(WAIT_S)
        for sock in slow:
            sock.close()
    wait_until(lambda: served.server.open_connections == 0, "their slots are free")


def test_a_silent_connection_and_an_idle_keep_alive_one_are_closed(serve):
    served = serve(deadlines=SHORT)
    with connect(served.port) as silent:
        assert read_to_end(silent) == b""
    with connect(served.port) as idle:
        idle.sendall(request_bytes("GET", "/api/status", close=False))
        reply = read_to_end(idle)  # one answer, then the server closes the idle connection
        assert parse(reply)[0] == 200 and reply.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize("rate", ["stalls", "trickles"])
def test_a_body_slower_than_its_deadline_is_408_and_moves_nothing(serve, rate):
    served = serve(deadlines=SHORT)
    body = b'{"offset_um": 5}' + b" " * 200
    with connect(served.port) as sock:
        sock.sendall(request_bytes("PUT", "/api/offset", length=len(body)))
        if rate == "stalls":
            sock.sendall(body[:5])
            reply = read_to_end(sock)
        else:
            done = threading.Event()
            sender = threading.Thread(target=trickle, args=(sock, body, done))
            sender.start()
            reply = read_to_end(sock)
            done.set()
            sender.join(WAIT_S)
    status, _, text = parse(reply)
    assert status == 408 and "body of 216 bytes did not arrive within 1 s" in json.loads(
        text)["error"]
    assert offset(served) == 0.0


# -- what a request says ------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, body", [
    ("PUT", "/api/offset", b'{"offset_um": 2}'),
    ("POST", "/api/lock/start", b"{}"),
])
def test_a_body_shorter_than_its_content_length_is_400_and_never_runs(serve, method, path, body):
    served = serve()
    with connect(served.port) as sock:
        sock.sendall(request_bytes(method, path, body, length=100))
        sock.shutdown(socket.SHUT_WR)  # the client is done: the body ends short
        status, _, text = parse(read_to_end(sock))
    assert status == 400
    assert json.loads(text)["error"] == (f"request body ended after {len(body)} of the 100 "
                                         f"bytes of its Content-Length")
    status_now = served.service.status().to_json()
    assert status_now["offset_um"] == 0.0 and status_now["mode"] == "idle"
    assert status_now["counters"]["lock_starts"] == 0


@pytest.mark.parametrize("body", [b"[" * 60_000, b'{"a":' * 12_000])  # 60 kB: under 64 KiB
def test_json_nested_60000_deep_is_400_and_one_log_line(serve, caplog, body):
    served = serve()
    with caplog.at_level(logging.DEBUG, logger="controller.service"), \
            connect(served.port) as sock:
        sock.sendall(request_bytes("PUT", "/api/offset", body))
        status, _, text = parse(read_to_end(sock))
    assert status == 400 and "nested too deeply" in json.loads(text)["error"]
    lines = [r for r in caplog.records if r.name.startswith(("controller.service.api",
                                                             "controller.service.connections"))]
    assert len(lines) == 1 and '"PUT /api/offset HTTP/1.1" 400' in lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records) and "Traceback" not in caplog.text
    assert offset(served) == 0.0


@pytest.mark.parametrize("method", ["OPTIONS", "HEAD", "TRACE", "FOO", "DELETE"])
@pytest.mark.parametrize("path, allowed", [("/api/status", "GET"), ("/api/lock/start", "POST"),
                                           ("/", "GET")])
def test_methods_without_a_route_are_the_json_405(serve, method, path, allowed):
    served = serve()
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=WAIT_S)
    connection.request(method, path, headers={"X-Secret": "echo-me"})
    response = connection.getresponse()
    body = response.read()
    assert response.status == 405 and response.getheader("Allow") == allowed
    assert response.getheader("Content-Type") == "application/json"
    if method == "HEAD":  # no body, ever, to HEAD: only its length
        assert body == b"" and int(response.getheader("Content-Length") or 0) > 0
    else:
        assert json.loads(body)["error"].startswith(f"{method} {path} is not allowed")
        assert b"echo-me" not in body  # TRACE never echoes the request
    connection.request("GET", "/api/status")  # the kept-alive connection is still in step
    assert connection.getresponse().status == 200
    connection.close()


def test_the_standard_librarys_own_refusals_are_json(serve):
    served = serve()
    with connect(served.port) as sock:
        sock.sendall(b"GET /api/status HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n")
        status, headers, text = parse(read_to_end(sock))
    assert status == 431 and headers["Content-Type"] == "application/json"
    assert json.loads(text) == {"error": "Too many headers"}


# -- file descriptors ---------------------------------------------------------------------------

@dataclass
class LimitedServer:
    """tests/service/fd_limited_server.py in a process of its own."""

    process: subprocess.Popen[str]
    port: int

    def ask(self, command: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def cpu_s(self) -> float:
        return float(self.ask("cpu").split()[1])

    def stop(self) -> str:
        """End it (its stdin closes); what it logged."""
        _, err = self.process.communicate(timeout=WAIT_S)
        return err


@pytest.fixture
def limited(tmp_path) -> Iterator[Callable[[int, int], LimitedServer]]:
    started: list[subprocess.Popen[str]] = []

    def start(limit: int, reserve: int) -> LimitedServer:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.service.fd_limited_server", str(limit), str(reserve),
             str(tmp_path)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("port "), process.communicate(timeout=WAIT_S)
        return LimitedServer(process, int(line.split()[1]))

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_connections_leave_descriptors_for_the_rig_and_the_api_recovers(limited):
    server = limited(64, 16)
    held = []
    for _ in range(80):  # more than the 64 the process may open; once it only has 16 left,
        held.append(connect(server.port))  # every new one is refused (and closed)
    with connect(server.port) as late:  # accepted after all of them
        late.sendall(request_bytes("GET", "/api/status"))
        status, _, text = parse(read_to_end(late))
    assert status == 503 and "keeps 16 of its 64 file descriptors" in json.loads(text)["error"]
    assert server.ask("rig 12") == "rig ok"  # the camera, the serial port, the log can open
    for sock in held:
        sock.close()

    def answers() -> bool:
        with connect(server.port) as sock:
            sock.sendall(request_bytes("GET", "/api/health"))
            return parse(read_to_end(sock))[0] == 200

    wait_until(answers, "the API answers again")
    assert "refusing new connections: the service keeps 16" in server.stop()


def test_out_of_descriptors_the_accept_loop_backs_off_logs_once_and_recovers(limited):
    server = limited(64, 16)
    assert server.ask("hog").startswith("hogged ")  # a leak elsewhere took every descriptor
    cpu_before = server.cpu_s()
    wall_before = time.monotonic()
    waiting = [connect(server.port) for _ in range(3)]  # the kernel queues them: accept fails
    for sock in waiting:
        sock.sendall(request_bytes("GET", "/api/health"))
    time.sleep(3.0)  # what a spinning accept loop would burn is what is measured
    busy = (server.cpu_s() - cpu_before) / (time.monotonic() - wall_before)
    assert busy < 0.25, f"the server used {busy:.0%} of a core while out of descriptors"
    assert server.ask("free") == "freed"
    for sock in waiting:  # the queued clients are answered once descriptors are free
        assert parse(read_to_end(sock))[0] == 200
        sock.close()
    log = server.stop()
    assert log.count("cannot accept connections: Too many open files") == 1, log
    assert log.count("accepting connections again") == 1, log
