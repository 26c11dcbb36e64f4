"""The HTTP API and the dashboard, on the standard library's threading HTTP server.

JSON in and out. A request the service refuses gets a JSON ``{"error": "..."}`` that names the
problem: 400 for bad JSON, unknown fields, values out of range or a body shorter than its
Content-Length, 404/405 for a wrong path or method (any method without a route, OPTIONS, HEAD
and TRACE included), 408 for a body too slow to arrive, 409 for a request that contradicts what
is running, 413 for an oversized body, 415 when a POST/PUT body is not declared
``application/json``. Requiring that type is what keeps a web page in a browser on the box from
moving the motor: a cross-site request with it needs a CORS preflight, which this server never
grants. Before any route, controller/service/auth.py's policy refuses a Host header that does
not name the box (421) and a missing or wrong API token (401). How many connections, for how
long: connections.py. Endpoints: docs/service.md.

Over 500 lines because the routes and the strict reading of a request body they all
share (size, type, JSON depth, finite numbers, known fields) are best read together.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import math
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from importlib import resources
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from controller.alignment import AlignmentError, check_alignment, led_distance_mm
from controller.config import offset_limit_um
from controller.errors import FocuslockError
from controller.frame_views import frame_png, histogram, spectrum_png
from controller.loop import FocusReport
from controller.optics import preset
from controller.service.auth import AccessPolicy
from controller.service.connections import (
    DEADLINES,
    FD_RESERVE,
    BoundedHTTPServer,
    DeadlineHandler,
    Deadlines,
)
from controller.service.daemon import FocusService, is_finite_number
from controller.service.errors import (
    Conflict,
    HttpError,
    InvalidRequest,
    ServiceError,
    StillRunning,
    Unavailable,
)
from controller.service.metrics import CONTENT_TYPE as METRICS_TYPE
from controller.service.openapi import ApiLimits, openapi_document

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
LINGER_S = 2.0  # after the last reply, read what a client still sends for at most this long
LINGER_MAX = 1024 * 1024  # ... and at most this much
LOG_LIMIT_DEFAULT = 100
LOG_LIMIT_MAX = 500
FOCUS_TIMEOUT_DEFAULT_S = 60.0
FOCUS_TIMEOUT_MAX_S = 600.0
JSON_TYPE = "application/json"
PNG_TYPE = "image/png"
NO_FRAMING = "frame-ancestors 'none'"  # with X-Frame-Options: no other site's page frames ours
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
EVENT_STREAM_TYPE = "text/event-stream"
# An event stream only writes. A write that cannot go on for this long is to a client that is
# gone or stopped reading; the kernel holds at most this much unread per stream meanwhile.
STREAM_WRITE_TIMEOUT_S = 30.0
STREAM_SEND_BUFFER = 32 * 1024

_STATUS_OF: list[tuple[type[ServiceError], HTTPStatus]] = [
    (InvalidRequest, HTTPStatus.BAD_REQUEST),
    (Conflict, HTTPStatus.CONFLICT),
    (StillRunning, HTTPStatus.GATEWAY_TIMEOUT),
    (Unavailable, HTTPStatus.SERVICE_UNAVAILABLE),
]


class StreamedBody(Protocol):
    """A reply body written as it is made, until it ends or the client goes away."""

    def stream(self, write: Callable[[bytes], object], cut: Callable[[], None]) -> None:
        """Write until done; ``write`` raises OSError once the client is gone, ``cut`` makes
        a write blocked on a client that does not read fail."""

    def close(self) -> None:
        """Called once the reply is over, however it ended (also if it never started)."""


@dataclass(frozen=True)
class Reply:
    status: HTTPStatus
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: StreamedBody | None = None  # then ``body`` is empty and the stream follows


Route = Callable[["_Request"], Reply]


@dataclass(frozen=True)
class _Request:
    service: FocusService
    query: dict[str, list[str]]
    body: dict[str, Any]
    headers: Message


class ApiServer(BoundedHTTPServer):
    """Serves one FocusService; one thread per connection, at most the config's
    ``service.max_connections`` at once, each held to ``deadlines``
    (controller/service/connections.py), the loop untouched by any of them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], service: FocusService, *,
                 access: AccessPolicy | None = None, deadlines: Deadlines = DEADLINES,
                 fd_reserve: int = FD_RESERVE) -> None:
        """``access`` defaults to the policy of the service's config on this address (which
        refuses, binding nothing, an address beyond loopback without a token); ``deadlines``
        and ``fd_reserve`` are not settings (see connections.py): tests shorten and change
        them."""
        self.access = access or AccessPolicy.for_listener(service.config.service, address[0])
        try:
            super().__init__(address, _Handler,
                             max_connections=service.config.service.max_connections,
                             deadlines=deadlines, fd_reserve=fd_reserve)
        except OSError as exc:
            raise FocuslockError(f"cannot listen on {address[0]}:{address[1]}: "
                                 f"{exc.strerror or exc}") from exc
        self.service = service
        page = resources.files("controller.service").joinpath("dashboard.html").read_bytes()
        self.dashboard = Reply(HTTPStatus.OK, page, "text/html; charset=utf-8",
                               {"Content-Security-Policy": dashboard_policy(page)})

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up or stalls mid-request is routine; anything else is logged as
        a bug."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("client %s hung up: %s", client_address, error)
        else:
            log.exception("HTTP connection from %s failed", client_address)

    def shutdown_request(self, request: Any) -> None:
        """A lingering close (RFC 9112, 9.6): end our side, then read and drop what the client
        still sends (a refused body that was never read) until it closes too. Closing a socket
        with unread data resets the connection, and the client loses the reply with it."""
        if isinstance(request, socket.socket):
            deadline = time.monotonic() + LINGER_S
            left = LINGER_MAX
            try:
                request.shutdown(socket.SHUT_WR)
                while left > 0 and (wait := deadline - time.monotonic()) > 0:
                    request.settimeout(wait)
                    chunk = request.recv(min(left, MAX_BODY))
                    if not chunk:
                        break
                    left -= len(chunk)
            except OSError:  # the client is gone, or took too long: close regardless
                pass
        self.close_request(request)

    def start(self) -> threading.Thread:
        """Serve in a background thread; ``shutdown()`` ends it."""
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                  name="focuslock-http", daemon=True)
        thread.start()
        return thread


def dashboard_policy(page: bytes) -> str:
    """The dashboard's Content-Security-Policy: its own inline scripts (by their sha256, so
    nothing injected runs), its inline styles, requests to this server only, images from it or
    from the blob URLs the page makes of what it fetched (with the token), no framing."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
                      for script in INLINE_SCRIPT.findall(page))
    return (f"default-src 'self'; script-src {hashes}; style-src 'self' 'unsafe-inline'; "
            f"connect-src 'self'; img-src 'self' blob:; base-uri 'none'; form-action 'none'; "
            f"{NO_FRAMING}")


def _json(value: Any, status: HTTPStatus = HTTPStatus.OK) -> Reply:
    return Reply(status, json.dumps(value, allow_nan=False).encode(), JSON_TYPE)


# -- endpoints ------------------------------------------------------------------------------------

def _focus_report_json(report: FocusReport) -> dict[str, Any]:
    return {"success": report.success, "moves": report.moves, "steps": report.steps,
            "z_um": report.z_um, "error_um": report.error_um, "state": report.state.value,
            "reason": report.reason, "model_bias_um": report.model_bias_um}


def _status(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return _json(request.service.status().to_json())


def _health(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    status = request.service.status()
    health = status.health
    return _json({"healthy": health.healthy, "reason": health.reason,
                  "state": status.worker.state.value},
                 HTTPStatus.OK if health.healthy else HTTPStatus.SERVICE_UNAVAILABLE)


def _log(request: _Request) -> Reply:
    _fields(request, query=("since", "limit"), body=())
    since = _int_query(request, "since", 0, low=0)
    limit = _int_query(request, "limit", LOG_LIMIT_DEFAULT, low=1, high=LOG_LIMIT_MAX)
    page = request.service.steps_since(since, limit)
    return _json({"records": page.entries, "last_seq": page.last_seq, "missed": page.missed,
                  "more": page.more})


def _metrics(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return Reply(HTTPStatus.OK, request.service.metrics.exposition(), METRICS_TYPE)


def _openapi(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    limits = ApiLimits(MAX_BODY, LOG_LIMIT_DEFAULT, LOG_LIMIT_MAX, FOCUS_TIMEOUT_DEFAULT_S,
                       FOCUS_TIMEOUT_MAX_S, offset_limit_um(request.service.config.lock))
    return _json(openapi_document(limits))


def _events(request: _Request) -> Reply:
    """Server-sent events: resumes after the step ``Last-Event-ID`` names (as a browser's
    EventSource sends it on reconnecting), else after ``?since=``, else from now."""
    _fields(request, query=("since",), body=())
    last_id = request.headers.get("Last-Event-ID")
    if last_id is not None:
        since: int | None = _parse_int("Last-Event-ID", last_id.strip(), low=0)
    elif request.query.get("since"):
        since = _int_query(request, "since", 0, low=0)
    else:
        since = None
    subscription = request.service.events.subscribe(since)
    return Reply(HTTPStatus.OK, b"", EVENT_STREAM_TYPE, stream=subscription)


def _frame_png(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return Reply(HTTPStatus.OK, frame_png(request.service.sighting().image), PNG_TYPE)


def _spectrum_png(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return Reply(HTTPStatus.OK, spectrum_png(request.service.sighting()), PNG_TYPE)


def _histogram(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    seen = request.service.sighting()
    return _json(histogram(seen.image, seen.full_scale, request.service.config.gates))


def _alignment(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    seen = request.service.sighting()
    config = request.service.config
    try:
        result = check_alignment([seen.image], seen.optics, seen.pattern,
                                 led_distance_mm(config.optics.led_distance_mm,
                                                 preset(config.optics.preset)))
    except AlignmentError as exc:
        raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc)) from exc
    return _json(result.to_json())


def _focus(request: _Request) -> Reply:
    _fields(request, query=(), body=("timeout_s",))
    timeout = request.body.get("timeout_s", FOCUS_TIMEOUT_DEFAULT_S)
    if not is_finite_number(timeout) or not 0 < timeout <= FOCUS_TIMEOUT_MAX_S:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"timeout_s: must be a number in "
                                                f"(0, {FOCUS_TIMEOUT_MAX_S:g}], got {timeout!r}")
    return _json(_focus_report_json(request.service.focus_now(float(timeout))))


def _lock_start(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return _json(request.service.start_lock().to_json())


def _lock_stop(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return _json(request.service.stop_lock().to_json())


def _stop(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return _json(request.service.stop().to_json())


def _offset(request: _Request) -> Reply:
    _fields(request, query=(), body=("offset_um",))
    if "offset_um" not in request.body:
        raise HttpError(HTTPStatus.BAD_REQUEST, 'missing field "offset_um"')
    return _json(request.service.set_offset(request.body["offset_um"]).to_json())


def _drive_home(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return _json(request.service.home_drive().to_json())


def _drive_position(request: _Request) -> Reply:
    _fields(request, query=(), body=("z_um",))
    if "z_um" not in request.body:
        raise HttpError(HTTPStatus.BAD_REQUEST, 'missing field "z_um"')
    return _json(request.service.set_drive_position(request.body["z_um"]).to_json())


def _drive_clear_fault(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return _json(request.service.clear_drive_fault().to_json())


def _model_reload(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return _json(request.service.reload_model().to_json())


def _model_rollback(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return _json(request.service.rollback_model().to_json())


def _calibration(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return _json(request.service.calibration())


def _calibration_start(request: _Request) -> Reply:
    _fields(request, query=(), body=("stacks", "range_um", "step_um", "max_epochs"))
    return _json(request.service.start_calibration(request.body), HTTPStatus.ACCEPTED)


def _calibration_next(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return _json(request.service.next_calibration_field())


def _calibration_cancel(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return _json(request.service.cancel_calibration())


def _calibration_install(request: _Request) -> Reply:
    _fields(request, query=(), body=("force",))
    force = request.body.get("force", False)
    if not isinstance(force, bool):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"force: must be true or false, got {force!r}")
    return _json(request.service.install_calibrated(force))


def _calibration_figure(request: _Request) -> Reply:
    _fields(request, query=(), body=())
    return Reply(HTTPStatus.OK, request.service.calibration_figure(), PNG_TYPE)


ROUTES: dict[str, dict[str, Route]] = {
    "/api/status": {"GET": _status},
    "/api/health": {"GET": _health},
    "/api/log": {"GET": _log},
    "/api/events": {"GET": _events},
    "/metrics": {"GET": _metrics},
    "/api/openapi.json": {"GET": _openapi},
    "/api/frame.png": {"GET": _frame_png},
    "/api/spectrum.png": {"GET": _spectrum_png},
    "/api/histogram": {"GET": _histogram},
    "/api/alignment": {"GET": _alignment},
    "/api/focus": {"POST": _focus},
    "/api/lock/start": {"POST": _lock_start},
    "/api/lock/stop": {"POST": _lock_stop},
    "/api/stop": {"POST": _stop},
    "/api/offset": {"PUT": _offset},
    "/api/drive/home": {"POST": _drive_home},
    "/api/drive/position": {"PUT": _drive_position},
    "/api/drive/clear-fault": {"POST": _drive_clear_fault},
    "/api/model/reload": {"POST": _model_reload},
    "/api/model/rollback": {"POST": _model_rollback},
    "/api/calibration": {"GET": _calibration, "POST": _calibration_start},
    "/api/calibration/next": {"POST": _calibration_next},
    "/api/calibration/cancel": {"POST": _calibration_cancel},
    "/api/calibration/install": {"POST": _calibration_install},
    "/api/calibration/figure.png": {"GET": _calibration_figure},
}


def _fields(request: _Request, *, query: tuple[str, ...], body: tuple[str, ...]) -> None:
    for given, known, where in ((request.query, query, "query parameter"),
                                (request.body, body, "field")):
        unknown = sorted(set(given) - set(known))
        if unknown:
            expected = ", ".join(known) if known else "none"
            raise HttpError(HTTPStatus.BAD_REQUEST,
                            f'unknown {where} "{unknown[0]}" (expected: {expected})')


def _int_query(request: _Request, name: str, default: int, *, low: int,
               high: int | None = None) -> int:
    values = request.query.get(name)
    if not values:
        return default
    return _parse_int(name, values[-1], low=low, high=high)


def _parse_int(name: str, text: str, *, low: int, high: int | None = None) -> int:
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    try:
        value = int(text)
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST,
                        f"{name}: must be an integer {bounds}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name}: must be {bounds}, got {value}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one too large for a float (``1e400``) is
    refused here rather than becoming infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is too large")
    return value


# -- the handler ----------------------------------------------------------------------------------

class _Handler(DeadlineHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"  # keep-alive: the dashboard polls over one connection
    # Headers and body are two writes; with Nagle's algorithm the second waits for the client's
    # delayed ACK (~40 ms per request on a keep-alive connection).
    disable_nagle_algorithm = True
    server_version = "focuslock"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """The standard library's own refusals, in JSON like the API's. A method it has no
        ``do_`` for (OPTIONS, HEAD, TRACE, FOO: a 501 in HTML there) goes through the routes,
        to be the JSON 405 naming the allowed methods (or the 404 of an unknown path); a
        malformed request line or header is closed after its error."""
        if code == HTTPStatus.NOT_IMPLEMENTED and self.command:
            self._dispatch(self.command)
            return
        status = HTTPStatus(code)
        self._send(_json({"error": message or status.phrase}, status), {"Connection": "close"})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        try:
            reply = self._reply(method)
        except HttpError as exc:
            self._send(_json({"error": str(exc)}, exc.status), exc.headers)
        except ServiceError as exc:
            status = next((code for kind, code in _STATUS_OF if isinstance(exc, kind)),
                          HTTPStatus.INTERNAL_SERVER_ERROR)
            self._send(_json({"error": str(exc)}, status))
        except Exception as exc:  # a bug: say so, keep serving
            log.exception("HTTP %s %s failed", method, self.path)
            self._send(_json({"error": f"internal error: {type(exc).__name__}: {exc}"},
                             HTTPStatus.INTERNAL_SERVER_ERROR))
        else:
            self._send(reply)

    def _reply(self, method: str) -> Reply:
        parts = urlsplit(self.path)
        raw = self._raw_body()  # read even when refused, so keep-alive stays in step
        access = self.server.access
        access.check_host(self.headers.get_all("Host", []))
        if parts.path in ("/", "/index.html"):  # a static page: it asks for the token itself
            if method != "GET":
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} / is not allowed",
                                {"Allow": "GET"})
            return self.server.dashboard
        access.check_token(method, self.headers.get_all("Authorization", []))
        methods = ROUTES.get(parts.path)
        if methods is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such endpoint: {parts.path}")
        route = methods.get(method)
        if route is None:
            allowed = ", ".join(methods)
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED,
                            f"{method} {parts.path} is not allowed (use {allowed})",
                            {"Allow": allowed})
        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST,
                            f"malformed query string: {parts.query!r}") from None
        return route(_Request(self.server.service, query, self._json_body(method, raw),
                              self.headers))

    def _raw_body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True  # the chunks are not read
            raise HttpError(HTTPStatus.LENGTH_REQUIRED,
                            "chunked request bodies are not supported; send Content-Length")
        length_text = self.headers.get("Content-Length", "0")
        try:
            length = int(length_text)
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST,
                            f"Content-Length: not a number: {length_text!r}") from None
        if length < 0:
            raise HttpError(HTTPStatus.BAD_REQUEST, "Content-Length: must be >= 0")
        if length > MAX_BODY:
            self.close_connection = True  # the rest of the body is not read
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"request body of {length} bytes; at most {MAX_BODY}")
        if not length:
            return b""
        try:
            raw = self.read_body(length)
        except TimeoutError as exc:
            self.close_connection = True
            raise HttpError(HTTPStatus.REQUEST_TIMEOUT, str(exc)) from None
        if len(raw) < length:  # the client ended the connection: never run a partial request
            self.close_connection = True
            raise HttpError(HTTPStatus.BAD_REQUEST, f"request body ended after {len(raw)} of "
                                                    f"the {length} bytes of its Content-Length")
        return raw

    def _json_body(self, method: str, raw: bytes) -> dict[str, Any]:
        if method not in ("POST", "PUT"):
            if raw.strip():
                raise HttpError(HTTPStatus.BAD_REQUEST, f"{method} takes no request body")
            return {}
        if self.headers.get_content_type() != JSON_TYPE:
            raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                            f"Content-Type must be {JSON_TYPE}, got "
                            f"{self.headers.get('Content-Type') or 'none'}")
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
        except (UnicodeDecodeError, ValueError) as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"request body is not valid JSON: {exc}") \
                from None
        except RecursionError:
            raise HttpError(HTTPStatus.BAD_REQUEST,
                            "request body is nested too deeply to read") from None
        if not isinstance(body, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST,
                            f"request body must be a JSON object, got {type(body).__name__}")
        return body

    def _send(self, reply: Reply, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            if reply.stream is None:
                self.send_header("Content-Length", str(len(reply.body)))
            else:  # the body ends when the connection does
                self.send_header("Connection", "close")
                self.send_header("X-Accel-Buffering", "no")  # a proxy passes each event on
                self.close_connection = True
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")
            for name, value in {"Content-Security-Policy": f"default-src 'none'; {NO_FRAMING}",
                                **reply.headers, **(headers or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            if reply.stream is None:
                if self.command != "HEAD":  # a reply to HEAD never has a body, but its length
                    self.wfile.write(reply.body)
            else:
                self._stream(reply.stream)
        finally:
            if reply.stream is not None:
                reply.stream.close()

    def _stream(self, body: StreamedBody) -> None:
        """Write a streamed body on this connection until it ends. It only writes, so no read
        timeout applies: its own write timeout ends it when the client stops reading, as does
        a write to a client that has gone."""
        connection = self.connection
        connection.settimeout(STREAM_WRITE_TIMEOUT_S)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER)

        def cut() -> None:
            with contextlib.suppress(OSError):  # already gone
                connection.shutdown(socket.SHUT_RDWR)

        try:
            body.stream(self.wfile.write, cut)
        except OSError as exc:  # the client went away, stopped reading, or was cut
            log.debug("stream to %s ended: %s", self.address_string(), exc)
