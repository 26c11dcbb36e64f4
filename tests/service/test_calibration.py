"""The guided calibration through a real service on loopback (docs/calibrate.md, "From the
dashboard"): the worker collects the stacks on the virtual microscope, waiting for "next field"
between them; the fine-tuning runs as ``focuslock calibrate`` in a child process; the result is
installed with one request and rolled back with another. Refusals leave everything as it was."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from controller.config import Config
from controller.installed_models import CURRENT, PREVIOUS, install
from controller.service.calibration import MIN_STACKS
from tests.service.conftest import Client, Running, oracle_hardware, service_config
from tests.service.test_events import Stream
from tests.service.test_looking import fetch
from tests.service.test_openapi import Documented

TIMEOUT_S = 60.0  # generous: the machine is shared
TRAINING_TIMEOUT_S = 600.0
SMALL = {"stacks": 3, "range_um": 5, "step_um": 1}  # 11 planes of 128² a stack
NEAR_FOCUS_Z_UM = 1.0  # the drive starts here: the sample's focus (z = 0) is inside SMALL's range


@pytest.fixture
def near_focus(start_service, tmp_path) -> Running:
    """A service whose drive starts 1 µm above the sample's focus."""
    return start_service(service_config(tmp_path, sim={"start_z_um": NEAR_FOCUS_Z_UM}))


def wait_calibration(client: Client, predicate: Callable[[dict[str, Any]], bool],
                     timeout_s: float = TIMEOUT_S, what: str = "") -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        code, job = client.get("/api/calibration")
        assert code == 200
        if predicate(job):
            return job
        if time.monotonic() > deadline or job["phase"] == "failed":
            raise AssertionError(f"timed out waiting for {what or predicate}: {job}")
        time.sleep(0.05)


def waiting_after(client: Client, stack: int) -> dict[str, Any]:
    return wait_calibration(client, lambda j: j["phase"] == "waiting" and j["stack"] == stack,
                            what=f"waiting after stack {stack}")


def test_the_service_refuses_fewer_stacks_than_calibrate_does():
    from training.calibrate import HOLD_OUT, MIN_TRAINING_STACKS

    assert MIN_STACKS == HOLD_OUT + MIN_TRAINING_STACKS


def test_the_service_and_the_page_collect_as_many_stacks_as_calibrate_does():
    from controller.service.calibration import DEFAULT_STACKS
    from training.calibrate import STACKS

    page = (Path(__file__).parents[2] / "controller" / "service" / "dashboard.html").read_text()
    assert DEFAULT_STACKS == STACKS
    assert f'id="cal-stacks" type="number" min="{MIN_STACKS}" max="50"\n        step="1" ' \
           f'value="{STACKS}"' in page


@pytest.mark.parametrize(("body", "message"), [
    ({"stacks": 2}, "stacks: must be an integer in [3, 50], got 2"),
    ({"stacks": 4.5}, "stacks: must be an integer"),
    ({"range_um": -1}, "range_um: must be a number in (0, 200] µm, got -1"),
    ({"step_um": True}, "step_um: must be a number"),
    ({"range_um": 2, "step_um": 1}, "makes 5 planes a stack; the ground truth needs 7 to 401"),
    ({"max_epochs": 0}, "max_epochs: must be an integer in [1, 1000]"),
    ({"planes": 3}, 'unknown field "planes"'),
])
def test_a_bad_request_is_refused_and_nothing_moves(running, body, message):
    code, answer = running.client.post("/api/calibration", body)
    assert code == 400 and message in answer["error"]
    assert running.client.get("/api/calibration")[1]["phase"] == "none"
    assert running.client.get("/api/status")[1]["mode"] == "idle"


def test_bad_json_is_refused(running):
    code, answer, _ = running.client.request("POST", "/api/calibration", raw=b"{stacks: 3")
    assert code == 400 and "not valid JSON" in answer["error"]


def test_nothing_to_do_without_a_calibration(running):
    client = running.client
    for path in ("/api/calibration/next", "/api/calibration/cancel",
                 "/api/calibration/install"):
        code, answer = client.post(path)
        assert code == 409, path
        assert "no calibration" in answer["error"]
    code, answer = client.get("/api/calibration/figure.png")
    assert code == 409 and "no calibration has run" in answer["error"]


def test_a_calibration_is_refused_while_locked(running):
    client = running.client
    client.post("/api/lock/start")
    code, answer = client.post("/api/calibration", SMALL)
    assert code == 409 and "the lock is running" in answer["error"]
    assert client.get("/api/calibration")[1]["phase"] == "none"


def test_one_at_a_time_the_lock_waits_and_a_cancel_puts_the_drive_back(near_focus):
    client = near_focus.client
    code, job = client.post("/api/calibration", SMALL)
    assert code == 202 and job["phase"] == "collecting" and job["planes"] == 11
    job = waiting_after(client, 1)
    assert job["planes_done"] == 11 and job["planes_total"] == 33 and job["time_left_s"] > 0
    (curve,) = job["curves"]
    assert curve["file"] == "position-000.ome.tif" and len(curve["sharpness"]) == 11
    assert not curve["error"] and abs(curve["focus_z_um"]) < 1.0  # the sample's focus: z = 0
    status = client.get("/api/status")[1]
    assert status["mode"] == "calibrate" and status["leds"] == "off"
    for path, body in (("/api/calibration", SMALL), ("/api/lock/start", None),
                       ("/api/focus", {}), ("/api/drive/home", None)):
        assert client.post(path, body)[0] == 409, path
    refusal = client.post("/api/calibration", SMALL)[1]["error"]
    assert refusal.startswith("a calibration is waiting already")
    assert client.post("/api/calibration/next")[0] == 200
    code, job = client.post("/api/calibration/cancel")
    assert code == 200 and job["phase"] == "cancelled"
    assert f"the drive is back at z = {NEAR_FOCUS_Z_UM:.2f} µm" in job["message"]
    assert "nothing installed" in job["message"]
    status = client.get("/api/status")[1]
    assert status["mode"] == "idle" and status["leds"] == "off"
    assert abs(status["z_um"] - NEAR_FOCUS_Z_UM) < 0.1
    assert client.post("/api/calibration/cancel")[0] == 409  # over already
    assert client.post("/api/lock/start")[0] == 200  # the rig is the lock's again


def test_stop_ends_the_collecting_and_a_curve_without_its_peak_says_why(running):
    client = running.client  # the drive starts 8 µm above focus: outside ±5 µm
    client.post("/api/calibration", SMALL)
    (curve,) = waiting_after(client, 1)["curves"]
    assert len(curve["sharpness"]) == 11 and curve["focus_z_um"] is None
    assert "at the stack's end: focus is not inside the stack's z range" in curve["error"]
    assert client.post("/api/stop")[0] == 200
    job = client.get("/api/calibration")[1]
    assert job["phase"] == "cancelled" and job["message"].startswith("stopped by request")
    assert client.get("/api/status")[1]["mode"] == "idle"


def test_the_answers_match_the_document(near_focus):
    check = Documented(near_focus.client).check
    check("GET", "/api/calibration", expect=200)  # phase none
    check("POST", "/api/calibration", {"stacks": 1}, expect=400)
    check("POST", "/api/calibration/next", expect=409)
    check("GET", "/api/calibration/figure.png", expect=409)
    check("POST", "/api/model/rollback", expect=409)  # nothing installed
    check("POST", "/api/calibration", SMALL, expect=202)
    check("POST", "/api/calibration", SMALL, expect=409)
    waiting_after(near_focus.client, 1)
    job = check("GET", "/api/calibration", expect=200)
    assert job["phase"] == "waiting" and job["curves"][0]["focus_z_um"] is not None
    check("POST", "/api/calibration/install", {"force": "yes"}, expect=400)
    check("POST", "/api/calibration/install", expect=409)
    check("POST", "/api/calibration/next", expect=200)
    check("POST", "/api/calibration/cancel", expect=200)


def test_the_events_carry_the_progress(running):
    client = running.client
    stream = Stream(client.port)
    try:
        assert stream.head()[0] == 200
        assert stream.next().kind == "state"
        client.post("/api/calibration", SMALL)
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["phase"] != "waiting":
            event = stream.next()
            if event.kind == "calibration":
                seen.append(event.data)
        planes = [job["plane"] for job in seen if job["phase"] == "collecting"]
        assert planes[-11:] == list(range(1, 12))
        assert len(seen[-1]["curves"]) == 1
    finally:
        stream.sock.close()
        client.post("/api/calibration/cancel")


def test_a_fine_tuning_that_fails_says_why(running):
    """Stacks whose focus lies outside their range (the drive starts 8 µm above it) cannot be
    labelled: the job says so in the child's own words, and the service goes on serving."""
    client = running.client
    client.post("/api/calibration", {**SMALL, "max_epochs": 1})
    for stack in (1, 2):
        waiting_after(client, stack)
        client.post("/api/calibration/next")
    deadline = time.monotonic() + TRAINING_TIMEOUT_S
    while (job := client.get("/api/calibration")[1])["phase"] in ("collecting", "training"):
        assert client.get("/api/health")[0] == 200
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["phase"] == "failed" and job["message"].startswith("fine-tuning failed")
    assert "focus is not inside the stack's z range" in job["message"]
    assert (Path(job["folder"]) / "calibrate.log").is_file()
    assert len(os.listdir(Path(job["folder"]) / "stacks")) == 3


def test_a_cancel_while_fine_tuning_kills_it(running):
    client = running.client
    client.post("/api/calibration", {**SMALL, "max_epochs": 1})
    for stack in (1, 2):
        waiting_after(client, stack)
        client.post("/api/calibration/next")
    wait_calibration(client, lambda j: j["phase"] == "training", what="training")
    code, job = client.post("/api/calibration/cancel")  # TensorFlow takes seconds to import
    assert code == 200 and job["phase"] == "cancelled", job
    assert job["message"] == "cancelled while fine-tuning: nothing installed"
    assert not (Path(job["folder"]) / "tune" / "calibration.json").exists()


# -- end to end, with the tiny bundle trained on cells, calibrated on beads -----------------------

def calibration_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    """The virtual microscope at the tiny bundle's 256² frames, showing beads (a sample it never
    saw), in focus where the drive stands; the config reads the store."""
    return service_config(tmp_path, model={"bundle": "installed",
                                           "store": str(tmp_path / "models")},
                          sim={"frame_size": 256, "sample": "beads", "seed": 7,
                               "start_z_um": 0.0, "settle_s": 0.0}, **sections)


@pytest.mark.slow
@pytest.mark.training
def test_a_calibration_completes_installs_and_rolls_back(start_service, bundle,
                                                         tmp_path):
    config = calibration_config(tmp_path)
    base = install(config, bundle)
    running: Running = start_service(config, hardware=lambda: oracle_hardware(config))
    client = running.client
    code, job = client.post("/api/calibration",
                            {"stacks": 5, "range_um": 10, "step_um": 1, "max_epochs": 40})
    assert code == 202 and job["base"] == base.name
    for stack in range(1, 5):
        job = waiting_after(client, stack)
        assert len(job["curves"]) == stack
        client.post("/api/calibration/next")
    wait_calibration(client, lambda j: j["phase"] == "ready", timeout_s=TRAINING_TIMEOUT_S,
                     what="ready")
    job = Documented(client).check("GET", "/api/calibration", expect=200)
    assert [c["file"] for c in job["curves"]] == [f"position-{i:03d}.ome.tif"
                                                  for i in range(5)]
    assert all(abs(c["focus_z_um"]) < 1.5 for c in job["curves"])
    result = job["result"]
    assert result["held_out"] == ["position-004.ome.tif"]
    assert result["before_rmse_um"] > 0 and result["after_rmse_um"] > 0
    summary = json.loads((Path(job["folder"]) / "tune" / "calibration.json").read_text())
    assert result["after_refused"] == summary["after"]["refused"] is not None
    assert result["before_refused"] == summary["before"]["refused"] is not None
    assert f"its gates refuse {result['after_refused']:.0%} of the held-out frames" in \
        job["message"]
    code, kind, figure = fetch(client.port, "/api/calibration/figure.png")
    assert code == 200 and kind == "image/png"
    assert Image.open(io.BytesIO(figure)).size == (640, 320)  # two panels, side by side
    assert json.loads((Path(job["folder"]) / "tune" / "calibration.json").read_text())[
        "installed"] is None  # nothing installed before the request
    if not result["improved"]:
        code, answer = client.post("/api/calibration/install")
        assert code == 409 and '{"force": true}' in answer["error"]
    job = Documented(client).check("POST", "/api/calibration/install", {"force": True},
                                   expect=200)
    assert job["phase"] == "installed", job
    store = tmp_path / "models"
    assert os.readlink(store / CURRENT) == job["installed"]
    assert os.readlink(store / PREVIOUS) == base.name
    status = client.get("/api/status")[1]
    assert status["model"]["id"].startswith(job["installed"] + "@")  # the service reads it
    code, status = client.post("/api/model/rollback")
    assert code == 200 and status["model"]["id"].startswith(base.name + "@")
    assert os.readlink(store / CURRENT) == base.name
