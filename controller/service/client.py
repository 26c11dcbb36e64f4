"""A client for the focus-lock service, for acquisition scripts on another computer and for the
box's own commands (``focuslock model install`` asks the running service to reload).

The standard library only (``http.client``): an acquisition PC needs nothing else to drive the
box. On the box, the commands reach the config's ``[service]`` address (loopback when it listens
on every address) with the token of its ``token_file`` where it names one. One request per
connection, so a client may be shared between threads. Every refusal, and a service that does
not answer, raises ApiError with the HTTP status and the server's sentence. The API it calls
is docs/service.md's; recipes for acquisitions are in docs/acquisition.md.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from controller.errors import FocuslockError
from controller.service.auth import TokenError, read_token

if TYPE_CHECKING:
    from controller.config import Config

DEFAULT_URL = "http://127.0.0.1:8470"
TIMEOUT_S = 30.0  # a command waits for at most one lock step and the worker's grace
STREAM_TIMEOUT_S = 40.0  # the service sends at least a heartbeat every 15 s on a stream
POLL_S = 0.2  # how often wait_locked polls when the event stream is not available
RELOAD_PATH = "/api/model/reload"


class ApiError(FocuslockError):
    """The service refused a request (``status`` is its HTTP status, the message its
    ``error`` sentence), or did not answer as a focuslock service (``status`` None)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message if status is None else f"{status}: {message}")
        self.status = status
        self.message = message


class LockNotRunning(FocuslockError):
    """``wait_locked`` found the lock not running (stopped, or ended in a fault)."""

    def __init__(self, status: dict[str, Any]) -> None:
        reason = f" ({status['reason']})" if status.get("reason") else ""
        super().__init__(f"the lock is not running: mode {status.get('mode')}, state "
                         f"{status.get('state')}{reason}")
        self.status = status


@dataclass(frozen=True)
class StateEvent:
    """The state, the mode, a fault or a setting changed: the whole status (as /api/status)."""

    status: dict[str, Any]

    @property
    def state(self) -> str:
        return str(self.status["state"])


@dataclass(frozen=True)
class StepEvent:
    """One step of the loop: the record as /api/log gives it; ``seq`` numbers it."""

    seq: int
    record: dict[str, Any]


@dataclass(frozen=True)
class MissedEvent:
    """On resuming: ``missed`` steps after ``since`` had left the service's history."""

    since: int
    missed: int


Event = StateEvent | StepEvent | MissedEvent


class FocuslockClient:
    """The service at ``url`` (``http://host:port``, or ``https://`` behind a TLS proxy),
    with the bearer ``token`` if it asks for one; ``timeout`` bounds each request."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, *,
                 timeout: float = TIMEOUT_S) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL of a focuslock service: {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._token = token

    # -- queries ----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The status: state, reason, mode, z_um, offset_um, counters, last_step ..."""
        return self._request("GET", "/api/status")

    def health(self) -> dict[str, Any]:
        """``{"healthy": ..., "reason": ..., "state": ...}``; unhealthy is an answer, not an
        error (the service says 503 then)."""
        return self._request("GET", "/api/health", accept=(200, 503))

    def log(self, since: int = 0, limit: int = 100) -> dict[str, Any]:
        """Step records with a ``seq`` above ``since``, oldest first, at most ``limit`` (500):
        ``{"records": [...], "last_seq": ..., "missed": ..., "more": ...}``."""
        return self._request("GET", f"/api/log?since={int(since)}&limit={int(limit)}")

    # -- commands ---------------------------------------------------------------------------------

    def focus(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Focus now and wait for the report (``success``, ``moves``, ``z_um``, ``reason``);
        ApiError 504 if it has not finished within ``timeout_s`` (it goes on)."""
        return self._request("POST", "/api/focus", {"timeout_s": timeout_s},
                             timeout=timeout_s + self.timeout)

    def lock(self) -> dict[str, Any]:
        """Start the continuous lock; the status. ``wait_locked`` waits until it holds."""
        return self._request("POST", "/api/lock/start")

    def unlock(self) -> dict[str, Any]:
        """Stop the lock (LEDs off); the status."""
        return self._request("POST", "/api/lock/stop")

    def stop(self) -> dict[str, Any]:
        """Stop whatever runs (the lock, or focus now between two moves); the status."""
        return self._request("POST", "/api/stop")

    def set_offset(self, um: float) -> dict[str, Any]:
        """Hold ``z = z_focus + um`` from the next step on; the status."""
        return self._request("PUT", "/api/offset", {"offset_um": um})

    def reload_model(self) -> dict[str, Any]:
        """Read with the bundle the config names now (only while nothing runs); the status."""
        return self._request("POST", RELOAD_PATH)

    # -- waiting and events -----------------------------------------------------------------------

    def wait_locked(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the running lock holds (state ``locked``) and return the status. Follows
        the event stream, or polls the status where the stream is not available. TimeoutError
        naming the last state after ``timeout`` s; LockNotRunning if the lock is not (or no
        longer) running."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        try:
            with closing(self._events(None, max(0.01, deadline - time.monotonic()))) as stream:
                for event in stream:
                    if isinstance(event, StateEvent):
                        last = event.status
                        if _locked(last):
                            return last
                    if time.monotonic() >= deadline:
                        break
        except (ApiError, OSError, http.client.HTTPException):  # TimeoutError too
            pass  # no stream here (an older service, every stream taken), or it broke
        while time.monotonic() < deadline:  # poll for the time left
            last = self.status()
            if _locked(last):
                return last
            time.sleep(POLL_S)
        state = last.get("state", "unknown")
        reason = f" ({last['reason']})" if last.get("reason") else ""
        raise TimeoutError(f"not locked within {timeout:g} s: state {state}{reason}")

    def events(self, since: int | None = None, *,
               read_timeout: float = STREAM_TIMEOUT_S) -> Generator[Event, None, None]:
        """The service's live events, as they happen: the current state first, then (with
        ``since``, a step's ``seq``) the steps after it that the service still holds, then state
        changes and steps. Ends when the service ends the stream (resume with the last ``seq``);
        TimeoutError when nothing, not even a heartbeat, arrives within ``read_timeout``.
        ``close()`` it (or leave the loop and drop it) to hang up."""
        with closing(self._events(since, read_timeout)) as stream:
            yield from (event for event in stream if event is not None)

    # -- internals --------------------------------------------------------------------------------

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=timeout)

    def _events(self, since: int | None, read_timeout: float
                ) -> Generator[Event | None, None, None]:
        """The event stream; None for each heartbeat."""
        path = "/api/events" if since is None else f"/api/events?since={int(since)}"
        connection = self._connection(read_timeout)
        try:
            response = self._send(connection, "GET", path, None)
            if response.status != 200:
                self._answer(response, accept=(200,))
            yield from _parse_events(response)
        finally:
            connection.close()

    def _send(self, connection: http.client.HTTPConnection, method: str, path: str,
              body: dict[str, Any] | None) -> http.client.HTTPResponse:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        payload = None
        if method in ("POST", "PUT"):
            headers["Content-Type"] = "application/json"
            payload = json.dumps(body or {}).encode()
        try:
            connection.request(method, self._prefix + path, body=payload, headers=headers)
            return connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(None, f"no answer from {self.url}: {exc}") from exc

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                 timeout: float | None = None, accept: tuple[int, ...] = (200,)
                 ) -> dict[str, Any]:
        connection = self._connection(timeout or self.timeout)
        try:
            return self._answer(self._send(connection, method, path, body), accept=accept)
        finally:
            connection.close()

    def _answer(self, response: http.client.HTTPResponse, *,
                accept: tuple[int, ...]) -> dict[str, Any]:
        try:
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(None, f"no answer from {self.url}: {exc}") from exc
        try:
            answer = json.loads(data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ApiError(None, f"{self.url} answered HTTP {response.status} with something "
                                 f"other than a focuslock service's JSON")
        if response.status not in accept:
            raise ApiError(response.status, str(answer.get("error", response.reason)))
        return answer


def _locked(status: dict[str, Any]) -> bool:
    if status.get("state") == "locked":
        return True
    if status.get("mode") != "lock":
        raise LockNotRunning(status)
    return False


def _parse_events(response: http.client.HTTPResponse) -> Iterator[Event | None]:
    """Server-sent events (the WHATWG format: ``field: value`` lines, a blank line ends an
    event, ``:`` starts a comment) as typed events, None for a comment (the service's
    heartbeat); unknown kinds are skipped."""
    kind, data, event_id = "message", [], ""
    for raw in response:
        line = raw.decode().rstrip("\r\n")
        if line.startswith(":"):
            yield None
            continue
        if line:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = value
            continue
        if data:
            event = _typed(kind, json.loads("\n".join(data)), event_id)
            if event is not None:
                yield event
        kind, data, event_id = "message", [], ""


def _typed(kind: str, data: dict[str, Any], event_id: str) -> Event | None:
    if kind == "state":
        return StateEvent(data)
    if kind == "step":
        return StepEvent(int(event_id or data["seq"]), data)
    if kind == "missed":
        return MissedEvent(int(data["since"]), int(data["missed"]))
    return None


# -- the box's own commands -----------------------------------------------------------------------

def _host(config: Config) -> str:
    """The config's listen address as this machine reaches it (loopback for every address)."""
    host = config.service.host
    return "127.0.0.1" if host == "0.0.0.0" else host


def service_url(config: Config) -> str:
    """Where the config's service listens."""
    return f"http://{_host(config)}:{config.service.port}"


def local_client(config: Config, *, with_token: bool = True) -> FocuslockClient | None:
    """A client of the config's service (with its token unless not ``with_token``), or None
    where no other process could find it. TokenError when the token cannot be read."""
    if config.service.port == 0:  # any free port: not a place another process can find
        return None
    token_file = config.service.token_file
    token = read_token(Path(token_file)) if token_file and with_token else None
    return FocuslockClient(service_url(config), token=token)


def service_answers(config: Config) -> bool:
    """Whether a focuslock service answers at the config's address (it then holds the rig)."""
    try:
        client = local_client(config)
    except TokenError:  # a user who may not read the token may still see whether it answers
        client = local_client(config, with_token=False)
    try:
        return client is not None and "state" in client.status()
    except ApiError:
        return False


def reload_service(config: Config) -> str:
    """Ask the config's service to read the bundle its config names now (after an install or
    a rollback); a sentence saying what came of it. Nobody answering is an answer too: the
    service is not running, and reads the installed bundle when it starts."""
    url = service_url(config)
    try:
        client = local_client(config)
    except TokenError as exc:
        return f"the service at {url} was not asked to reload ({exc}); run this as a user " \
               f"who may read the token, or restart the service"
    try:
        if client is None:
            raise ApiError(None, "no port to find it at")
        status = client.reload_model()
    except ApiError as exc:
        if exc.status is None:
            return f"no service answers at {url}: it reads the installed bundle when it starts"
        later = (f"it reads the installed bundle after `curl -X POST -H 'Content-Type: "
                 f"application/json' -H \"Authorization: Bearer $TOKEN\" {url}{RELOAD_PATH}` "
                 f"once it is idle, or a restart")
        return f"the service at {url} did not reload ({exc}); {later}"
    return f"the service at {url} now reads {status.get('model', {}).get('id', '?')}"
