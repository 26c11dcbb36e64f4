"""Every endpoint of the HTTP API against a real server and the virtual microscope: what the
lock does when asked, and what a bad or conflicting request gets back."""

from __future__ import annotations

import dataclasses
import http.client
import math

import pytest

from controller.errors import FocuslockError
from controller.sensing import NetworkSensor
from tests.service.conftest import (
    FOCUS_Z_UM,
    START_Z_UM,
    oracle_hardware,
    service_config,
)


def locked(status) -> bool:
    return status["state"] == "locked"


def test_status_before_anything_runs(running):
    code, status = running.client.get("/api/status")
    assert code == 200
    assert list(status) == ["state", "reason", "z_um", "offset_um", "model_bias_um",
                            "offset_limit_um",
                            "tolerance_um", "rate_hz", "travel_um", "leds", "model", "hardware",
                            "mode", "counters", "last_step", "uptime_s", "healthy", "health"]
    assert status["counters"] == {"steps": 0, "moves": 0, "locked_steps": 0, "rejected": {},
                                  "decided": {}, "faults": 0, "lock_starts": 0, "focus_runs": 0,
                                  "link_retries": 0}
    assert status["travel_um"] == [-1000.0, 1000.0]  # the config's, as the virtual drive's
    assert status["state"] == "idle" and status["mode"] == "idle"
    assert status["z_um"] == pytest.approx(START_Z_UM)
    assert status["offset_um"] == 0.0 and status["offset_limit_um"] == 50.0
    assert status["leds"] == "off" and status["last_step"] is None
    assert status["counters"]["steps"] == 0
    assert status["model"] == {"id": "oracle@test"}
    assert status["hardware"] == {"camera": "virtual", "board": "virtual"}
    assert status["uptime_s"] >= 0 and status["healthy"] is True


def test_lock_start_focuses_then_locks_and_stop_turns_the_leds_off(running):
    client = running.client
    code, started = client.post("/api/lock/start")
    assert code == 200 and started["mode"] == "lock"
    assert started["state"] == "focusing" and started["leds"] == "autofocus"
    status = client.wait_for(locked, what="locked")
    assert abs(status["z_um"] - FOCUS_Z_UM) <= status["tolerance_um"]
    last = status["last_step"]
    assert last["state"] == "locked" and last["rejected"] == []
    assert abs(last["defocus_um"]) <= 0.5 and last["confidence"] == pytest.approx(0.9)
    assert last["seq"] >= 3 and last["time"] > 0
    assert status["counters"]["moves"] >= 2 and status["counters"]["lock_starts"] == 1

    code, stopped = client.post("/api/lock/stop")
    assert code == 200 and stopped["state"] == "idle" and stopped["mode"] == "idle"
    assert stopped["leds"] == "off"
    assert running.hardware[-1].rig.illuminator.pattern is None  # the virtual LEDs are off


def test_focus_now_reports_and_leaves_the_sample_in_focus(running):
    code, report = running.client.post("/api/focus", {"timeout_s": 30})
    assert code == 200
    assert report["success"] is True and report["state"] == "idle"
    assert 1 <= report["moves"] <= 3
    scope = running.hardware[-1].rig.scope
    assert abs(scope.defocus_um()) <= 0.5
    _, status = running.client.get("/api/status")
    assert status["leds"] == "off" and status["counters"]["focus_runs"] == 1


def test_focus_now_on_a_biased_model_hands_its_bias_to_the_lock(start_service, tmp_path):
    # the model reads focus 1 µm off, as on a sample it never saw; focus now finishes on the
    # sharpness, reads the model there, and the lock started after it holds that plane
    config = service_config(tmp_path, focus={"sharpness_finish_um": 1.5})
    running = start_service(config, hardware=lambda: oracle_hardware(config, bias_um=1.0))
    client = running.client
    code, report = client.post("/api/focus", {"timeout_s": 30})
    assert code == 200 and report["success"] is True
    scope = running.hardware[-1].rig.scope
    landed = scope.defocus_um()  # defocus = z_focus - z: the model reads 1 µm + this here
    assert abs(landed) <= 0.3
    assert report["model_bias_um"] == pytest.approx(1.0 + landed, abs=0.05)
    _, status = client.get("/api/status")
    assert status["model_bias_um"] == report["model_bias_um"]
    client.post("/api/lock/start")
    client.wait_for(locked, what="locked")
    assert abs(scope.defocus_um()) <= 0.3  # the model's own focus is 1 µm away
    client.post("/api/lock/stop")


def test_focus_now_that_outlasts_its_timeout_is_504_and_holds_off_other_commands(
        hanging_service):
    running, model = hanging_service
    client = running.client
    model.free.clear()
    try:
        code, reply = client.post("/api/focus", {"timeout_s": 0.3})
        assert code == 504 and "has not finished after 0.3 s" in reply["error"]
        assert model.stuck.is_set() and client.get("/api/status")[1]["mode"] == "focus"
        for method, path, body in (("POST", "/api/focus", None), ("POST", "/api/lock/start", None),
                                   ("POST", "/api/lock/stop", None),
                                   ("PUT", "/api/offset", {"offset_um": 1.0})):
            code, reply, _ = client.request(method, path, body)
            assert code == 409 and "focus now" in reply["error"], path
    finally:
        model.free.set()
    client.wait_for(lambda s: s["mode"] == "idle", what="focus now to finish")
    assert abs(running.hardware[-1].rig.scope.defocus_um()) <= 0.5  # it went on and did its job
    assert client.post("/api/lock/start")[0] == 200


def test_conflicting_requests_get_409(running):
    client = running.client
    assert client.post("/api/lock/start")[0] == 200
    code, body = client.post("/api/focus")
    assert code == 409 and "stop it first" in body["error"]
    code, body = client.post("/api/lock/start")
    assert code == 409 and "already running" in body["error"]
    assert client.post("/api/lock/stop")[0] == 200
    assert client.post("/api/lock/stop")[0] == 200  # stopping a stopped lock is harmless


def test_offset_change_moves_the_held_position(running):
    client = running.client
    client.post("/api/lock/start")
    client.wait_for(locked, what="locked at offset 0")
    code, status = client.put("/api/offset", {"offset_um": 3.0})
    assert code == 200 and status["offset_um"] == 3.0
    status = client.wait_for(
        lambda s: locked(s) and s["last_step"]["error_um"] is not None
        and abs(s["z_um"] - (FOCUS_Z_UM + 3.0)) < 0.5, what="locked at the new offset")
    # the truth agrees: the sample is held 3 µm beyond focus (z = z_focus + offset)
    scope = running.hardware[-1].rig.scope
    assert scope.defocus_um() == pytest.approx(-3.0, abs=0.5)
    client.put("/api/offset", {"offset_um": -2})
    client.wait_for(lambda s: locked(s) and abs(s["z_um"] - (FOCUS_Z_UM - 2.0)) < 0.5,
                    what="locked at -2 µm")


@pytest.mark.parametrize(("body", "message"), [
    ({"offset_um": "2"}, "finite number"),
    ({"offset_um": True}, "finite number"),
    ({"offset_um": None}, "finite number"),
    ({"offset_um": 60.0}, "within ±50 µm"),
    ({"offset_um": -50.5}, "within ±50 µm"),
    ({}, 'missing field "offset_um"'),
    ({"offset_um": 1, "gain": 2}, 'unknown field "gain"'),
])
def test_bad_offsets_are_400_and_change_nothing(running, body, message):
    code, reply = running.client.put("/api/offset", body)
    assert code == 400 and message in reply["error"]
    assert running.client.get("/api/status")[1]["offset_um"] == 0.0


@pytest.mark.parametrize(("raw", "message"), [
    (b'{"offset_um": NaN}', "NaN is not a JSON number"),
    (b'{"offset_um": Infinity}', "Infinity is not a JSON number"),
    (b'{"offset_um": 1', "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b"\xff\xfe", "not valid JSON"),
    (b'{"offset_um": 1e400}', "the number 1e400 is too large"),
    (b'{"offset_um": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
])
def test_malformed_bodies_are_400(running, raw, message):
    code, reply, _ = running.client.request("PUT", "/api/offset", raw=raw)
    assert code == 400 and message in reply["error"]


def test_wrong_paths_methods_types_and_parameters(running):
    client = running.client
    code, reply, _ = client.request("GET", "/api/nothing")
    assert code == 404 and "/api/nothing" in reply["error"]
    code, reply, response = client.request("GET", "/api/lock/start")
    assert code == 405 and response.getheader("Allow") == "POST"
    code, reply, response = client.request("DELETE", "/api/offset")
    assert code == 405 and "use PUT" in reply["error"]
    code, reply, _ = client.request("POST", "/api/lock/start", content_type=None)
    assert code == 415 and "application/json" in reply["error"]
    code, reply, _ = client.request("POST", "/api/lock/start", {"now": True})
    assert code == 400 and 'unknown field "now"' in reply["error"]
    code, reply, _ = client.request("POST", "/api/focus", {"timeout_s": 0})
    assert code == 400 and "timeout_s" in reply["error"]
    code, reply, _ = client.request("GET", "/api/status?verbose=1")
    assert code == 400 and 'unknown query parameter "verbose"' in reply["error"]
    code, reply, _ = client.request("PUT", "/api/offset", raw=b" " * 70_000)
    assert code == 413
    connection = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
    connection.request("PUT", "/api/offset", body=iter([b'{"offset_um": 1}']),
                       headers={"Content-Type": "application/json"}, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 411 and b"Content-Length" in response.read()
    connection.close()
    assert client.get("/api/status")[1]["mode"] == "idle"  # none of it started anything


def test_the_virtual_drive_has_no_reference_to_give_back(running):
    for method, path, body in (("POST", "/api/drive/home", None),
                               ("PUT", "/api/drive/position", {"z_um": 0.0}),
                               ("POST", "/api/drive/clear-fault", None)):
        code, reply, _ = running.client.request(method, path, body)
        assert code == 409 and "never loses its position" in reply["error"], path
    code, reply = running.client.put("/api/drive/position", {"z_um": "here"})
    assert code == 400 and "z_um: must be a finite number" in reply["error"]


def test_log_pages_through_step_records(running):
    client = running.client
    client.post("/api/lock/start")
    client.wait_for(lambda s: s["counters"]["steps"] >= 6, what="6 steps")
    client.post("/api/lock/stop")
    code, page = client.get("/api/log?since=0&limit=2")
    assert code == 200 and page["more"] is True and page["missed"] == 0
    assert [r["seq"] for r in page["records"]] == [1, 2]
    first = page["records"][0]
    assert first["z_um"] == pytest.approx(START_Z_UM) and first["move_um"] != 0
    assert first["error_um"] == pytest.approx(first["defocus_um"])  # offset 0
    _, rest = client.get(f"/api/log?since={page['records'][-1]['seq']}")
    assert rest["more"] is False and rest["records"][0]["seq"] == 3
    assert rest["records"][-1]["seq"] == rest["last_seq"]
    _, empty = client.get(f"/api/log?since={rest['last_seq']}")
    assert empty["records"] == [] and empty["more"] is False
    for query, message in (("since=-1", "since: must be >= 0"),
                           ("limit=0", "limit: must be in [1, 500]"),
                           ("limit=many", "limit: must be an integer"),
                           ("after=3", 'unknown query parameter "after"')):
        code, reply = client.get(f"/api/log?{query}")
        assert code == 400 and message in reply["error"], query


def test_log_says_how_many_records_a_slow_client_missed(start_service):
    running = start_service(history_capacity=4)
    client = running.client
    client.post("/api/lock/start")
    client.wait_for(lambda s: s["counters"]["steps"] >= 8, what="8 steps")
    client.post("/api/lock/stop")
    _, page = client.get("/api/log?since=0")
    last = page["last_seq"]
    assert [r["seq"] for r in page["records"]] == list(range(last - 3, last + 1))
    assert page["missed"] == last - 4


def test_dashboard_is_one_self_contained_page(running):
    code, page, response = running.client.request("GET", "/")
    assert code == 200 and response.getheader("Content-Type").startswith("text/html")
    assert '<canvas id="plot"' in page
    assert "http://" not in page and "https://" not in page  # no CDN, works offline
    for endpoint in ("/api/status", "/api/log", "/api/focus", "/api/lock/start",
                     "/api/stop", "/api/offset"):  # its Stop ends the lock or a focus now
        assert endpoint in page


def test_a_camera_fault_shows_in_health_and_the_lock_restarts_once_fixed(running):
    client = running.client
    client.post("/api/lock/start")
    client.wait_for(locked, what="locked")
    camera = running.hardware[-1].rig.camera
    camera.dead = True  # the virtual camera's fault switch: no frame arrives any more
    status = client.wait_for(lambda s: s["state"] == "fault", what="fault")
    assert "CameraTimeout" in status["reason"] and status["mode"] == "idle"
    assert status["leds"] == "off" and status["counters"]["faults"] == 1
    code, health = client.get("/api/health")
    assert code == 503 and health["healthy"] is False and "CameraTimeout" in health["reason"]
    camera.dead = False  # the cause is fixed
    assert client.get("/api/status")[1]["state"] == "fault"  # a fault stays until restarted
    code, _ = client.post("/api/lock/start")
    assert code == 200
    client.wait_for(locked, what="locked again")
    code, health = client.get("/api/health")
    assert code == 200 and health == {"healthy": True, "reason": "ok", "state": "locked"}


def test_hardware_that_cannot_open_is_a_fault_and_is_retried(start_service, tmp_path):
    config = service_config(tmp_path)
    attempts = []

    def plugged_in_late():
        attempts.append(1)
        if len(attempts) == 1:
            raise FocuslockError("focus board: no board on /dev/focusboard")
        return oracle_hardware(config)

    running = start_service(config, hardware=plugged_in_late)
    client = running.client
    status = client.wait_for(lambda s: s["state"] == "fault", what="fault")
    assert "no board on /dev/focusboard" in status["reason"]
    assert client.get("/api/health")[0] == 503
    code, reply = client.post("/api/lock/start")
    assert code == 200 and reply["state"] == "focusing" and len(attempts) == 2
    client.wait_for(locked, what="locked")


class BrokenModel:
    min_confidence = 0.4
    pair = None

    def predict(self, image):
        raise ZeroDivisionError("a bug in the model code")


def test_an_unexpected_error_is_a_fault_not_a_dead_server(start_service, tmp_path):
    config = service_config(tmp_path)

    def hardware():
        made = oracle_hardware(config)
        return dataclasses.replace(made, sensor=NetworkSensor(BrokenModel(),
                                                              made.rig.preset.autofocus))

    running = start_service(config, hardware=hardware)
    client = running.client
    assert client.post("/api/lock/start")[0] == 200
    status = client.wait_for(lambda s: s["state"] == "fault", what="fault")
    assert "ZeroDivisionError: a bug in the model code" in status["reason"]
    assert status["leds"] == "off"
    code, reply = client.post("/api/focus")
    assert code == 503 and "ZeroDivisionError" in reply["error"]
    assert client.get("/api/health")[0] == 503
    assert not math.isnan(client.get("/api/status")[1]["uptime_s"])
