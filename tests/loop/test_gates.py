"""Each gate on its own: the frame statistics and the prediction checks that veto a move."""

import numpy as np
import pytest

from controller.config import GateSettings
from controller.gates import check_frame, check_prediction, frame_stats
from controller.hardware.interfaces import Frame
from controller.prediction import Prediction
from tests.loop.conftest import make_loop
from tests.loop.doubles import OraclePredictor

FULL = 65535
SETTINGS = GateSettings()


def answer(defocus_um, confidence, in_range):
    return Prediction(defocus_um, confidence, spread_um=0.0, patch_defocus_um=(defocus_um,),
                      in_range=in_range)


def textured(mean=20000.0, contrast=0.05, seed=0, shape=(256, 256)):
    """Shot-noise-like pixels over cell-sized (32 px) blobs of the given relative contrast."""
    rng = np.random.default_rng(seed)
    blobs = np.kron(rng.standard_normal((shape[0] // 32, shape[1] // 32)), np.ones((32, 32)))
    signal = mean * (1 + contrast * blobs)
    return np.clip(rng.poisson(signal), 0, FULL).astype(np.uint16)


def gates(image, *, exposure_start=10.0, settled_at=9.0, now=10.1):
    frame = Frame(image, exposure_start=exposure_start, exposure_s=0.005, sequence=1)
    return [r.gate for r in check_frame(frame, settled_at=settled_at, now=now, full_scale=FULL,
                                        settings=SETTINGS)]


def test_a_good_frame_passes():
    assert gates(textured()) == []


def test_dark_frame_is_rejected():
    assert gates(textured(mean=300.0)) == ["dark"]


def test_saturated_frame_is_rejected():
    image = textured(mean=20000.0)
    image[:40] = FULL  # 15 % of the rows clipped
    assert gates(image) == ["saturated"]


def test_empty_field_is_rejected_but_noise_alone_is_not_contrast():
    flat = textured(contrast=0.0)  # uniform light, shot noise only: no sample in view
    assert frame_stats(flat, FULL).contrast < SETTINGS.min_contrast
    assert gates(flat) == ["empty"]


def test_stale_frames_are_rejected_both_ways():
    # exposed before the drive settled (the image shows the sample mid-move)
    assert gates(textured(), exposure_start=8.5, settled_at=9.0) == ["stale"]
    # exposed after settling, but too long ago to describe the present
    assert gates(textured(), exposure_start=9.5, settled_at=9.0, now=11.0) == ["stale"]


@pytest.mark.parametrize(("prediction", "expected"), [
    (answer(3.0, 0.9, True), []),
    (answer(3.0, 0.2, True), ["confidence"]),
    (answer(3.0, 0.4, True), []),  # the threshold itself is trusted
    (answer(45.0, 0.9, False), ["range"]),
    (answer(45.0, 0.1, False), ["confidence", "range"]),
    (answer(float("nan"), 0.9, True), ["invalid"]),
    (answer(1.0, float("inf"), True), ["invalid"]),
])
def test_prediction_gates(prediction, expected):
    assert [r.gate for r in check_prediction(prediction, min_confidence=0.4)] == expected


@pytest.mark.parametrize(("unfamiliarity", "limit", "expected"), [
    (0.8, 2.0, []),
    (2.0, 2.0, []),  # the limit itself passes
    (2.5, 2.0, ["unfamiliar"]),
    (float("nan"), 2.0, ["unfamiliar"]),  # a score that cannot be read is not familiar
    (9.0, None, []),  # a bundle without a calibrated limit does not judge it
])
def test_frames_unlike_the_training_data_are_rejected(unfamiliarity, limit, expected):
    prediction = Prediction(3.0, 0.9, 0.1, (3.0,), True, unfamiliarity=unfamiliarity,
                            max_unfamiliarity=limit)
    rejections = check_prediction(prediction, min_confidence=0.4)
    assert [r.gate for r in rejections] == expected
    assert all("calibrate" in r.reason for r in rejections)  # says what to do about it


def test_rejections_say_what_to_check():
    (dark,) = check_frame(Frame(textured(mean=100.0), 10.0, 0.005, 1), settled_at=9.0, now=10.0,
                          full_scale=FULL, settings=SETTINGS)
    assert "LED" in dark.reason


def test_the_loop_applies_the_models_own_threshold(rig):
    strict = OraclePredictor(rig.scope, confidence=0.9, min_confidence=0.95)
    loop = make_loop(rig, strict)
    loop.start_lock()
    assert loop.lock_step().rejected == "confidence"
    strict.min_confidence = 0.85
    assert loop.lock_step().rejected == ""
