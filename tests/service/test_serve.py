"""``focuslock serve`` as systemd runs it: a real subprocess with NOTIFY_SOCKET set, stopped by
SIGTERM, which must leave the LEDs off and exit 0."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controller.model import DEFAULT_BUNDLE, RECORD_FILE
from tests.service.conftest import Client
from tests.service.test_sdnotify import receive

FOCUSLOCK = Path(sys.executable).with_name("focuslock")


@pytest.fixture
def systemd(tmp_path):
    """What systemd gives a Type=notify service: a datagram socket and its path in the env."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    yield sock, {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}
    sock.close()


def serve(tmp_path, env, config_text: str) -> subprocess.Popen[str]:
    config = tmp_path / "focuslock.toml"
    config.write_text(f'log_dir = "{tmp_path / "runs"}"\n' + config_text)
    return subprocess.Popen([str(FOCUSLOCK), "serve", "--config", str(config), "--port", "0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(sock: socket.socket, process: subprocess.Popen[str], timeout_s: float) -> Client:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for message in receive(sock, 0.5):
            if message.startswith("READY=1"):
                port = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", message)
                assert port, message
                return Client(int(port.group(1)))
        if process.poll() is not None:
            break
    process.kill()
    _, err = process.communicate()
    raise AssertionError(f"focuslock serve never said READY=1: {err}")


def terminate(sock: socket.socket, process: subprocess.Popen[str]) -> tuple[list[str], str]:
    """SIGTERM, then what it told systemd on the way out and what it logged."""
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return receive(sock, 0.3), err


def test_serve_stays_up_with_a_missing_model_and_stops_cleanly_on_sigterm(tmp_path, systemd):
    sock, env = systemd
    missing = tmp_path / "no-such-bundle"
    process = serve(tmp_path, env, f'[model]\nbundle = "{missing}"\n'
                                   '[sim]\nframe_size = 128\n')
    client = wait_ready(sock, process, 30)
    code, health = client.get("/api/health")
    assert code == 503 and "no-such-bundle" in health["reason"]  # what to fix, on the dashboard
    assert client.get("/api/status")[1]["state"] == "fault"
    messages, err = terminate(sock, process)
    assert process.returncode == 0, err
    assert any(m.startswith("STOPPING=1") for m in messages)
    assert messages[-1] == "STATUS=stopped: no hardware was open"


def test_a_port_in_use_is_one_clear_error(tmp_path, capsys):
    from controller.cli import main

    config = tmp_path / "focuslock.toml"
    config.write_text(f'log_dir = "{tmp_path / "runs"}"\n[sim]\nframe_size = 128\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--config", str(config), "--port", str(port)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"focuslock serve: error: cannot listen on 127.0.0.1:{port}: Address already in use")


def fitting_frame_size() -> int:
    """Frames of four of the bundled model's feature patches: the cheapest it accepts."""
    record = json.loads((DEFAULT_BUNDLE / RECORD_FILE).read_text())
    return 2 * int(record["feature_spec"]["patch"])


@pytest.mark.slow
@pytest.mark.skipif(not (DEFAULT_BUNDLE / RECORD_FILE).is_file(),
                    reason="the bundled default model (controller/models/default) is not built")
def test_sigterm_during_a_lock_turns_the_leds_off_and_exits_0(tmp_path, systemd):
    sock, env = systemd
    process = serve(tmp_path, env, f"[sim]\nframe_size = {fitting_frame_size()}\n"
                                   "[service]\nautostart_lock = true\n")
    client = wait_ready(sock, process, 60)
    code, status = client.get("/api/status")
    assert code == 200 and status["mode"] == "lock" and status["leds"] == "autofocus"
    assert status["model"]["id"].startswith("default@")
    client.wait_for(lambda s: s["counters"]["steps"] >= 2, timeout_s=60, what="two steps")
    messages, err = terminate(sock, process)
    assert process.returncode == 0, err
    assert any(m.startswith("STOPPING=1") for m in messages)
    assert messages[-1] == ("STATUS=stopped: loop stopped, drive stopped, LEDs off, "
                            "rig closed")
    assert "SIGTERM: stopping" in err
