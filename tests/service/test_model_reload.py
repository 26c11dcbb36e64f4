"""A running service picks up an installed bundle without a restart: ``POST /api/model/reload``
on a real server on loopback, between runs only, with the status naming the bundle it reads.

The service starts with the truth-reading stand-in (so its lock holds steadily); a reload reads
the bundle the config names, which is a copy of the bundled default model installed into the
config's store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from controller.cli import main
from controller.config import Config
from controller.installed_models import install, rollback
from controller.model import DEFAULT_BUNDLE, read_record
from tests.service.conftest import Client, oracle_hardware, service_config


def reload_config(tmp_path: Path) -> Config:
    """The virtual rig at 512² frames (the default bundle's feature patch), reading the store."""
    return service_config(tmp_path, model={"bundle": "installed",
                                           "store": str(tmp_path / "models")},
                          sim={"frame_size": 512})


def installed(config: Config, tmp_path: Path, name: str) -> str:
    """Install a copy of the default bundle named ``name``; the id the status gives it."""
    bundle = install(config, Path(shutil.copytree(DEFAULT_BUNDLE, tmp_path / "given" / name)))
    return f"{bundle.name}@{read_record(bundle.path)['weights_sha256'][:12]}"


@pytest.fixture
def reloadable(start_service, tmp_path) -> tuple[Config, str, Client]:
    """A service reading with the stand-in, a config reading the store, and the id of the
    bundle installed there."""
    config = reload_config(tmp_path)
    first = installed(config, tmp_path, "first")
    running = start_service(config, hardware=lambda: oracle_hardware(config))
    return config, first, running.client


def test_reload_reads_the_installed_bundle_and_a_rollback_the_previous_one(reloadable,
                                                                            tmp_path):
    config, first, client = reloadable
    assert client.get("/api/status")[1]["model"] == {"id": "oracle@test"}
    code, status = client.post("/api/model/reload")
    assert code == 200 and status["model"]["id"] == first
    assert Path(status["model"]["path"]).name == first.split("@")[0]  # the folder, not the link
    second = installed(config, tmp_path, "second")
    assert client.get("/api/status")[1]["model"]["id"] == first  # until told
    code, status = client.post("/api/model/reload")
    assert code == 200 and status["model"]["id"] == second
    assert status["state"] == "idle" and status["healthy"] is True
    rollback(config)
    assert client.post("/api/model/reload")[1]["model"]["id"] == first
    code, report = client.post("/api/focus", {"timeout_s": 60})  # the reloaded model reads
    assert code == 200 and report["steps"] >= 1
    assert client.get("/api/status")[1]["counters"]["steps"] >= 1


def test_reload_is_refused_while_the_lock_runs_and_works_once_it_is_stopped(reloadable):
    _, first, client = reloadable
    assert client.post("/api/lock/start")[0] == 200
    code, answer = client.post("/api/model/reload")
    assert code == 409 and "the lock is running; stop it before reloading" in answer["error"]
    _, status = client.get("/api/status")
    assert status["mode"] == "lock" and status["model"]["id"] == "oracle@test"
    client.post("/api/lock/stop")
    code, status = client.post("/api/model/reload")
    assert code == 200 and status["model"]["id"] == first and status["mode"] == "idle"


def test_a_bundle_that_does_not_load_leaves_the_one_in_use(reloadable, tmp_path):
    config, first, client = reloadable
    assert client.post("/api/model/reload")[1]["model"]["id"] == first
    second = installed(config, tmp_path, "second")
    with (tmp_path / "models" / second.split("@")[0] / "model.tflite").open("ab") as f:
        f.write(b"\0")  # damaged on disk after its install
    code, answer = client.post("/api/model/reload")
    assert code == 503
    assert "not reloaded" in answer["error"] and "checksum" in answer["error"]
    assert f"still reading with {first}" in answer["error"]
    _, status = client.get("/api/status")
    assert status["model"]["id"] == first and status["healthy"] is True


def test_model_install_tells_the_service_at_the_configs_address(start_service, tmp_path,
                                                                 capsys):
    config = reload_config(tmp_path)
    running = start_service(config, hardware=lambda: oracle_hardware(config))
    port = running.server.server_address[1]
    path = tmp_path / "box.toml"
    path.write_text(f'[model]\nbundle = "installed"\nstore = "{tmp_path / "models"}"\n'
                    f'[sim]\nframe_size = 512\n[service]\nport = {port}\n')
    given = shutil.copytree(DEFAULT_BUNDLE, tmp_path / "given" / "tuned")
    assert main(["model", "install", str(given), "--config", str(path)]) == 0
    _, status = running.client.get("/api/status")
    assert status["model"]["id"].split("@")[0].endswith("-tuned")
    out = capsys.readouterr().out
    assert f"the service at http://127.0.0.1:{port} now reads {status['model']['id']}" in out
    running.client.post("/api/lock/start")
    assert main(["model", "rollback", "--config", str(path)]) == 2  # no previous yet
    assert main(["model", "install", str(given), "--config", str(path)]) == 0
    assert "did not reload (409: the lock is running" in capsys.readouterr().out
