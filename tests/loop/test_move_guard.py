"""The one guard for every move: its rules alone (and as a property over any numbers), then the
windows it gives the lock and focus now on the virtual microscope with a model that misreads
the sample, and the issue's measured case with the bundled model itself."""

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import Config, LockSettings, SimSettings
from controller.loop import SEARCH_WINDOW, TRAVEL_WINDOW, FocusLoop, LoopState
from controller.model import DEFAULT_BUNDLE, FocusModel
from controller.move_guard import MAX_STEP, MoveGuard, MoveRefused
from controller.optics import preset
from controller.runlog import StepRecord
from controller.sensing import NetworkSensor
from controller.sim.rigs import virtual_rig
from tests.loop.conftest import make_loop, model_alone, run_lock
from tests.loop.doubles import OraclePredictor

START_Z_UM = 8.0  # the virtual microscope's start: 8 µm from focus (at 0)
GUARD = MoveGuard((-50.0, 50.0), 10.0, TRAVEL_WINDOW)


# -- the guard alone --------------------------------------------------------------------------

def test_around_centres_the_window_inside_the_drive_travel():
    assert MoveGuard.around(8.0, 80.0, (-500.0, 500.0), max_step_um=40.0,
                            name=SEARCH_WINDOW).window == (-32.0, 48.0)
    assert MoveGuard.around(480.0, 80.0, (-500.0, 500.0), max_step_um=40.0,
                            name=SEARCH_WINDOW).window == (440.0, 500.0)


@pytest.mark.parametrize(("z", "move", "expected"), [
    (0.0, 4.0, (4.0, "")),
    (0.0, -25.0, (-10.0, MAX_STEP)),
    (45.0, 8.0, (5.0, TRAVEL_WINDOW)),
    (50.0, 3.0, (0.0, TRAVEL_WINDOW)),
    (53.0, 2.0, (0.0, TRAVEL_WINDOW)),  # outside (a drive that rounds): never further out
    (53.0, -5.0, (-5.0, "")),  # ... but back towards the window
])
def test_clip(z, move, expected):
    assert GUARD.clip(z, move) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_before_any_move(bad):
    with pytest.raises(MoveRefused, match="not a finite number"):
        GUARD.clip(0.0, bad)
    with pytest.raises(MoveRefused, match="not a finite number"):
        GUARD.clip(bad, 1.0)
    with pytest.raises(MoveRefused, match="not a finite number"):
        GUARD.check_target(bad)
    with pytest.raises(MoveRefused, match="not a finite number"):
        MoveGuard.around(bad, 80.0, (-500.0, 500.0), max_step_um=40.0, name=SEARCH_WINDOW)


def test_absolute_targets_outside_the_window_are_refused_naming_it():
    guard = MoveGuard.for_drive((-500.0, 500.0))
    assert guard.check_target(-500.0) == -500.0
    with pytest.raises(MoveRefused, match=r"z_um: must be within the drive travel "
                                          r"\[-500.0, 500.0\] µm, got 1e\+09"):
        guard.check_target(1e9)


@pytest.mark.parametrize(("window", "max_step", "message"), [
    ((1.0, -1.0), 1.0, "not a window"),
    ((-math.inf, 1.0), 1.0, "not a window"),
    ((0.0, 1.0), 0.0, "largest step must be > 0"),
    ((0.0, 1.0), math.nan, "largest step must be > 0"),
])
def test_a_guard_that_could_not_guard_is_refused(window, max_step, message):
    with pytest.raises(MoveRefused, match=message):
        MoveGuard(window, max_step)


def test_a_drive_reporting_a_position_outside_its_travel_gets_no_window():
    with pytest.raises(MoveRefused, match="outside its travel"):
        MoveGuard.around(600.0, 100.0, (-500.0, 500.0), max_step_um=10.0, name=TRAVEL_WINDOW)


NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, 1e-300, -1e-300, 1e300, -1e300, 50.0, -50.0])


@settings(max_examples=300)
@given(low=st.floats(-1e3, 1e3), width=st.floats(0, 2e3), step=st.floats(1e-6, 1e3),
       z=NUMBERS, move=NUMBERS)
def test_property_a_clipped_move_never_leaves_the_window_nor_exceeds_a_step(
        low, width, step, z, move):
    high = low + width
    guard = MoveGuard((low, high), step, TRAVEL_WINDOW)
    try:
        clipped, limited = guard.clip(z, move)
    except MoveRefused:
        assert not (math.isfinite(z) and math.isfinite(move))
        return
    assert limited in ("", MAX_STEP, TRAVEL_WINDOW)
    rounding = 1e-9 * max(1.0, abs(z))
    assert abs(clipped) <= step + rounding
    centre = (low + high) / 2
    if low <= z <= high:
        assert low - rounding <= z + clipped <= high + rounding
    else:  # from outside (a drive that rounds, or was moved by hand): never further out
        assert abs(z + clipped - centre) <= abs(z - centre) + rounding


# -- the windows on the virtual microscope, a model that misreads the sample ------------------

def misread(rig):
    """The truth with the wrong sign, confidently and however far: every correction points
    away from focus and passes every gate."""
    return OraclePredictor(rig.scope, scale=-1.0, trained_range_um=1e3)


def end_positions(records: list[StepRecord]) -> list[float]:
    """Where each step left the drive."""
    return [r.z_um + r.move_um for r in records if r.z_um is not None]


@pytest.mark.parametrize("offset_um", [0.0, 45.0])
def test_focus_now_on_a_misread_sample_never_leaves_its_search_window(rig, offset_um):
    records: list[StepRecord] = []
    report = make_loop(rig, misread(rig), records=records,
                       offset_um=offset_um).focus_now(model_alone())
    positions = end_positions(records)  # focus.search_window_um = 80: [-32, 48] µm
    assert min(positions) >= START_Z_UM - 40.0 and max(positions) == START_Z_UM + 40.0
    assert report.state is LoopState.LOST and not report.success  # frames that far are
    assert rig.illuminator.pattern is None  # too blurred to trust; LEDs off at the end


def test_focus_now_stops_at_its_search_window_edge_then_gives_up(rig):
    records: list[StepRecord] = []
    loop = make_loop(rig, misread(rig), records=records)
    report = loop.focus_now(model_alone(search_window_um=10.0))
    assert [(r.move_um, r.limited) for r in records[:2]] == [(5.0, SEARCH_WINDOW), (0.0, "")]
    assert [r.rejected for r in records[1:]] == ["window"] * 5
    assert report.state is LoopState.LOST and report.moves == 1
    assert "would leave the search window [3.0, 13.0] µm" in report.reason
    assert rig.drive.position_um() == pytest.approx(START_Z_UM + 5.0)


def test_without_its_window_focus_now_would_have_run_away(rig):
    """The guard is what stops it: with a window as wide as the drive's travel the same
    misread sample drives it twice as far."""
    records: list[StepRecord] = []
    make_loop(rig, misread(rig), records=records).focus_now(
        model_alone(search_window_um=1000.0))
    assert max(end_positions(records)) == pytest.approx(START_Z_UM + 56.0)  # 8 → 16 → 32 → 64


@pytest.mark.parametrize(("window_um", "offset_um", "reason"), [
    (100.0, 45.0, "saturated"), (20.0, 9.0, "would leave the travel window")])
def test_a_lock_with_a_large_offset_never_leaves_its_travel_window(rig, window_um, offset_um,
                                                                    reason):
    """(An offset beyond half the window the config refuses itself: tests/loop/test_config.)"""
    records: list[StepRecord] = []
    report = run_lock(make_loop(rig, misread(rig), records=records, offset_um=offset_um,
                                travel_window_um=window_um, recover_from_lost=False),
                      max_steps=40)
    positions = end_positions(records)
    assert max(positions) <= START_Z_UM + window_um / 2
    assert min(positions) >= START_Z_UM - window_um / 2
    assert report.final_state is LoopState.LOST and reason in report.reason


# -- the measured case: a dense sample the bundled model misreads ---------------------

@pytest.mark.slow
@pytest.mark.parametrize("offset_um", [0.0, 45.0])
def test_bundled_model_on_tissue_it_misreads_stays_in_the_windows(offset_um):
    """Tissue (seed 0) started 8 µm from focus: the bundled model reads it the wrong way.
    Before the search window, focus now with a 45 µm offset travelled 93 µm from its start."""
    rig = virtual_rig(preset("paper"), SimSettings(start_z_um=START_Z_UM, seed=0,
                                                   sample="tissue"), frame_shape=(1024, 1024))
    model = FocusModel.load(DEFAULT_BUNDLE, optics=rig.preset.optics,
                            pattern=rig.preset.autofocus)
    config = dataclasses.replace(Config(), lock=dataclasses.replace(LockSettings(),
                                                                    offset_um=offset_um))
    records: list[StepRecord] = []
    loop = FocusLoop.for_rig(rig, NetworkSensor(model, rig.preset.autofocus), config,
                             record_sink=records.append)
    report = loop.focus_now(config.focus)
    assert not report.success
    assert all(abs(r.z_um + r.move_um - START_Z_UM) <= 40.0 for r in records
               if r.z_um is not None)
    assert abs(rig.drive.position_um() - START_Z_UM) <= 40.0
    if offset_um:
        start = rig.drive.position_um()
        lock_records: list[StepRecord] = []
        loop.record_sink = lock_records.append
        run_lock(loop, max_steps=30)
        assert all(abs(r.z_um + r.move_um - start) <= 50.0 for r in lock_records
                   if r.z_um is not None)
