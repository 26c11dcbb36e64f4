"""The live views of a real service: the latest autofocus frame, its spectrum with the expected
pupil circles, its histogram against the gates (controller/frame_views.py), decoded by Pillow."""

from __future__ import annotations

import http.client
import io
import json

import numpy as np
from PIL import Image

from controller.frame_views import MAX_SIDE
from controller.service.auth import read_token
from tests.service.conftest import service_config
from tests.service.test_auth import new_token

VIEWS = ("/api/frame.png", "/api/spectrum.png", "/api/histogram", "/api/alignment")


def fetch(port: int, path: str, token: str | None = None) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, response.getheader("Content-Type", ""), data


def test_views_are_409_until_a_frame_is_read(running):
    for path in VIEWS:
        code, kind, body = fetch(running.client.port, path)
        assert code == 409 and kind == "application/json", path
        assert b"no frame has been read yet" in body


def test_frame_spectrum_and_histogram_of_the_latest_autofocus_frame(start_service, tmp_path):
    running = start_service(service_config(tmp_path, sim={"frame_size": 1024}))
    assert running.client.post("/api/focus", {"timeout_s": 60})[0] == 200
    port = running.client.port
    code, kind, data = fetch(port, "/api/frame.png")
    assert code == 200 and kind == "image/png"
    frame = Image.open(io.BytesIO(data))
    assert frame.mode == "L" and frame.size == (MAX_SIDE, MAX_SIDE)  # 1024² averaged by 2
    pixels = np.asarray(frame)
    assert pixels.min() == 0 and pixels.max() == 255  # stretched

    code, kind, data = fetch(port, "/api/spectrum.png")
    assert code == 200 and kind == "image/png"
    spectrum = np.asarray(Image.open(io.BytesIO(data)))
    assert spectrum.shape == (MAX_SIDE, MAX_SIDE, 3)
    red = (spectrum[..., 0] == 255) & (spectrum[..., 1] == 64) & (spectrum[..., 2] == 64)
    # the paper preset's LED at NA (0, 0.371): circles of radius 0.5 NA centred 0.371 NA above
    # and below the centre along y; one NA is 512 · 0.325 / 0.53 bins of the 512² square
    bins_per_na = MAX_SIDE * 0.325 / 0.53
    rows = np.nonzero(red[:, MAX_SIDE // 2])[0] - MAX_SIDE // 2
    expected = sorted({round(s * (0.3714 + e * 0.5) * bins_per_na)
                       for s in (1, -1) for e in (1, -1)
                       if abs(s * (0.3714 + e * 0.5) * bins_per_na) < MAX_SIDE // 2})
    for row in expected:
        assert np.min(np.abs(rows - row)) <= 1, (row, rows)

    code, kind, data = fetch(port, "/api/histogram")
    assert code == 200 and kind == "application/json"
    histogram = json.loads(data)
    assert sum(histogram["counts"]) == 1024 * 1024
    assert histogram["saturated"] is False and histogram["dark"] is False
    assert histogram["saturated_limit"] == running.service.config.gates.saturated_fraction
    assert 0 < histogram["mean_fraction"] < 1


def test_views_follow_the_read_token_rule(start_service, tmp_path):
    _, token_file = new_token(tmp_path)
    running = start_service(service_config(tmp_path, service={
        "token_file": str(token_file), "read_requires_token": True}))
    token = read_token(token_file)
    port = running.client.port
    assert fetch(port, "/api/frame.png", token)[0] == 409
    for path in VIEWS:
        assert fetch(port, path)[0] == 401, path
    running.service.focus_now(60)
    for path in VIEWS:
        # the alignment check may find the 128² frame too coarse (422): past the token either way
        assert fetch(port, path, token)[0] in ((200, 422) if path == "/api/alignment" else (200,))
        assert fetch(port, path, "wrong")[0] == 401, path


def test_alignment_of_the_latest_frame_finds_a_misplaced_led(start_service, tmp_path):
    # the model alone ends at the simulator's focal plane here; a single frame 0.2 µm off it
    # (where the sharpness peaks) reads the y offset up to 0.011 NA off
    running = start_service(service_config(tmp_path, sim={
        "frame_size": 512, "sample": "dense-cells", "seed": 4, "led_shift_na_x": -0.03},
        focus={"sharpness_finish_um": 0.0}))
    assert running.client.post("/api/focus", {"timeout_s": 60})[0] == 200
    code, kind, data = fetch(running.client.port, "/api/alignment")
    assert code == 200 and kind == "application/json", data
    record = json.loads(data)
    # one in-focus frame: within 0.006 NA measured (three defoci: 0.005, tests/test_alignment.py)
    assert abs(record["offset_na"][0] + 0.03) <= 0.008 and abs(record["offset_na"][1]) <= 0.008
    assert record["aligned"] is False and record["frames"] == 1
    assert record["advice"].startswith("move the LED ") and "camera's left edge" in record["advice"]


def test_alignment_says_when_the_frame_shows_no_pupil_circles(start_service, tmp_path):
    running = start_service(service_config(tmp_path, sim={"frame_size": 256}))
    assert running.client.get("/api/status")[0] == 200
    scope = running.hardware[-1].rig.scope
    assert scope is not None
    scope.empty_field = True  # the sample has left the field of view
    assert running.client.post("/api/focus", {"timeout_s": 60})[0] == 200
    code, kind, data = fetch(running.client.port, "/api/alignment")
    assert code == 422 and kind == "application/json"
    assert "cannot see the pupil circles" in json.loads(data)["error"]
