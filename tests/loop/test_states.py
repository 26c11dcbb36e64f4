"""The loop on the in-process virtual microscope: every state transition, the limits, the offset,
focus now, and safe stops on device faults. The model is the truth-reading stand-in
(tests/loop/doubles.py) so each expectation is exact."""

import itertools

import pytest

from controller.loop import LoopState
from controller.runlog import RunLog, StepRecord, read_run
from tests.loop.conftest import make_loop, model_alone, run_lock
from tests.loop.doubles import OraclePredictor


def step_until(loop, state, limit=20):
    for _ in range(limit):
        record = loop.lock_step()
        if loop.state is state:
            return record
    raise AssertionError(f"never reached {state}; stuck in {loop.state}: {loop.reason}")


def locked_loop(rig, **lock):
    loop = make_loop(rig, **lock)
    loop.start_lock()
    step_until(loop, LoopState.LOCKED)
    return loop


def test_focusing_becomes_locked_after_k_in_tolerance_readings(rig):
    records: list[StepRecord] = []
    loop = make_loop(rig, records=records)
    report = run_lock(loop, max_steps=12)
    states = [r.state for r in records]
    first_locked = states.index("locked")
    in_tolerance = [r.error_um is not None and abs(r.error_um) <= 0.5 for r in records]
    assert states[:first_locked] == ["focusing"] * first_locked
    assert in_tolerance[first_locked - 2:first_locked + 1] == [True, True, True]
    assert not in_tolerance[first_locked - 3]  # locked exactly at the third in a row
    assert report.counts.locked_steps == 12 - first_locked
    assert abs(rig.scope.defocus_um()) <= 0.5
    assert loop.state is LoopState.IDLE and rig.illuminator.pattern is None  # LEDs off after


def test_rejected_reading_holds_then_relocks_without_moving(rig):
    loop = locked_loop(rig)
    z = rig.drive.position_um()
    rig.scope.empty_field = True
    for _ in range(3):
        record = loop.lock_step()
        assert (record.state, record.rejected, record.move_um) == ("holding", "empty", 0.0)
    rig.scope.empty_field = False
    assert loop.lock_step().state == "locked"
    assert rig.drive.position_um() == pytest.approx(z, abs=0.15)


def test_repeated_rejections_mean_lost_then_recovery_on_trusted_frames(rig):
    loop = locked_loop(rig)
    moves = rig.drive.moves
    rig.scope.empty_field = True
    states = [loop.lock_step().state for _ in range(8)]
    assert states == ["holding"] * 4 + ["lost"] * 4
    assert "5 consecutive untrusted readings" in loop.reason and "empty field" in loop.reason
    assert rig.drive.moves == moves  # never hunts
    rig.scope.focal_plane.knock(3.0)  # the world moved while nothing could be seen
    rig.scope.empty_field = False
    assert loop.lock_step().state == "focusing"
    assert rig.drive.moves == moves + 1
    step_until(loop, LoopState.LOCKED)


def test_lost_ends_the_run_without_recovery(rig):
    rig.scope.empty_field = True
    report = run_lock(make_loop(rig, recover_from_lost=False), max_steps=50)
    assert report.counts.steps == 5 and report.final_state is LoopState.LOST and not report.ok
    assert report.counts.rejected == {"empty": 5}
    assert rig.drive.moves == 0


def test_knock_drops_to_focusing_and_relocks(rig):
    loop = locked_loop(rig)
    rig.scope.focal_plane.knock(5.0)
    record = loop.lock_step()
    assert record.state == "focusing"
    assert record.move_um == pytest.approx(0.9 * 5.0, abs=0.2)  # capture gain: a large error
    step_until(loop, LoopState.LOCKED, limit=8)
    assert abs(rig.scope.defocus_um()) <= 0.5


@pytest.mark.parametrize("bad", ["dark", "saturated", "empty", "stale", "confidence", "range"])
def test_each_gate_vetoes_the_move(rig, bad):
    predictor = OraclePredictor(rig.scope)
    loop = make_loop(rig, predictor)
    loop.start_lock()
    loop.lock_step()  # one trusted step (it moves: 8 µm out)
    if bad == "dark":
        rig.scope.light_scale = 0.0
    elif bad == "saturated":
        rig.scope.light_scale = 40.0
    elif bad == "empty":
        rig.scope.empty_field = True
    elif bad == "stale":
        rig.camera.replays_old_frames = True  # hands out the frame taken before the move
    elif bad == "confidence":
        predictor.confidence = 0.2
    else:
        predictor.trained_range_um = 0.3
    z = rig.drive.position_um()
    record = loop.lock_step()
    assert record.rejected == bad
    assert record.move_um == 0.0 and rig.drive.position_um() == z
    assert record.state == "focusing"


def test_max_step_clips_large_corrections(make_rig):
    rig = make_rig(start_z_um=25.0)
    loop = make_loop(rig, max_step_um=10.0)
    loop.start_lock()
    record = loop.lock_step()
    assert (record.move_um, record.limited) == (-10.0, "max_step")


def test_travel_window_stops_at_its_edge_and_then_gives_up(rig):
    loop = make_loop(rig, travel_window_um=10.0)  # start 8 µm: the window is [3, 13] µm
    loop.start_lock()
    records = [loop.lock_step() for _ in range(7)]
    assert records[0].limited == "travel_window"
    assert rig.drive.position_um() == pytest.approx(3.0)
    assert [r.rejected for r in records[1:6]] == ["window"] * 5
    assert loop.state is LoopState.LOST and "travel window" in loop.reason


def test_offset_holds_focus_plus_offset(rig):
    loop = make_loop(rig, offset_um=2.0)
    loop.start_lock()
    step_until(loop, LoopState.LOCKED)
    for _ in range(4):
        loop.lock_step()
    # z - z_focus = offset: the sample sits 2 µm below the focal plane
    assert rig.drive.mechanism_um() - rig.scope.focal_plane.z_um() == pytest.approx(2.0, abs=0.5)
    assert loop.state is LoopState.LOCKED


def test_camera_timeout_mid_lock_is_a_safe_stop(rig):
    loop = make_loop(rig)
    loop.start_lock()
    step_until(loop, LoopState.LOCKED)
    moves = rig.drive.moves
    rig.camera.dead = True
    record = loop.lock_step()
    assert record.state == "fault" and loop.state is LoopState.FAULT
    assert "CameraTimeout" in loop.reason and "safe stop" in loop.reason
    assert rig.illuminator.pattern is None  # LEDs off
    assert rig.drive.moves == moves


def test_a_fault_ends_the_run_and_stays_a_fault(rig):
    rig.camera.dead = True
    report = run_lock(make_loop(rig), max_steps=10)
    assert report.counts.steps == 1 and report.final_state is LoopState.FAULT and not report.ok
    assert "no frame within" in report.reason


def test_drive_fault_mid_lock_is_a_safe_stop(rig):
    loop = locked_loop(rig)
    rig.drive.refuses_moves = True
    rig.scope.focal_plane.knock(4.0)
    record = loop.lock_step()
    assert record.state == "fault" and record.move_um == 0.0
    assert "DriveFault" in loop.reason
    assert rig.illuminator.pattern is None


def test_focus_now_gets_within_tolerance(make_rig):
    rig = make_rig(start_z_um=-27.0)
    report = make_loop(rig).focus_now(model_alone())
    assert report.success and report.state is LoopState.IDLE
    assert report.moves <= 2
    assert abs(rig.scope.defocus_um()) <= 0.5
    assert rig.illuminator.pattern is None


def test_focus_now_reports_failure_after_max_steps(rig):
    report = make_loop(rig).focus_now(model_alone(max_steps=2, gain=0.3))
    assert not report.success and report.moves == 2
    assert "after 2 moves" in report.reason


def test_focus_now_gives_up_on_untrusted_frames(rig):
    rig.scope.light_scale = 0.0
    report = make_loop(rig).focus_now(model_alone())
    assert not report.success and report.state is LoopState.LOST and report.moves == 0
    assert "too dark" in report.reason


def test_focus_now_asked_to_stop_before_it_starts_neither_reads_nor_moves(rig):
    records: list[StepRecord] = []
    report = make_loop(rig, records=records).focus_now(model_alone(), lambda: True)
    assert (report.success, report.state, report.reason) == (False, LoopState.IDLE,
                                                             "stopped by request")
    assert (report.moves, report.steps, records, rig.drive.moves) == (0, 0, [], 0)
    assert rig.illuminator.pattern is None


def test_focus_now_stops_between_moves_when_asked(rig):
    records: list[StepRecord] = []
    loop = make_loop(rig, records=records)
    report = loop.focus_now(model_alone(gain=0.3), should_stop=lambda: rig.drive.moves >= 2)
    assert report.state is LoopState.IDLE and report.reason == "stopped by request"
    assert report.moves == rig.drive.moves == 2 and not report.success
    assert report.steps == len(records) == 2  # asked before the third reading: not taken
    assert rig.illuminator.pattern is None


def test_every_step_is_logged(rig, tmp_path):
    with RunLog(tmp_path / "run.jsonl", tmp_path / "run.csv") as log:
        loop = make_loop(rig)
        loop.record_sink = log.write
        run_lock(loop, max_steps=6)
    rows = read_run(tmp_path / "run.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["z_um"] == pytest.approx(8.0) and rows[0]["move_um"] < 0
    assert rows[1]["t"] - rows[0]["t"] == pytest.approx(0.5)  # 2 Hz in simulated time
    assert len((tmp_path / "run.csv").read_text().splitlines()) == 7


def test_holding_goes_to_focusing_when_focus_moved_meanwhile(rig):
    loop = locked_loop(rig)
    rig.scope.light_scale = 0.0
    assert loop.lock_step().state == "holding"
    rig.scope.focal_plane.knock(-2.5)
    rig.scope.light_scale = 1.0
    record = loop.lock_step()
    assert record.state == "focusing" and record.move_um < -1.0


def test_a_late_step_is_followed_at_once_without_a_burst_to_catch_up(make_rig):
    rig = make_rig(settle_s=1.2)  # each move settles for longer than two 0.5 s periods
    records: list[StepRecord] = []
    run_lock(make_loop(rig, records=records), max_steps=8)
    starts = [r.t for r in records]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert max(gaps) > 1.0  # steps waited for the drive to settle: they ran late
    assert min(gaps) == pytest.approx(0.5)  # but never closer than the 2 Hz rate
