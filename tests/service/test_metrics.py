"""``GET /metrics`` of a real service on loopback, read back with prometheus_client's own parser:
the families a Prometheus server scrapes, with values that agree with the status and never
count twice."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from controller.hardware.board import FocusBoard
from controller.sensing import NetworkSensor
from controller.sim.twin import DigitalTwin
from tests.loop.doubles import OraclePredictor
from tests.service.conftest import FOCUS_Z_UM, Client, service_config, twin_hardware

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

FAMILIES = {
    "focuslock_up": "gauge", "focuslock_state": "gauge", "focuslock_lock_running": "gauge",
    "focuslock_z_um": "gauge", "focuslock_offset_um": "gauge",
    "focuslock_model_bias_um": "gauge", "focuslock_defocus_um": "gauge",
    "focuslock_error_um": "gauge", "focuslock_confidence": "gauge",
    "focuslock_uptime_seconds": "gauge", "focuslock_steps": "counter",
    "focuslock_moves": "counter", "focuslock_locked_steps": "counter",
    "focuslock_rejections": "counter", "focuslock_readings": "counter",
    "focuslock_faults": "counter", "focuslock_lock_starts": "counter",
    "focuslock_focus_runs": "counter", "focuslock_board_link_retries": "counter",
    "focuslock_step_seconds": "histogram", "focuslock_abs_defocus_um": "histogram",
    # when each histogram began (Unix time): prometheus_client's, for histograms it keeps
    "focuslock_step_seconds_created": "gauge", "focuslock_abs_defocus_um_created": "gauge",
}


def scrape(client: Client) -> tuple[dict[str, str], Samples]:
    """The metric families' types, and every sample by (name, labels)."""
    code, text, response = client.request("GET", "/metrics")
    assert code == 200 and response.getheader("Content-Type") == CONTENT_TYPE_LATEST
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return types, samples


def counts(samples: Samples) -> Samples:
    """The samples that only ever grow: counters and histograms (not their creation times)."""
    return {key: value for key, value in samples.items()
            if key[0].endswith(("_total", "_count", "_sum", "_bucket"))}


def test_metrics_parse_and_count_a_focus_now_once(running):
    client = running.client
    types, before = scrape(client)
    assert types == FAMILIES
    assert before["focuslock_step_seconds_count", ()] == 0
    assert math.isnan(before["focuslock_defocus_um", ()])  # no reading yet

    code, report = client.post("/api/focus")
    assert code == 200 and report["success"] is True
    _, status = client.get("/api/status")
    _, samples = scrape(client)
    steps = status["counters"]["steps"]
    assert steps == report["steps"] >= 2
    assert samples["focuslock_steps_total", ()] == steps
    assert samples["focuslock_moves_total", ()] == report["moves"] >= 1
    assert samples["focuslock_focus_runs_total", ()] == 1
    assert samples["focuslock_up", ()] == 1.0 and samples["focuslock_lock_running", ()] == 0.0
    assert samples["focuslock_state", (("state", "idle"),)] == 1.0
    assert samples["focuslock_state", (("state", "locked"),)] == 0.0
    assert abs(samples["focuslock_z_um", ()] - FOCUS_Z_UM) <= status["tolerance_um"]
    assert samples["focuslock_board_link_retries_total", ()] == 0  # no board: a virtual rig
    assert samples["focuslock_faults_total", ()] == 0
    # the trusted readings: focus now's finish adds steps that read the sharpness, not the model
    _, page = client.get(f"/api/log?since=0&limit={steps}")
    trusted = sum(1 for r in page["records"] if r["defocus_um"] is not None and not r["rejected"])
    assert samples["focuslock_readings_total", (("cue", "network"),)] == trusted >= 2

    # each step observed once: its duration on the loop's clock, and a trusted reading's size
    assert samples["focuslock_step_seconds_count", ()] == steps
    assert samples["focuslock_step_seconds_bucket", (("le", "+Inf"),)] == steps
    assert samples["focuslock_step_seconds_sum", ()] > 0
    assert samples["focuslock_abs_defocus_um_count", ()] == trusted
    largest = abs(status["last_step"]["defocus_um"])
    assert samples["focuslock_abs_defocus_um_sum", ()] >= largest
    assert samples["focuslock_abs_defocus_um_bucket", (("le", "0.5"),)] >= 1  # the last one
    assert samples["focuslock_abs_defocus_um_bucket", (("le", "5.0"),)] < trusted  # the first
    buckets = [value for (name, _), value in samples.items() if name.endswith("_bucket")
               and name.startswith("focuslock_step_seconds")]
    assert buckets == sorted(buckets)  # cumulative

    assert counts(scrape(client)[1]) == counts(samples)  # a scrape counts nothing


def test_rejections_are_counted_by_gate(running):
    client = running.client
    assert client.post("/api/focus")[0] == 200
    _, before = scrape(client)
    assert not any(name == "focuslock_rejections_total" for name, _ in before)
    sensor = running.hardware[-1].sensor
    assert isinstance(sensor, NetworkSensor) and isinstance(sensor.predictor, OraclePredictor)
    sensor.predictor.confidence = 0.1  # below the model's 0.4: every reading is refused
    code, report = client.post("/api/focus")
    assert code == 200 and report["success"] is False and report["state"] == "lost"
    _, status = client.get("/api/status")
    _, samples = scrape(client)
    refused = status["counters"]["rejected"]["confidence"]
    assert refused >= 1 and samples["focuslock_rejections_total", (("gate", "confidence"),)] \
        == refused
    assert samples["focuslock_steps_total", ()] == before["focuslock_steps_total", ()] + refused
    assert samples["focuslock_step_seconds_count", ()] == samples["focuslock_steps_total", ()]
    # a refused reading says nothing of where focus is
    assert samples["focuslock_abs_defocus_um_count", ()] == \
        before["focuslock_abs_defocus_um_count", ()]
    assert samples["focuslock_focus_runs_total", ()] == 2


def test_the_lock_shows_in_the_metrics(running):
    client = running.client
    client.post("/api/lock/start")
    client.wait_for(lambda s: s["state"] == "locked" and s["counters"]["steps"] >= 4,
                    what="locked")
    _, samples = scrape(client)
    assert samples["focuslock_state", (("state", "locked"),)] == 1.0
    assert samples["focuslock_state", (("state", "idle"),)] == 0.0
    assert samples["focuslock_lock_running", ()] == 1.0
    assert samples["focuslock_lock_starts_total", ()] == 1
    assert samples["focuslock_locked_steps_total", ()] >= 1
    assert samples["focuslock_step_seconds_count", ()] >= samples["focuslock_steps_total", ()]


def test_two_services_in_one_process_keep_their_own_metrics(start_service, tmp_path):
    first = start_service(service_config(tmp_path / "first"))
    second = start_service(service_config(tmp_path / "second"))
    assert first.client.post("/api/focus")[0] == 200
    _, mine = scrape(first.client)
    _, theirs = scrape(second.client)
    assert mine["focuslock_step_seconds_count", ()] > 0
    assert theirs["focuslock_step_seconds_count", ()] == 0
    assert theirs["focuslock_steps_total", ()] == 0


@pytest.mark.firmware
@pytest.mark.slow
def test_resent_board_packets_are_counted(start_service, tmp_path):
    config = service_config(tmp_path, board={"backend": "firmware-sim"}, lock={"rate_hz": 5.0})
    twins: list[DigitalTwin] = []
    running = start_service(config, hardware=twin_hardware(config, tmp_path / "firmware", twins))
    client = running.client
    twin = twins[-1]
    twin.board.to_host.drop = 0.2  # a noisy line: one reply in five is lost and resent for
    assert client.post("/api/focus")[0] == 200
    twin.board.to_host.drop = 0.0
    _, samples = scrape(client)
    resent = samples["focuslock_board_link_retries_total", ()]
    assert resent == client.get("/api/status")[1]["counters"]["link_retries"]
    drive = twin.rig.drive
    assert isinstance(drive, FocusBoard) and 0 < resent <= drive.link.retransmissions
