"""``POST /api/stop`` against a real server: it ends a running focus now between two moves (the
mode is ``stopping`` meanwhile, every other command still refused), stops the lock, and is
harmless when nothing runs; and focus now through the service stays inside its search window."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.service.conftest import (
    START_Z_UM,
    oracle_hardware,
    service_config,
)


def in_background(call, *args: Any) -> tuple[threading.Thread, list[Any]]:
    """``call(*args)`` in a thread; its result lands in the list."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call(*args)), daemon=True)
    thread.start()
    return thread, result


def test_stop_ends_a_running_focus_now_before_its_next_move(hanging_service):
    running, model = hanging_service
    client = running.client
    model.free.clear()
    try:
        focus, focus_reply = in_background(client.post, "/api/focus", {"timeout_s": 60})
        assert model.stuck.wait(30)  # the first reading hangs in the model
        stop, stop_reply = in_background(client.post, "/api/stop")
        client.wait_for(lambda s: s["mode"] == "stopping", what="the stop to be asked")
        for method, path, body in (("POST", "/api/focus", None),
                                   ("POST", "/api/lock/start", None),
                                   ("PUT", "/api/offset", {"offset_um": 1.0})):
            code, reply, _ = client.request(method, path, body)
            assert code == 409 and "stopping" in reply["error"], path
    finally:
        model.free.set()
    focus.join(30)
    stop.join(30)
    code, report = focus_reply[0]
    assert code == 200 and report["success"] is False
    assert (report["state"], report["reason"]) == ("idle", "stopped by request")
    assert report["moves"] == 0 and report["steps"] == 1
    code, status = stop_reply[0]
    assert code == 200 and status["mode"] == "idle" and status["state"] == "idle"
    assert status["reason"] == "stopped by request" and status["leds"] == "off"
    assert running.hardware[-1].rig.drive.position_um() == pytest.approx(START_Z_UM)
    assert status["last_step"]["reason"] == "stopped by request"
    assert client.post("/api/focus")[1]["success"] is True  # the next focus now is not stopped


def test_stop_stops_the_lock_and_is_harmless_when_nothing_runs(running):
    client = running.client
    code, status = client.post("/api/stop")
    assert code == 200 and status["mode"] == "idle" and status["state"] == "idle"
    assert client.post("/api/lock/start")[0] == 200
    client.wait_for(lambda s: s["state"] == "locked", what="locked")
    code, status = client.post("/api/stop")
    assert code == 200 and (status["mode"], status["state"], status["leds"]) == (
        "idle", "idle", "off")
    code, reply = client.post("/api/stop", {"now": True})
    assert code == 400 and 'unknown field "now"' in reply["error"]


def test_closing_the_service_stops_a_running_focus_now_first(hanging_service):
    running, model = hanging_service
    model.free.clear()
    try:
        in_background(running.client.post, "/api/focus", {"timeout_s": 60})
        assert model.stuck.wait(30)
        closing, closed = in_background(running.service.close)
        running.client.wait_for(lambda s: s["mode"] == "stopping", what="the stop to be asked")
    finally:
        model.free.set()
    closing.join(30)
    clean, summary = closed[0]
    assert clean and "LEDs off" in summary
    assert running.hardware[-1].rig.drive.position_um() == pytest.approx(START_Z_UM)


@pytest.mark.parametrize("offset_um", [0.0, 45.0])
def test_focus_now_through_the_service_stays_in_its_search_window(start_service, tmp_path,
                                                                   offset_um):
    config = service_config(tmp_path, lock={"offset_um": offset_um})
    running = start_service(config, hardware=lambda: oracle_hardware(
        config, scale=-1.0, trained_range_um=1e3))  # a sample it misreads
    code, report = running.client.post("/api/focus")
    assert code == 200 and report["success"] is False and report["state"] == "lost"
    _, page = running.client.get("/api/log?since=0&limit=500")
    assert all(abs(r["z_um"] + r["move_um"] - START_Z_UM) <= 40.0 for r in page["records"])
    assert abs(running.hardware[-1].rig.drive.position_um() - START_Z_UM) <= 40.0
