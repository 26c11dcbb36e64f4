"""The API on a network: the bearer token on every request that moves or changes anything (reads
too when asked), its rotation without a restart, no serve beyond loopback without one, the Host
check against DNS rebinding, no framing, and the dashboard in real headless Chromium asking for
the token once."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import re
import shutil
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from controller.cli import main
from controller.config import ConfigError, ServiceSettings
from controller.model import DEFAULT_BUNDLE
from controller.service.api import ROUTES
from controller.service.auth import AccessPolicy, read_token
from tests.service.cdp import CHROMIUM, Browser
from tests.service.conftest import Client, Running, oracle_hardware, service_config
from tests.service.test_model_reload import reload_config

BEARER = 'Bearer realm="focuslock"'
# A body each mutating route would carry out; with it, only the token stands in the way.
BODIES: dict[str, dict[str, Any]] = {"/api/offset": {"offset_um": 2.0},
                                     "/api/drive/position": {"z_um": 3.0}}
MUTATING = [(method, path) for path, methods in ROUTES.items() for method in methods
            if method != "GET"]
READS = [path for path, methods in ROUTES.items() if "GET" in methods]


def ask(port: int, method: str, path: str, body: Any = None, *, token: str | None = None,
        host: str | None = None) -> tuple[int, Any, http.client.HTTPResponse]:
    """One request on a new connection, with the token and the Host header given."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if host is not None:
        headers["Host"] = host
    return Client(port).request(method, path, body, headers=headers)


def new_token(tmp_path: Path, **service: Any) -> tuple[Path, Path]:
    """A config file naming a token file, and the token `focuslock token rotate` wrote there."""
    token_file = tmp_path / "token"
    config = tmp_path / "focuslock.toml"
    lines = [f'token_file = "{token_file}"', *(f"{k} = {json.dumps(v)}" for k, v in
                                                service.items())]
    config.write_text("[service]\n" + "\n".join(lines) + "\n")
    assert main(["token", "rotate", "--config", str(config)]) == 0
    return config, token_file


@pytest.fixture
def guarded(start_service, tmp_path) -> tuple[Running, Path, Path]:
    """A service with a token: the service, its config file and its token file."""
    config, token_file = new_token(tmp_path)
    return start_service(service_config(tmp_path, service={"token_file": str(token_file)})), \
        config, token_file


def moved(running: Running) -> dict[str, Any]:
    """What a command would change: the drive, the offset, the mode and the counters."""
    status = running.service.status().to_json()
    return {"drive": running.hardware[-1].rig.drive.position_um(), "z": status["z_um"],
            "offset": status["offset_um"], "mode": status["mode"], "state": status["state"],
            "model": status["model"], "counters": status["counters"]}


def test_every_mutating_route_refuses_a_missing_or_wrong_token_and_nothing_moves(guarded):
    running, _, token_file = guarded
    before = moved(running)
    assert len(MUTATING) >= 9
    for method, path in MUTATING:
        code, reply, response = ask(running.client.port, method, path, BODIES.get(path))
        assert code == 401, (method, path, reply)
        assert response.getheader("WWW-Authenticate") == BEARER
        assert "Authorization: Bearer" in reply["error"]
        for wrong in ("", "x" * 43, read_token(token_file)[:-1], read_token(token_file) + "x"):
            code, reply, response = ask(running.client.port, method, path, BODIES.get(path),
                                        token=wrong)
            assert code == 401, (method, path, wrong, reply)
            assert response.getheader("WWW-Authenticate") == f'{BEARER}, error="invalid_token"'
            assert "token is wrong" in reply["error"]
    assert moved(running) == before


def test_the_right_token_moves_and_reaches_every_route(guarded):
    running, _, token_file = guarded
    token, port = read_token(token_file), running.client.port
    code, report, _ = ask(port, "POST", "/api/focus", {"timeout_s": 30}, token=token)
    assert code == 200 and report["success"], report
    code, status, _ = ask(port, "PUT", "/api/offset", {"offset_um": 1.5}, token=token)
    assert code == 200 and status["offset_um"] == 1.5
    assert ask(port, "POST", "/api/lock/start", token=token)[0] == 200
    running.client.wait_for(lambda s: s["state"] == "locked", what="locked")
    assert ask(port, "POST", "/api/stop", token=token)[1]["mode"] == "idle"
    for method, path in MUTATING:  # an unknown field: past the token, refused by the route
        code, reply, _ = ask(port, method, path, {**BODIES.get(path, {}), "nonsense": 1},
                             token=token)
        assert code == 400 and 'unknown field "nonsense"' in reply["error"], (path, reply)


def test_reads_are_open_by_default(guarded):
    running, _, _ = guarded
    for path in READS:
        code, _, _ = ask(running.client.port, "GET", path)
        assert code in (200, 409, 503), path  # answered, not refused (409: no frame yet)


def test_reads_need_the_token_when_the_config_says_so(start_service, tmp_path):
    _, token_file = new_token(tmp_path)
    running = start_service(service_config(tmp_path, service={
        "token_file": str(token_file), "read_requires_token": True}))
    port, token = running.client.port, read_token(token_file)
    for path in READS:
        code, _, response = ask(port, "GET", path)
        assert code == 401 and response.getheader("WWW-Authenticate") == BEARER, path
        assert ask(port, "GET", path, token="wrong")[0] == 401
        assert ask(port, "GET", path, token=token)[0] in (200, 409, 503), path
    code, page, _ = ask(port, "GET", "/")  # the page holds no data: it asks for the token
    assert code == 200 and "<title>focuslock</title>" in page


def test_rotate_takes_effect_at_the_next_request_without_a_restart(guarded):
    running, config, token_file = guarded
    port, old = running.client.port, read_token(token_file)
    assert ask(port, "PUT", "/api/offset", {"offset_um": 1.0}, token=old)[0] == 200
    os.chown(token_file, 0, 65534)  # as the installer leaves it: root:focuslock
    assert main(["token", "rotate", "--config", str(config)]) == 0
    new = read_token(token_file)
    assert new != old and len(new) >= 43  # 32 random bytes
    info = token_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_gid == 65534  # the service reads it
    assert [p.name for p in token_file.parent.iterdir() if p.name.startswith(".token")] == []
    assert ask(port, "PUT", "/api/offset", {"offset_um": 2.0}, token=old)[0] == 401
    code, status, _ = ask(port, "PUT", "/api/offset", {"offset_um": 2.0}, token=new)
    assert code == 200 and status["offset_um"] == 2.0


def test_model_install_reloads_a_service_with_a_token(start_service, tmp_path, capsys):
    config_file, token_file = new_token(tmp_path)
    config = dataclasses.replace(reload_config(tmp_path), service=ServiceSettings(
        token_file=str(token_file)))
    running = start_service(config, hardware=lambda: oracle_hardware(config))
    config_file.write_text(f'[model]\nbundle = "installed"\nstore = "{tmp_path / "models"}"\n'
                           f'[sim]\nframe_size = 512\n[service]\ntoken_file = "{token_file}"\n'
                           f'port = {running.client.port}\n')
    given = shutil.copytree(DEFAULT_BUNDLE, tmp_path / "given" / "tuned")
    assert main(["model", "install", str(given), "--config", str(config_file)]) == 0
    assert "now reads" in capsys.readouterr().out  # the reload carried the token
    assert running.client.get("/api/status")[1]["model"]["id"].split("@")[0].endswith("-tuned")


def test_rotate_refuses_a_config_without_a_token_file(tmp_path, capsys):
    config = tmp_path / "focuslock.toml"
    config.write_text('[service]\nhost = "127.0.0.1"\n')
    assert main(["token", "rotate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "[service] token_file is not set" in err and str(config) in err


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "focusbox.invalid"])
def test_serve_beyond_loopback_without_a_token_does_not_start(tmp_path, capsys, host):
    config = tmp_path / "focuslock.toml"
    config.write_text(f'log_dir = "{tmp_path / "runs"}"\n[service]\nhost = "{host}"\n')
    assert main(["serve", "--config", str(config), "--port", "0"]) == 2
    assert "[service] token_file" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before the service made its run log


def test_config_check_refuses_the_network_without_a_token(tmp_path, capsys):
    config = tmp_path / "focuslock.toml"
    config.write_text(f'log_dir = "{tmp_path / "runs"}"\n[service]\nhost = "0.0.0.0"\n')
    assert main(["config", "check", "--config", str(config)]) == 2  # the installer runs it
    assert "[service] token_file" in capsys.readouterr().err


def test_a_token_opens_the_network_and_a_bad_token_file_is_named(tmp_path, caplog):
    _, token_file = new_token(tmp_path)
    policy = AccessPolicy.for_listener(ServiceSettings(host="0.0.0.0",
                                                       token_file=str(token_file)), "0.0.0.0")
    assert policy.token is not None and not caplog.records
    token_file.chmod(0o644)
    AccessPolicy.for_listener(ServiceSettings(token_file=str(token_file)), "127.0.0.1")
    assert "readable by every user" in caplog.text
    assert AccessPolicy.for_listener(ServiceSettings(), "localhost").token is None
    for content in ("", "\n", "two words\n", "one\ntwo\n"):
        token_file.write_text(content)
        with pytest.raises(ConfigError, match=rf"service.token_file: {token_file}: must hold"):
            AccessPolicy.for_listener(ServiceSettings(token_file=str(token_file)), "127.0.0.1")
    with pytest.raises(ConfigError, match="cannot read the API token"):
        AccessPolicy.for_listener(ServiceSettings(token_file=str(tmp_path / "none")),
                                  "127.0.0.1")


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, Any]]:
    """Send bytes as they are (a request http.client would not write); the status and JSON."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data:
                head, _, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"Content-Length: (\d+)", head)
                if length and len(body) >= int(length.group(1)):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_foreign_host_is_refused_before_anything_runs(start_service, tmp_path):
    running = start_service(service_config(tmp_path, service={
        "allowed_hosts": ["focusbox.lab", "10.1.2.3"]}))
    port = running.client.port
    before = moved(running)
    for host in ("rebound.example.com", f"rebound.example.com:{port}", "focusbox.lab.evil",
                 "10.1.2.4"):
        for method, path in (("GET", "/api/status"), ("POST", "/api/lock/start"), ("GET", "/")):
            code, reply, response = ask(port, method, path, host=host)
            assert code == 421, (host, path, reply)
            assert host.split(":")[0] in reply["error"] and "allowed_hosts" in reply["error"]
            assert response.getheader("X-Frame-Options") == "DENY"
    assert moved(running) == before
    for host in ("focusbox.lab", f"FocusBox.Lab.:{port}", "10.1.2.3", "localhost",
                 f"127.0.0.1:{port}", f"[::1]:{port}", "127.0.0.2"):
        assert ask(port, "GET", "/api/status", host=host)[0] == 200, host
    status, reply = raw_exchange(port, b"GET /api/status HTTP/1.0\r\n\r\n")
    assert status == 400 and "Host header" in reply["error"]  # no name: no way to check it
    status, reply = raw_exchange(port, b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n"
                                       b"Host: rebound.example.com\r\nConnection: close\r\n\r\n")
    assert status == 400 and "exactly one Host header" in reply["error"]
    status, reply = raw_exchange(port, b"POST /api/lock/start HTTP/1.1\r\nHost: [::1\r\n"
                                       b"Content-Type: application/json\r\n"
                                       b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    assert status == 400 and "malformed Host header" in reply["error"]
    assert moved(running) == before


def test_no_reply_can_be_framed(guarded):
    running, _, _ = guarded
    port = running.client.port
    for method, path in (("GET", "/"), ("GET", "/api/status"), ("GET", "/metrics"),
                         ("POST", "/api/lock/start"), ("GET", "/api/nowhere")):
        _, _, response = ask(port, method, path)
        assert response.getheader("X-Frame-Options") == "DENY", path
        assert "frame-ancestors 'none'" in response.getheader("Content-Security-Policy", ""), path
    _, _, response = ask(port, "GET", "/")
    policy = response.getheader("Content-Security-Policy", "")
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/]{43}='", policy), policy


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (/usr/bin/chromium)")
def test_the_dashboard_asks_for_the_token_once_and_goes_on(start_service, tmp_path):
    """Reads need the token too here, so the page's first poll is refused: it asks, refuses a
    wrong token, takes the right one, and its buttons then work without asking again."""
    _, token_file = new_token(tmp_path)
    running = start_service(service_config(tmp_path, service={
        "token_file": str(token_file), "read_requires_token": True}))
    form_shown = "document.getElementById('token-form')?.hidden === false"

    def give(token: str) -> None:
        browser.evaluate(f"document.getElementById('token-input').value = {json.dumps(token)};"
                         f"document.querySelector('#token-form button').click()")

    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=running.server.url)
        browser.wait_for(form_shown)  # the CSP let the page's script run: it asked
        assert browser.evaluate("document.getElementById('state').textContent") == "—"
        give("not-the-token")
        browser.wait_for(f"{form_shown} && document.getElementById('token-hint').className"
                         f" === 'error'")
        give(read_token(token_file))
        browser.wait_for("document.getElementById('state')?.textContent === 'idle'")
        assert browser.evaluate("document.getElementById('token-form').hidden")
        browser.evaluate("document.getElementById('lock-start').click()")
        browser.wait_for("document.getElementById('state')?.textContent === 'locked'")
        assert running.client.request("GET", "/api/status")[0] == 401  # curl has no token
        assert running.service.status().worker.mode.value == "lock"
        browser.evaluate("document.getElementById('stop').click()")
        browser.wait_for("document.getElementById('state')?.textContent === 'idle'")
        assert browser.evaluate("document.getElementById('token-form').hidden")  # asked once
        assert browser.evaluate("localStorage.getItem('focuslock-token')") == \
            read_token(token_file)
    finally:
        browser.close()
