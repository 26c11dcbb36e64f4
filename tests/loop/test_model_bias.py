"""The model's bias on a sample (controller/loop.py): focus now reads the model where it ended on
the sharpness peak, and the lock that follows holds that reading, so it keeps the plane the
sharpness found and not the one a biased model calls focus. On the virtual microscope, with the
truth-reading model biased as a model is on a sample it never saw (tests/loop/doubles.py); the
focal plane sits at z = 0."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from controller.config import FocusSettings
from controller.loop import FocusLoop, LoopState
from controller.prediction import Prediction
from controller.runlog import StepRecord
from controller.sharpness_finish import BIAS_READINGS
from controller.sim.twin import VirtualScope
from tests.loop.conftest import make_loop, model_alone, run_lock
from tests.loop.doubles import OraclePredictor, RefusesNearFocus

FINISH = FocusSettings(sharpness_finish_um=1.5, sharpness_step_um=1.5)
BIAS = 1.0  # the model reads focus 1 µm below where it is


def locked_error_um(loop: FocusLoop, scope: VirtualScope, steps: int) -> list[float]:
    """|z - z_focus| over the last half of a lock of ``steps`` steps on ``scope``."""
    errors: list[float] = []
    run_lock(loop, max_steps=steps,
             on_step=lambda record: errors.append(abs(scope.last_defocus_um)))
    return errors[steps // 2:]


def test_the_lock_after_focus_now_holds_the_sharpness_peak_not_the_models_focus(make_rig):
    rig = make_rig(start_z_um=8.0, seed=1)  # a field whose sharpness peaks 0.12 µm from focus
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=BIAS, noise_um=0.05))
    report = loop.focus_now(FINISH)
    # what the model reads where focus now ended (defocus = z_focus - z)
    landed = rig.scope.defocus_um()
    assert report.success and abs(landed) <= 0.3
    assert report.model_bias_um == pytest.approx(BIAS + landed, abs=0.15)
    assert loop.model_bias_um == report.model_bias_um
    assert "the lock holds that reading" in report.reason
    loop.start_lock()
    assert loop.reason.startswith(f"holding the model's reading {report.model_bias_um:+.2f} µm")
    loop.stop()
    assert max(locked_error_um(loop, rig.scope, 20)) <= 0.35

    # the same model locking without a focus now first holds its own, biased, focus
    alone = make_rig(start_z_um=8.0, seed=1)
    alone_loop = make_loop(alone, OraclePredictor(alone.scope, bias_um=BIAS, noise_um=0.05))
    errors = locked_error_um(alone_loop, alone.scope, 20)
    assert min(errors) >= 0.6


def test_the_bias_is_measured_by_three_readings_at_the_peak_that_move_nothing(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=BIAS), records=records)
    report = loop.focus_now(FINISH)
    # the last reading's record is the report's: it ends the run
    *readings, last = [r for r in records if r.reason == "reading the model at the sharpness "
                                                          "peak"] + [records[-1]]
    assert len(readings) + 1 == BIAS_READINGS and report.moves == 4  # no move for them
    assert all(r.move_um == 0.0 and r.state == "finishing" for r in readings)
    assert (last.state, last.move_um, last.reason) == ("idle", 0.0, report.reason)
    assert last.defocus_um is not None and last.step == report.steps == len(records)
    assert {r.z_um for r in [*readings, last]} == {report.z_um}  # where the finish ended
    # no offset: the corrections read are the readings
    corrections = [r.defocus_um for r in [*readings, last] if r.defocus_um is not None]
    assert len(corrections) == BIAS_READINGS
    assert report.model_bias_um == pytest.approx(np.median(corrections))
    assert report.error_um == pytest.approx(corrections[-1] - report.model_bias_um)
    assert last.error_um == pytest.approx(report.error_um)  # what the lock would correct
    assert rig.illuminator.pattern is None  # LEDs off at the end


def test_with_an_offset_the_lock_holds_the_offset_from_the_sharpness_peak(make_rig):
    rig = make_rig(start_z_um=8.0, seed=1)
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=BIAS), offset_um=1.0)
    report = loop.focus_now(FINISH)
    assert report.success
    assert report.model_bias_um == pytest.approx(BIAS + rig.scope.defocus_um() + 1.0, abs=0.05)
    # defocus = z_focus - z: the lock holds z = z_focus + 1 µm
    run_lock(loop, max_steps=10)
    assert rig.scope.defocus_um() == pytest.approx(-1.0, abs=0.3)


def test_each_focus_now_measures_the_bias_afresh(make_rig):
    rig = make_rig(start_z_um=8.0)
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=BIAS))
    assert loop.focus_now(FINISH).model_bias_um == pytest.approx(BIAS, abs=0.3)
    rig.drive.move_by(5.0)
    report = loop.focus_now(model_alone())  # the model alone: no peak, no bias
    assert report.success and report.model_bias_um == 0.0 and loop.model_bias_um == 0.0


class ScatteredAtFocus(OraclePredictor):
    """Reads the sample well away from focus, and scatters by ±1 µm within 0.8 µm of it."""

    def predict(self, image: np.ndarray) -> Prediction:
        prediction = super().predict(image)
        if abs(self.scope.last_defocus_um) < 0.8:
            value = prediction.defocus_um + (1.0 if self.calls % 2 else -1.0)
            return dataclasses.replace(prediction, defocus_um=value, patch_defocus_um=(value,))
        return prediction


class FarOffAtFocus(OraclePredictor):
    """Reads the sample 1 µm off away from focus, and 4 µm off within 0.8 µm of it: farther
    than the finish moves, so its reading there is not a bias to hold."""

    def predict(self, image: np.ndarray) -> Prediction:
        prediction = super().predict(image)
        if abs(self.scope.last_defocus_um) < 0.8:
            value = prediction.defocus_um + 3.0
            return dataclasses.replace(prediction, defocus_um=value, patch_defocus_um=(value,))
        return prediction


@pytest.mark.parametrize(("model", "why"), [
    (ScatteredAtFocus, "the model's readings at the peak spread 2.00 µm, more than the "
                       "tolerance: the lock holds the model's own focus"),
    (FarOffAtFocus, "µm at the peak, farther than the finish moves (3 µm): the lock holds "
                    "the model's own focus"),
])
def test_a_bias_the_readings_do_not_agree_on_or_too_large_is_not_held(make_rig, model, why):
    rig = make_rig(start_z_um=8.0)
    loop = make_loop(rig, model(rig.scope, bias_um=BIAS))
    report = loop.focus_now(FINISH)
    assert report.success and why in report.reason
    assert report.model_bias_um == 0.0 and loop.model_bias_um == 0.0


def test_refused_readings_at_the_peak_leave_the_bias_unknown(make_rig):
    rig = make_rig(start_z_um=8.0)
    loop = make_loop(rig, RefusesNearFocus(rig.scope, bias_um=BIAS))
    report = loop.focus_now(FINISH)
    assert report.success and report.model_bias_um == 0.0
    assert "the model's bias is unknown (0 of 3 readings at the peak trusted with a sign)" \
        in report.reason


def test_a_stop_request_while_reading_the_bias_keeps_the_focus_and_no_bias(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=BIAS), records=records)

    def at_the_first_bias_reading() -> bool:
        return any(r.reason == "reading the model at the sharpness peak" for r in records)

    report = loop.focus_now(FINISH, at_the_first_bias_reading)
    assert report.success and report.state is LoopState.IDLE
    assert "the model's bias was not measured: stopped by request" in report.reason
    assert report.model_bias_um == 0.0 and abs(rig.scope.defocus_um()) <= 0.3


def test_a_camera_that_dies_while_reading_the_bias_is_a_fault(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=BIAS), records=records)

    def kill_at_the_first_bias_reading() -> bool:
        if any(r.reason == "reading the model at the sharpness peak" for r in records):
            rig.camera.dead = True
        return False

    report = loop.focus_now(FINISH, kill_at_the_first_bias_reading)
    assert not report.success and report.state is LoopState.FAULT
    assert "CameraTimeout" in report.reason and rig.illuminator.pattern is None
    assert report.model_bias_um == 0.0
