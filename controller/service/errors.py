"""Why the service refuses a request: one exception per HTTP status the API answers with, and
``HttpError`` for a refusal of the request itself (its form, its token, its Host)."""

from __future__ import annotations

from http import HTTPStatus

from controller.errors import FocuslockError


class HttpError(FocuslockError):
    """A refused request: its HTTP status, the sentence the client gets and any headers the
    refusal needs (``Allow``, ``WWW-Authenticate``)."""

    def __init__(self, status: HTTPStatus, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class ServiceError(FocuslockError):
    """A request the service cannot carry out; the message says why."""


class InvalidRequest(ServiceError):
    """A value out of range or of the wrong kind (HTTP 400)."""


class Conflict(ServiceError):
    """A request that contradicts what is running, e.g. focus now while locked (HTTP 409)."""


class Unavailable(ServiceError):
    """The hardware is faulted or cannot be opened, or the worker does not answer (HTTP 503)."""


class StillRunning(ServiceError):
    """Focus now did not report within the caller's timeout; it goes on (HTTP 504)."""
