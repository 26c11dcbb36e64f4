"""Focus now finishing on the sharpness peak of the incoherent pattern (controller/
sharpness_finish.py): on the virtual microscope, whose half-annulus frames are rendered like
every other, with the truth-reading model biased as a model is on a sample it never saw
(tests/loop/doubles.py). The focal plane sits at z = 0."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.config import Config, ConfigError, FocusSettings, SimSettings
from controller.move_guard import MoveGuard
from controller.optics import preset
from controller.prediction import Prediction
from controller.runlog import StepRecord
from controller.sharpness_finish import (
    MIN_RISE,
    Landing,
    SharpnessMeter,
    bias_of,
    finish_stops,
    handover_move,
    sharpness_peak,
    step_beyond,
)
from controller.sim.rigs import virtual_rig
from tests.loop.conftest import FRAME, make_loop, model_alone
from tests.loop.doubles import OraclePredictor, RefusesNearFocus

FINISH = FocusSettings(sharpness_finish_um=1.5, sharpness_step_um=1.5)
BIAS = 1.0  # the model reads focus 1 µm below where it is


def test_a_biased_model_ends_on_the_sharpness_peak(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=BIAS), records=records)
    report = loop.focus_now(FINISH)
    assert report.success and report.moves == 4  # the model's move, then the finish's three
    assert abs(rig.scope.defocus_um()) <= 0.3
    assert report.reason.startswith("focused on the sharpness peak")
    finishing = [r for r in records if r.state == "finishing"]
    measured = [r for r in finishing if r.sharpness is not None]
    assert len(measured) == 3 and all(r.defocus_um is None for r in measured)
    first = finishing[0]
    assert first.z_um is not None and first.error_um is not None
    model_focus = first.z_um + first.error_um
    assert model_focus == pytest.approx(BIAS, abs=0.05)  # defocus = z_focus - z
    assert all(r.z_um is not None and abs(r.z_um - model_focus) <= 1.5 + 0.05 for r in measured)
    assert records[-1].state == "idle" and rig.illuminator.pattern is None  # LEDs off


def test_where_the_model_was_right_the_finish_ends_at_its_focus_in_two_moves(make_rig):
    # off the model's focus by more than half a step, on a field whose sharpness peaks 0.12 µm
    # from focus (a 128² field holds few cells: seed 0's peaks 0.28 µm away, seed 1's nearer)
    rig = make_rig(start_z_um=1.0, seed=1)
    records: list[StepRecord] = []
    report = make_loop(rig, records=records).focus_now(FINISH)
    measured = [r.z_um for r in records if r.sharpness is not None]
    assert measured == pytest.approx([1.0, -1.5, 0.0], abs=0.05)  # the centre last
    assert report.reason.startswith("focused on the sharpness peak, -0.12 µm")
    assert report.success and report.moves == 2 and rig.drive.moves == 2  # no third move
    assert abs(rig.scope.defocus_um()) <= 0.05


def test_a_long_correction_stops_short_so_that_a_right_model_finishes_in_two_moves(make_rig):
    rig = make_rig(start_z_um=8.0, seed=1)  # the field of the test above
    records: list[StepRecord] = []
    report = make_loop(rig, records=records).focus_now(FINISH)
    correction = records[0]
    assert correction.move_um == pytest.approx(-8.0 + 0.75 * 1.5, abs=0.01)
    assert "1.12 µm short of the model's focus, to finish there" in correction.reason
    measured = [r.z_um for r in records if r.sharpness is not None]
    assert measured == pytest.approx([1.125, -1.5, 0.0], abs=0.05)
    assert report.success and report.moves == 3 and abs(rig.scope.defocus_um()) <= 0.05


def test_without_the_finish_the_same_model_ends_off_focus(make_rig):
    rig = make_rig(start_z_um=8.0)
    report = make_loop(rig, OraclePredictor(rig.scope, bias_um=BIAS)).focus_now(model_alone())
    assert report.success and abs(rig.scope.defocus_um()) > 0.5


def test_no_finishing_move_worsens_the_focus_by_more_than_a_probe(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=-BIAS), records=records)
    assert loop.focus_now(FINISH).success
    moves = [r for r in records if r.state == "finishing" and r.move_um]
    for record in moves:
        assert record.z_um is not None
        before = abs(record.z_um)
        after = abs(record.z_um + record.move_um)
        assert after - before <= FINISH.probe_um


def test_an_undecided_sign_near_focus_is_bracketed_around_the_drive_not_probed(make_rig):
    rig = make_rig(start_z_um=1.0)  # the model knows 1 µm, not which way
    records: list[StepRecord] = []
    loop = make_loop(rig, OraclePredictor(rig.scope, sign_blind="wrong"), records=records)
    report = loop.focus_now(FINISH)
    assert report.success and report.moves == 3
    assert not any(r.probe_um for r in records) and "probing" not in {r.state for r in records}
    assert abs(rig.scope.defocus_um()) <= 0.3


def test_a_stop_request_ends_the_finish_between_two_moves(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=BIAS), records=records)

    def after_the_first_finishing_move() -> bool:
        return sum(r.state == "finishing" for r in records) >= 2  # its start, one measurement

    report = loop.focus_now(FINISH, after_the_first_finishing_move)
    assert (report.success, report.state.value) == (False, "idle")
    assert (report.reason, report.moves) == ("stopped by request", 2)
    assert rig.drive.moves == 2 and rig.illuminator.pattern is None


def test_a_reading_refused_where_the_model_put_focus_is_finished_on_the_sharpness(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    loop = make_loop(rig, RefusesNearFocus(rig.scope, bias_um=BIAS), records=records)
    report = loop.focus_now(FINISH)
    assert report.success and abs(rig.scope.defocus_um()) <= 0.3
    start = next(r for r in records if r.state == "finishing")
    assert start.rejected == "confidence" and start.move_um == 0.0
    assert "the model's reading is refused (low confidence" in start.reason
    assert report.moves == 4  # the trusted correction, then the finish's three


def test_without_the_finish_such_a_model_ends_lost_near_focus(make_rig):
    rig = make_rig(start_z_um=8.0)
    loop = make_loop(rig, RefusesNearFocus(rig.scope, bias_um=BIAS))
    report = loop.focus_now(model_alone())
    assert (report.success, report.state.value) == (False, "lost")


class DistanceBlindNearFocus(OraclePredictor):
    """A model whose sign-free distance misreads the field near focus: within 3 µm it reads
    3.2 µm and cannot tell the side (a calibrated tissue bundle read 3.2 µm at 0.6 µm)."""

    def predict(self, image: np.ndarray) -> Prediction:
        prediction = super().predict(image)
        if abs(self.scope.last_defocus_um) < 3.0:
            return dataclasses.replace(prediction, defocus_um=3.2, distance_um=3.2,
                                       sign_ambiguous=True, patch_defocus_um=(3.2,))
        return prediction


def test_an_undecided_reading_where_a_correction_put_focus_is_finished_not_probed(make_rig):
    rig = make_rig(start_z_um=8.0, seed=1)
    records: list[StepRecord] = []
    report = make_loop(rig, DistanceBlindNearFocus(rig.scope), records=records).focus_now(FINISH)
    start = next(r for r in records if r.state == "finishing")
    assert "reads 3.20 µm on a side it cannot tell where it put focus" in start.reason
    assert not any(r.probe_um for r in records)
    assert report.success and abs(rig.scope.defocus_um()) <= 0.3


def test_a_refusal_after_a_probe_is_not_finished():
    # 1 µm below the travel's end, the probe goes down, towards focus, and lands 1 µm from it,
    # where the model refuses to read: a probe is not where the model put focus
    rig = virtual_rig(preset("paper"), dataclasses.replace(SimSettings(), start_z_um=4.0),
                      frame_shape=FRAME, travel_um=(-500.0, 5.0))
    assert rig.scope is not None
    records: list[StepRecord] = []
    loop = make_loop(rig, RefusesNearFocus(rig.scope, sign_blind="wrong"), records=records)
    report = loop.focus_now(FINISH)
    assert records[0].state == "probing" and records[0].move_um == -3.0
    assert "finishing" not in {r.state for r in records} and report.state.value == "lost"


def test_with_fewer_than_three_moves_left_the_model_finishes_alone(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    report = make_loop(rig, OraclePredictor(rig.scope), records=records).focus_now(
        dataclasses.replace(FINISH, max_steps=3))
    assert report.success and report.moves == 1
    assert "finishing" not in {r.state for r in records}


class FlatMeter(SharpnessMeter):
    """A field whose sharpness does not change with focus (a thick sample's flat curve)."""

    def measure(self, image: np.ndarray) -> float:
        return 1.0


def test_a_flat_sharpness_keeps_the_models_focus(make_rig):
    rig = make_rig(start_z_um=8.0)
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=BIAS))
    loop.sharpness = FlatMeter(rig.preset.ground_truth, rig.preset.optics)
    report = loop.focus_now(FINISH)
    # the correction (short of the model's focus), the bracket's far end, the model's focus
    assert report.success and report.moves == 3  # the model reads itself in focus there
    assert "kept the model's focus: the sharpness rises only 0.000" in report.reason
    assert rig.scope.defocus_um() == pytest.approx(-BIAS, abs=0.05)


def test_a_refused_sharpness_frame_ends_the_finish_at_the_models_focus(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=BIAS), records=records)
    loop.sharpness = SharpnessMeter(dataclasses.replace(rig.preset.ground_truth, leds=tuple(
        dataclasses.replace(led, brightness=0.0) for led in rig.preset.ground_truth.leds)),
        rig.preset.optics)  # its LEDs give no light: every frame is dark
    report = loop.focus_now(FINISH)
    assert report.success and report.moves == 2  # the correction, then to the model's focus
    assert "kept the model's focus: a sharpness frame was refused (too dark" in report.reason
    assert [r.rejected for r in records if r.state == "finishing"][-1] == "dark"
    assert rig.scope.defocus_um() == pytest.approx(-BIAS, abs=0.05)


def test_the_finish_and_its_bracket_fit_inside_a_probe():
    Config(focus=FINISH)
    with pytest.raises(ConfigError, match=r"focus.sharpness_step_um: .* at most focus.probe_um"):
        Config(focus=dataclasses.replace(FINISH, sharpness_step_um=2.0))


# -- the peak of three measurements ------------------------------------------------------------

@given(peak=st.floats(-1.4, 1.4), here=st.floats(-1.5, 1.5), height=st.floats(0.05, 1.0))
def test_three_points_on_a_parabola_find_its_peak(peak, here, height):
    stops = finish_stops(here, 0.0, 1.5)
    z = [here, *stops]
    curve = [5.0 - height * (x - peak) ** 2 for x in z]
    if max(curve) - min(curve) < MIN_RISE:
        return
    found = sharpness_peak(z, curve, 0.0, 1.5)
    assert found.landing is Landing.PEAK and found.z_um == pytest.approx(peak, abs=1e-6)


def test_a_peak_beyond_the_bracket_stops_at_its_end():
    z = [-1.5, 0.0, 1.5]
    beyond = sharpness_peak(z, [-(x - 4.0) ** 2 for x in z], 0.0, 1.5)
    assert (beyond.landing, beyond.z_um) == (Landing.SEARCHED, 1.5)  # not focus: the search's end
    assert "peaks beyond the bracket (+4.00 µm" in beyond.reason


def test_no_rise_keeps_the_models_focus_and_no_peak_the_sharpest_point():
    z = [-1.5, 0.0, 1.5]
    assert sharpness_peak(z, [1.0, 1.0 + MIN_RISE / 2, 1.0], 0.2, 1.5).z_um == 0.2
    rising = sharpness_peak(z, [1.0, 1.5, 3.0], 0.2, 1.5)  # a tail: the curve flattens away
    assert (rising.landing, rising.z_um) == (Landing.SEARCHED, 1.5)
    assert "sharpest of the three" in rising.reason


def test_the_stops_spread_over_the_bracket():
    assert finish_stops(0.0, 0.0, 1.5) == (-1.5, 1.5)
    assert finish_stops(0.2, 0.0, 1.5) == (1.5, -1.5)  # the nearer end first
    assert finish_stops(1.4, 0.0, 1.5) == (-1.5, 0.0)  # off-centre: the far end, then the centre
    assert finish_stops(-0.75, 0.0, 1.5) == (1.5, 0.0)
    with pytest.raises(ValueError, match="must lie apart"):
        sharpness_peak([0.0, 0.1, 1.5], [1.0, 2.0, 1.0], 0.0, 1.5)


# -- the rules the loop asks ---------------------------------------------------------------------

def test_a_bias_is_the_median_of_agreeing_corrections_no_larger_than_the_finish_moves():
    assert bias_of([0.6, 0.8, 0.7], FINISH) == (0.7, "the model reads +0.70 µm here: the lock "
                                                     "holds that reading")
    assert bias_of([0.6, 0.8], FINISH)[0] == pytest.approx(0.7)
    assert bias_of([0.6], FINISH)[0] is None  # one reading is no agreement
    assert bias_of([0.1, 0.7], FINISH)[0] is None  # 0.6 µm apart: beyond the tolerance
    assert bias_of([3.1, 3.2, 3.2], FINISH)[0] is None  # beyond the 3 µm the finish moves


def test_the_handover_stops_three_quarters_of_a_step_short_of_the_models_focus():
    guard = MoveGuard.around(0.0, 80.0, (-1000.0, 1000.0), max_step_um=40.0, name="search")
    assert handover_move(0.0, 8.0, FINISH, guard) == pytest.approx(8.0 - 1.125)
    assert handover_move(0.0, -8.0, FINISH, guard) == pytest.approx(-8.0 + 1.125)
    assert handover_move(0.0, 1.4, FINISH, guard) is None  # near enough to finish from here
    assert handover_move(0.0, 45.0, FINISH, guard) is None  # cut by the largest step


# -- a peak beyond the bracket -------------------------------------------------------------------

FAR_BIAS = 2.2  # the model reads focus farther off than the bracket's half width


def test_a_peak_beyond_the_bracket_is_found_a_step_further_where_two_moves_are_left(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=FAR_BIAS), records=records)
    report = loop.focus_now(FocusSettings())  # seven moves: room for the step further
    finishing = [r for r in records if r.state == "finishing" and r.sharpness is not None]
    assert len(finishing) == 4 and "measuring a step further" in finishing[2].reason
    assert all(abs(r.move_um) <= FINISH.probe_um + 1e-9 for r in finishing)
    assert report.success and abs(rig.scope.defocus_um()) <= 0.3
    assert "focused on the sharpness peak" in report.reason and "the bracket's end" in \
        report.reason


def test_without_two_moves_left_a_peak_beyond_the_bracket_ends_at_its_end(make_rig):
    rig = make_rig(start_z_um=8.0)
    loop = make_loop(rig, OraclePredictor(rig.scope, bias_um=FAR_BIAS))
    report = loop.focus_now(FocusSettings(max_steps=4))  # the correction and the finish's three
    assert not report.success and "the sharpness peaks beyond the bracket" in report.reason
    assert "moved to its end" in report.reason


def test_the_step_further_goes_past_the_sharpest_end_away_from_the_others():
    # the measurement nearest the sharpest, the sharpest (their indices), and the stop
    assert step_beyond([1.0, -1.5, 0.0], [0.2, 0.5, 0.3], 1.5) == (2, 1, -3.0)
    assert step_beyond([-1.5, 1.5, 0.0], [0.1, 0.6, 0.3], 1.5) == (2, 1, 3.0)
