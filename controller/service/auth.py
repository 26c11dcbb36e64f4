"""Who may ask the service what: the API token, and the names a request may call the box by.

- **The token** sits on one line of the file ``[service] token_file`` names. Every request that
  moves or changes anything (any method but GET), and reads too with ``read_requires_token``,
  must carry it as ``Authorization: Bearer <token>``; it is compared in constant time, and the
  file is read again whenever it changes, so ``focuslock token rotate`` takes effect at the next
  request without a restart. A service that listens beyond loopback must have one.
- **The Host header** must name the box as this service knows it: loopback, the listen address
  or a name in ``[service] allowed_hosts``. A page on another site whose DNS name was rebound to
  the box's address sends its own name, and is refused (421) before anything runs.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import secrets
import socket
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from controller.config import ConfigError, ServiceSettings
from controller.errors import FocuslockError
from controller.files import replaced_file, sync_dir
from controller.service.errors import HttpError

log = logging.getLogger(__name__)

TOKEN_MODE = 0o640  # the service's user (owner or group) reads it, an admin group through its group
MAX_TOKEN_FILE = 4096
TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what an Authorization header carries
REALM = 'Bearer realm="focuslock"'
READ_METHODS = frozenset({"GET", "HEAD"})
LOOPBACK_NAMES = frozenset({"localhost"})  # and every loopback address, written as an address


class TokenError(FocuslockError):
    """A token file that cannot give a token: missing, unreadable, empty or not one line."""


def read_token(path: Path) -> str:
    """The token on the one line of ``path``."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_TOKEN_FILE + 1)
    except OSError as exc:
        raise TokenError(f"{path}: cannot read the API token: {exc.strerror or exc}") from None
    try:
        lines = raw.decode("ascii").split()
    except UnicodeDecodeError:
        lines = []
    if len(raw) > MAX_TOKEN_FILE or len(lines) != 1 or not TOKEN_CHARS.fullmatch(lines[0]):
        raise TokenError(f"{path}: must hold the API token on one line (visible ASCII, no "
                         f"spaces); `focuslock token rotate` writes one")
    return lines[0]


def write_new_token(path: Path) -> None:
    """A new random token in ``path``, mode 0640, with the owner and group of the file it
    replaces (so the service's group still reads it); written whole or not at all."""
    try:
        old: os.stat_result | None = path.stat()
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise TokenError(f"{path}: {exc.strerror or exc}") from None
    try:
        with replaced_file(path) as f:
            os.fchmod(f.fileno(), TOKEN_MODE)  # before the token is in it
            if old is not None:
                _keep_owner(f.fileno(), old, path)
            f.write(f"{secrets.token_urlsafe(32)}\n".encode())
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise TokenError(f"{path}: cannot write the API token: {exc.strerror or exc}") from None
    sync_dir(path.parent)


def _keep_owner(fd: int, old: os.stat_result, path: Path) -> None:
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) == (old.st_uid, old.st_gid):
        return
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
    except PermissionError:
        raise TokenError(f"{path}: the new token could not keep the old file's owner and group "
                         f"({old.st_uid}:{old.st_gid}), which the service reads it as; run "
                         f"this as root") from None


class TokenFile:
    """The token in a file, read again whenever the file changes (a new inode, size or mtime:
    ``os.replace`` always gives a new inode). Threads of the HTTP server share one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._token = b""
        self.current()  # a token file that cannot be read stops the service from starting

    def current(self) -> bytes:
        """The token as the file has it now (TokenError if it no longer gives one)."""
        try:
            info = self.path.stat()
        except OSError as exc:
            raise TokenError(f"{self.path}: cannot read the API token: "
                             f"{exc.strerror or exc}") from None
        key = (info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            if key != self._seen:
                self._token = read_token(self.path).encode("ascii")
                self._seen = key
                if info.st_mode & stat.S_IROTH:
                    log.warning("%s: the API token is readable by every user of this machine; "
                                "chmod o-r it", self.path)
            return self._token

    def admits(self, presented: str) -> bool:
        """Whether ``presented`` is the token, in time that does not depend on where they
        differ."""
        return hmac.compare_digest(presented.encode("latin-1"), self.current())


def is_loopback(host: str) -> bool:
    """Whether every IPv4 address ``host`` names (as the server binds it) is a loopback one; a
    name that does not resolve is not."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    return bool(found) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in found)


def host_key(name: str) -> str:
    """A host name as compared: lower case, without IPv6 brackets or a final dot."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name.rstrip(".")


def host_of(header: str) -> str | None:
    """The host a Host header names, without its port (None: not a Host header value)."""
    text = header.strip()
    if text.startswith("["):
        end = text.find("]")
        name, rest = text[1:end], text[end + 1:]
        if end < 0 or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
    else:
        name, colon, port = text.partition(":")
        if ":" in port or (colon and not port.isdigit()):
            return None
    return host_key(name) or None


@dataclass(frozen=True)
class AccessPolicy:
    """What the HTTP API asks of each request before it acts on it."""

    host_names: frozenset[str]
    token: TokenFile | None
    read_requires_token: bool

    @classmethod
    def for_listener(cls, settings: ServiceSettings, host: str) -> AccessPolicy:
        """The policy of a service listening on ``host``; a ConfigError naming
        ``[service] token_file`` if it would listen beyond loopback without a token, or the
        token file cannot be read."""
        if not settings.token_file and not is_loopback(host):
            raise ConfigError(
                f"[service] token_file: listening on {host!r}, beyond loopback, lets anyone "
                f"on the network move the drive; name a token file (`focuslock token rotate` "
                f"writes one) or listen on 127.0.0.1")
        try:
            token = TokenFile(Path(settings.token_file)) if settings.token_file else None
        except TokenError as exc:
            raise ConfigError(f"service.token_file: {exc}") from None
        names = {host_key(name) for name in (*LOOPBACK_NAMES, host, *settings.allowed_hosts)}
        return cls(frozenset(names), token, settings.read_requires_token)

    def check_host(self, headers: Sequence[str]) -> None:
        """HttpError unless exactly one Host header names this box (RFC 9112, 3.2: none or
        several is a 400)."""
        if len(headers) != 1:
            raise HttpError(HTTPStatus.BAD_REQUEST,
                            f"a request needs exactly one Host header, got {len(headers)}")
        name = host_of(headers[0])
        if name is None:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"malformed Host header: {headers[0]!r}")
        if name in self.host_names or _is_loopback_address(name):
            return
        raise HttpError(HTTPStatus.MISDIRECTED_REQUEST,
                        f"this box does not answer to the name {name!r} (Host header); if it "
                        f"is the box's own name, add it to [service] allowed_hosts")

    def check_token(self, method: str, authorizations: Sequence[str]) -> None:
        """HttpError 401 unless the request carries the token, where it needs one."""
        if self.token is None or (method in READ_METHODS and not self.read_requires_token):
            return
        presented = _bearer(authorizations)
        if presented is None:
            raise HttpError(HTTPStatus.UNAUTHORIZED,
                            "this request needs the API token: send Authorization: Bearer "
                            "<token> (the token is in the file [service] token_file names)",
                            {"WWW-Authenticate": REALM})
        try:
            admitted = self.token.admits(presented)
        except TokenError as exc:
            log.error("%s", exc)
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE,
                            "the service cannot read its API token file, so it accepts no "
                            "request that needs the token; see its log") from None
        if not admitted:
            raise HttpError(HTTPStatus.UNAUTHORIZED,
                            "the API token is wrong (it may have been rotated: the current "
                            "one is in the file [service] token_file names)",
                            {"WWW-Authenticate": f'{REALM}, error="invalid_token"'})


def _is_loopback_address(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _bearer(authorizations: Sequence[str]) -> str | None:
    """The credentials of the one ``Authorization: Bearer`` header, '' for a malformed or
    repeated one (a wrong token), None without one."""
    if not authorizations:
        return None
    scheme, _, credentials = authorizations[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() if len(authorizations) == 1 else ""
