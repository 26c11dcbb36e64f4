"""The API's connections: how many at once, how long a client may take, and file descriptors
kept free for the rig.

The standard library's threading HTTP server gives every connection a thread for as long as
the client keeps it, reads with no deadline and listens with a backlog of 5. On a lab network
that lets a handful of idle or slow sockets (or a burst of clients) starve the API, and every
file descriptor they hold is one the camera, the serial port and the run log cannot open.
``BoundedHTTPServer`` and ``DeadlineHandler`` put bounds on each:

- **backlog**: ``LISTEN_BACKLOG`` connections wait to be accepted (the kernel caps it at
  ``net.core.somaxconn``, 4096 on current kernels, 128 on old ones).
- **at most ``max_connections`` at once** (``[service] max_connections``). One more is answered
  at once by the accepting thread, without a thread of its own, with a ``503`` JSON error and
  ``Retry-After``, and closed. Long-lived connections count too: the live-events stream
  (``/api/events``) holds its connection for as long as the subscriber listens, so the events
  route caps its own subscribers *below* this bound, leaving slots for commands and polls; a
  subscriber refused by this bound gets the same 503 as anyone else.
- **deadlines per connection**: the request line and headers must arrive within
  ``header_s`` in total (not per read: a client trickling a byte at a time is cut off just the
  same), a body within ``body_s`` of its headers, the next request on a kept-alive connection
  within ``idle_s``; a reply must be taken within ``send_s``. A client past its deadline is
  disconnected (a slow body gets a 408 first); it holds one thread for at most that long and
  never delays other clients.
- **file-descriptor headroom**: a connection that would leave fewer than ``fd_reserve`` of the
  process's ``RLIMIT_NOFILE`` free is refused like one over the bound, so the rig can always
  open its files. Should the limit be reached anyway (by another part of the process), the
  accepting thread backs off instead of spinning on ``EMFILE`` and says so once in the log.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import resource
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)

# The standard library listens with 5: a burst of 200 clients on loopback saw 15 % of them time
# out and SYN retries of 1 s from 20 on; with 128, 200 clients released together still saw 1 s
# retries at p99 (benchmarks/bench_http_stack.py). A waiting connection costs nothing until
# accepted; the kernel caps this at net.core.somaxconn (4096 on current kernels).
LISTEN_BACKLOG = 1024
# The rig's own files: the camera (a few video, media and DMA devices), the serial port, the run
# log and its rotation, a model bundle being reloaded. 64 is several times what they take.
FD_RESERVE = 64
RETRY_AFTER_S = 1  # a refused client may try again this soon: slots free within a request's time
# After EMFILE/ENFILE the listening socket stays readable; waiting this long between attempts
# keeps the accepting thread idle until descriptors are free again, and shutdown() prompt.
ACCEPT_BACKOFF_S = 0.25
REFUSAL_DRAIN_MAX = 64 * 1024  # what a refused client already sent, read so the close is clean
FD_FOLDERS = ("/proc/self/fd", "/dev/fd")  # Linux, then macOS and the BSDs


@dataclass(frozen=True)
class Deadlines:
    """How long a client may take, in seconds. Not settings: nothing a user of the box would
    tune (a request is a few hundred bytes from a program); tests shorten them.

    ``header_s``: the request line and headers, in total, from the first byte (from the
    connection for its first request). ``body_s``: the body (at most 64 KiB) after the headers.
    ``idle_s``: a kept-alive connection waiting for its next request (the dashboard asks twice
    a second; an idle one only holds a slot). ``send_s``: each reply to be taken by the client.
    """

    header_s: float = 10.0
    body_s: float = 10.0
    idle_s: float = 15.0
    send_s: float = 10.0


DEADLINES = Deadlines()


class BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` of them, with ``fd_reserve`` file
    descriptors left free; see the module docstring. Handlers should derive from
    DeadlineHandler, which applies ``deadlines``."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], handler: type[DeadlineHandler], *,
                 max_connections: int,
                 deadlines: Deadlines = DEADLINES, fd_reserve: int = FD_RESERVE) -> None:
        self.max_connections = max_connections
        self.deadlines = deadlines
        self.fd_reserve = fd_reserve
        self._count_lock = threading.Lock()
        self._open = 0
        self._refused = 0  # since the last connection admitted; > 0: refusing (logged once)
        self._starved = False  # accept() failed for want of descriptors (logged once)
        super().__init__(address, handler)

    @property
    def open_connections(self) -> int:
        return self._open

    # -- accepting ----------------------------------------------------------------------------

    def get_request(self) -> tuple[socket.socket, Any]:
        """accept(); out of descriptors, wait a little before the next try (the listening socket
        stays readable, so retrying at once spins a core) and log it once."""
        try:
            accepted = super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                if not self._starved:
                    self._starved = True
                    log.error("cannot accept connections: %s (%d of %d descriptors open); "
                              "retrying every %g s", exc.strerror, open_descriptors(),
                              descriptor_limit(), ACCEPT_BACKOFF_S)
                time.sleep(ACCEPT_BACKOFF_S)
            raise
        if self._starved:
            self._starved = False
            log.warning("accepting connections again")
        return accepted

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to a thread of its own, or refuse it at once (see _refusal)."""
        reason = self._refusal()
        if reason:
            self._refuse(request, reason)
            return
        if self._refused:
            log.warning("serving again; refused %d connections", self._refused)
            self._refused = 0
        with self._count_lock:
            self._open += 1
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started (the caller closes the socket)
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._count_lock:
            self._open -= 1

    def _refusal(self) -> str:
        """Why a new connection is refused now ('' to serve it)."""
        if self._open >= self.max_connections:
            return (f"{self._open} connections are open, the most this service serves at once "
                    f"(service.max_connections)")
        limit = descriptor_limit()
        if open_descriptors() > limit - self.fd_reserve:
            return (f"the service keeps {self.fd_reserve} of its {limit} file descriptors "
                    f"for the rig")
        return ""

    def _refuse(self, request: socket.socket, reason: str) -> None:
        """Answer 503 without a thread: read what the client already sent (closing with unread
        data would reset the connection and lose the answer), send, close."""
        if not self._refused:
            log.warning("refusing new connections: %s", reason)
        self._refused += 1
        body = json.dumps({"error": f"too busy: {reason}; retry in {RETRY_AFTER_S} s"}).encode()
        status = HTTPStatus.SERVICE_UNAVAILABLE
        head = (f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER_S}\r\n"
                f"Cache-Control: no-store\r\nConnection: close\r\n\r\n").encode()
        try:
            request.setblocking(False)
            left = REFUSAL_DRAIN_MAX
            while left > 0 and (chunk := request.recv(left)):
                left -= len(chunk)
        except OSError:
            pass  # nothing (more) sent yet, or the client is gone
        try:
            request.send(head + body)  # a few hundred bytes: an empty send buffer takes them
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.close_request(request)


class DeadlineHandler(BaseHTTPRequestHandler):
    """Reads each request within the server's Deadlines (see the module docstring).

    A route that holds its connection open (the events stream) only writes: its reads would
    be held to the body deadline, long past. Each of its writes must be taken within
    ``send_s``; a subscriber that stops reading is disconnected then (TimeoutError, which the
    base class ends the connection on), and its slot is free again."""

    server: BoundedHTTPServer

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain reader; this one keeps the deadlines
        self._reader = _DeadlineReader(self.connection, self.server.deadlines.send_s)
        self._incoming = io.BufferedReader(self._reader)
        self.rfile = self._incoming
        self.connection.settimeout(self.server.deadlines.send_s)
        self._answered = False

    def handle_one_request(self) -> None:
        """The next request, within the idle deadline (after the first) and the header deadline.
        A request line or header past its deadline closes the connection without an answer."""
        deadlines = self.server.deadlines
        if self._answered:
            self._reader.limit(deadlines.idle_s, "the next request")
            try:
                self._incoming.peek(1)  # b"" at the end: the base class closes quietly
            except TimeoutError:
                log.debug("closing a connection from %s idle for %g s", self.address_string(),
                          deadlines.idle_s)
                self.close_connection = True
                return
        self._answered = True
        self._reader.limit(deadlines.header_s, "the request line and headers")
        super().handle_one_request()

    def read_body(self, length: int) -> bytes:
        """The body, ``length`` bytes within the body deadline; fewer when the client ended the
        connection first. TimeoutError past the deadline."""
        self._reader.limit(self.server.deadlines.body_s, f"a body of {length} bytes")
        return self.rfile.read(length)


class _DeadlineReader(io.RawIOBase):
    """A socket read with one deadline for a whole part of the request, however many reads it
    takes; between reads the socket keeps the send timeout for the replies."""

    def __init__(self, sock: socket.socket, send_timeout_s: float) -> None:
        super().__init__()
        self._sock = sock
        self._send_timeout_s = send_timeout_s
        self._deadline = 0.0
        self._what = ""
        self._seconds = 0.0

    def limit(self, seconds: float, what: str) -> None:
        """Reads from now on must be done within ``seconds``."""
        self._deadline = time.monotonic() + seconds
        self._what = what
        self._seconds = seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{self._what} did not arrive within {self._seconds:g} s")
        self._sock.settimeout(left)
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            raise TimeoutError(f"{self._what} did not arrive within {self._seconds:g} s") \
                from None
        finally:
            self._sock.settimeout(self._send_timeout_s)


def descriptor_limit() -> int:
    """The process's soft limit on open file descriptors."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return sys.maxsize if soft == resource.RLIM_INFINITY else soft


def open_descriptors() -> int:
    """How many file descriptors the process has open now (the limit, when even listing them
    needs one more than there is; 0 where the system cannot say)."""
    for folder in FD_FOLDERS:
        try:
            return len(os.listdir(folder)) - 1  # listdir's own
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                return descriptor_limit()
    return 0
