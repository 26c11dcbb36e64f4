"""Asking the running service from another process on the box: whether one answers at the
config's address (it then holds the rig), and to reload its model after an install or a rollback.

Plain HTTP to the config's ``[service]`` address (loopback when it listens on every address),
with the token of its ``token_file`` where it names one; the API it calls is docs/service.md's.
Nobody answering is an answer too: the service is not running, and reads the installed bundle
when it starts.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

from controller.config import Config
from controller.service.auth import TokenError, read_token

ANSWER_TIMEOUT_S = 30.0  # a reload loads a bundle between two lock steps: well under this
RELOAD_PATH = "/api/model/reload"


def _host(config: Config) -> str:
    """The config's listen address as this machine reaches it (loopback for every address)."""
    host = config.service.host
    return "127.0.0.1" if host == "0.0.0.0" else host


def service_url(config: Config) -> str:
    """Where the config's service listens."""
    return f"http://{_host(config)}:{config.service.port}"


def _ask(config: Config, method: str, path: str) -> tuple[int, dict[str, Any]] | None:
    """The service's status code and JSON answer, or None when nothing answers there."""
    if config.service.port == 0:  # any free port: not a place another process can find
        return None
    headers = {"Content-Type": "application/json"}
    if config.service.token_file and (method != "GET" or config.service.read_requires_token):
        headers["Authorization"] = f"Bearer {read_token(Path(config.service.token_file))}"
    connection = http.client.HTTPConnection(_host(config), config.service.port,
                                            timeout=ANSWER_TIMEOUT_S)
    try:
        connection.request(method, path, body=b"" if method == "POST" else None,
                           headers=headers)
        response = connection.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if not isinstance(body, dict):  # something else listens there
        return None
    return response.status, body


def service_answers(config: Config) -> bool:
    """Whether a focuslock service answers at the config's address."""
    answer = _ask(config, "GET", "/api/status")
    return answer is not None and answer[0] == 200 and "state" in answer[1]


def reload_service(config: Config) -> str:
    """Ask the config's service to read the bundle its config names now; a sentence saying
    what came of it."""
    url = service_url(config)
    try:
        answer = _ask(config, "POST", RELOAD_PATH)
    except TokenError as exc:
        return f"the service at {url} was not asked to reload ({exc}); run this as a user " \
               f"who may read the token, or restart the service"
    if answer is None:
        return f"no service answers at {url}: it reads the installed bundle when it starts"
    status, body = answer
    if status == 200:
        return f"the service at {url} now reads {body.get('model', {}).get('id', '?')}"
    later = (f"it reads the installed bundle after `curl -X POST -H 'Content-Type: "
             f"application/json' -H \"Authorization: Bearer $TOKEN\" {url}{RELOAD_PATH}` once "
             f"it is idle, or a restart")
    return f"the service at {url} did not reload ({status}: {body.get('error', '?')}); {later}"
