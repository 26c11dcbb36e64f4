"""The sign is never guessed: the loop's probing state on the virtual microscope, with the
truth-reading model made sign-blind (tests/loop/doubles.py), and the rules that decide a sign
(controller/sign_probe.py). The focal plane sits at z = 0 unless a test moves it."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from controller.config import Config, ConfigError, FocusSettings, SimSettings
from controller.loop import LoopState
from controller.move_guard import MoveGuard
from controller.optics import preset
from controller.runlog import StepRecord
from controller.sign_probe import SignProbe, decide_side
from controller.sim.rigs import virtual_rig
from tests.loop.conftest import FRAME, make_loop, model_alone
from tests.loop.doubles import OraclePredictor

PROBE = 3.0  # focus.probe_um and lock.probe_um by default


def blind(rig, sign="wrong", **kwargs) -> OraclePredictor:
    return OraclePredictor(rig.scope, sign_blind=sign, **kwargs)


def rig_with_travel(start_z_um: float, travel_um: tuple[float, float]):
    settings = dataclasses.replace(SimSettings(), start_z_um=start_z_um)
    return virtual_rig(preset("paper"), settings, frame_shape=FRAME, travel_um=travel_um)


def true_distances(rig, records: list[StepRecord]) -> list[float]:
    """How far from focus each reading really was (the plane does not move here)."""
    return [abs(rig.scope.focal_plane.z_um() - r.z_um) for r in records]


def test_an_ambiguous_far_reading_probes_then_corrects_with_the_decided_sign(make_rig):
    rig = make_rig(start_z_um=8.0)  # the truth: -8 µm; the model says +8 µm, sign ambiguous
    records: list[StepRecord] = []
    report = make_loop(rig, blind(rig), records=records).focus_now(model_alone())
    probe, decided, done = records
    assert (done.state, done.move_um) == ("idle", 0.0)
    assert (probe.state, probe.sign_ambiguous, probe.distance_um) == ("probing", True, 8.0)
    assert probe.probe_um == probe.move_um == PROBE  # the way the wrong sign points: away
    assert (decided.state, decided.probed_sign) == ("focusing", -1)
    assert decided.error_um == pytest.approx(-11.0) and decided.move_um == pytest.approx(-11.0)
    assert decided.defocus_um == pytest.approx(11.0)  # the model's own sign, as read
    assert report.success and report.moves == 2 and abs(rig.scope.defocus_um()) <= 0.5


def test_a_probe_counts_as_a_move_of_focus_now(make_rig):
    rig = make_rig(start_z_um=8.0)
    report = make_loop(rig, blind(rig)).focus_now(model_alone(max_steps=1))
    assert (report.success, report.moves, rig.drive.moves) == (False, 1, 1)
    assert report.reason == "still -11.00 µm from focus after 1 moves (limit 1)"


def test_a_known_sign_and_a_distance_within_tolerance_are_not_probed(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    assert make_loop(rig, records=records).focus_now(model_alone()).moves == 1
    assert "probing" not in {r.state for r in records} and not any(r.probe_um for r in records)
    near = make_rig(start_z_um=0.3)
    report = make_loop(near, blind(near)).focus_now(model_alone())
    assert report.success and report.moves == 0 and near.drive.moves == 0


def test_at_the_windows_edge_it_probes_the_other_way():
    rig = rig_with_travel(8.0, (-500.0, 9.0))  # 1 µm above: no room for the guessed way
    records: list[StepRecord] = []
    report = make_loop(rig, blind(rig), records=records).focus_now(model_alone())
    assert records[0].probe_um == -PROBE and records[0].limited == ""
    assert report.success and report.moves == 2


def test_a_probe_is_cut_to_the_window_and_never_made_without_room_for_half_of_it(rig):
    records: list[StepRecord] = []
    loop = make_loop(rig, blind(rig), records=records, travel_window_um=4.0)  # z in [6, 10]
    loop.start_lock()
    first = loop.lock_step()
    assert (first.state, first.probe_um, first.limited) == ("probing", 2.0, "travel_window")
    narrow = make_loop(rig, blind(rig), travel_window_um=2.0)  # 1 µm either way: < half
    narrow.start_lock()
    z = rig.drive.position_um()
    steps = [narrow.lock_step() for _ in range(5)]
    assert [s.rejected for s in steps] == ["sign"] * 5 and rig.drive.position_um() == z
    assert narrow.state is LoopState.LOST and "no room for a probe" in narrow.reason


def test_the_largest_step_bounds_the_probe(make_rig):
    with pytest.raises(ConfigError, match=r"focus.probe_um: must be at most focus.max_step_um"):
        Config(focus=model_alone(max_step_um=2.0))
    # made past the config's rule, the guard still cuts it
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    make_loop(rig, blind(rig), records=records).focus_now(model_alone(max_step_um=2.0))
    assert (records[0].probe_um, records[0].limited) == (2.0, "max_step")
    assert all(abs(r.move_um) <= 2.0 for r in records)


@pytest.mark.parametrize("finish", [False, True], ids=["model alone", "finishing"])
@pytest.mark.parametrize("seed", range(12))
def test_focus_now_from_random_starts_ends_in_focus_never_worse_than_a_probe(
        make_rig, seed, finish):
    """The model alone in at most four moves; finishing on the sharpness (the default) in at
    most focus now's five."""
    rng = np.random.default_rng(seed)
    rig = make_rig(start_z_um=round(float(rng.uniform(-30.0, 30.0)), 1))
    # a model that reads a little beyond where focus now starts (30 µm and a probe)
    model = blind(rig, "wrong" if seed % 2 else "random", noise_um=0.15, seed=seed,
                  expected_error_um=0.6, trained_range_um=35.0)
    records: list[StepRecord] = []
    settings = FocusSettings() if finish else model_alone()
    report = make_loop(rig, model, records=records).focus_now(settings)
    assert report.success and report.moves <= (settings.max_steps if finish else 4)
    assert abs(rig.scope.defocus_um()) <= 0.5
    truth = [*true_distances(rig, records), abs(rig.scope.defocus_um())]
    worsened = [after - before for before, after in itertools.pairwise(truth)]
    assert max(worsened) <= PROBE + 1e-9
    # the sign is never guessed: probed, or the start was within the tolerance (or within
    # the finish's bracket, which holds focus on either side)
    unprobed_um = min(settings.sharpness_finish_um, settings.sharpness_step_um) if finish else 0.5
    assert any(r.state == "probing" for r in records) or abs(truth[0]) <= unprobed_um


def test_a_probe_whose_next_reading_is_rejected_makes_no_further_move(make_rig):
    rig = make_rig(start_z_um=8.0)

    def record(r: StepRecord) -> None:
        records.append(r)
        if r.state == "probing":
            rig.scope.empty_field = True  # the sample leaves the view during the probe

    records: list[StepRecord] = []
    loop = make_loop(rig, blind(rig))
    loop.record_sink = record
    report = loop.focus_now(model_alone())
    assert report.moves == rig.drive.moves == 1 and report.state is LoopState.LOST
    assert records[1].state == "focusing" and records[1].rejected == "empty"
    assert all(r.move_um == 0.0 and r.probed_sign == 0 for r in records[1:])


def test_a_probe_out_of_the_models_range_is_a_rejected_reading_not_a_guess(make_rig):
    rig = make_rig(start_z_um=28.0)  # the wrong sign sends the probe away: 31 µm, out of range
    report = make_loop(rig, blind(rig)).focus_now(model_alone())
    assert report.moves == 1 and report.state is LoopState.LOST and "trained range" in report.reason


def test_readings_that_fit_neither_sign_probe_once_more_then_count_as_rejected(rig):
    records: list[StepRecord] = []
    loop = make_loop(rig, blind(rig, expected_error_um=0.5), records=records)
    loop.start_lock()
    assert loop.lock_step().probe_um == PROBE  # at 8, candidates 0 and 16; now at 11
    rig.scope.focal_plane.knock(20.0)  # the plane jumps to 20: 9 µm fits neither 11 nor 5
    again = loop.lock_step()
    assert (again.state, again.probe_um) == ("probing", PROBE) and "again" in again.reason
    z = rig.drive.position_um()
    undecided = loop.lock_step()
    assert (undecided.rejected, undecided.move_um, undecided.state) == ("sign", 0.0, "focusing")
    assert "undecided after 2 probe(s)" in undecided.reason and rig.drive.position_um() == z


def test_the_lock_probes_and_locks(rig):
    records: list[StepRecord] = []
    loop = make_loop(rig, blind(rig, "random", noise_um=0.05, seed=3), records=records)
    loop.start_lock()
    for _ in range(12):
        loop.lock_step()
    assert records[0].state == "probing" and records[1].probed_sign == -1
    # a probed sign is corrected in full, not by the capture gain: a residual would need a
    # probe of its own
    distance = records[1].distance_um
    assert distance is not None and records[1].move_um == pytest.approx(-min(distance, 10.0))
    assert records[1].state == "focusing" and loop.state is LoopState.LOCKED
    assert abs(rig.scope.defocus_um()) <= 0.5
    rig.scope.focal_plane.knock(4.0)  # a knock: the lock probes again, from locked
    states = [loop.lock_step().state for _ in range(8)]
    assert states[0] == "probing" and states[-1] == "locked"
    assert abs(rig.scope.defocus_um()) <= 0.5


def test_within_tolerance_an_ambiguous_sign_is_neither_probed_nor_followed(make_rig):
    """Following a coin's sign each step, gain or not, the lock would random-walk."""
    rig = make_rig(start_z_um=0.3)
    records: list[StepRecord] = []
    loop = make_loop(rig, blind(rig, "random", noise_um=0.05, seed=5), records=records)
    loop.start_lock()
    for _ in range(30):
        loop.lock_step()
    assert rig.drive.moves == 0 and loop.state is LoopState.LOCKED
    assert {r.error_um for r in records} == {0.0}  # the midpoint of the two signs


def test_a_probe_landing_in_focus_leaves_for_locked():
    rig = rig_with_travel(3.0, (-500.0, 4.0))  # no room upwards: the probe goes down, to 0
    loop = make_loop(rig, blind(rig), in_tolerance_count=1)
    loop.start_lock()
    assert loop.lock_step().state == "probing"
    record = loop.lock_step()
    assert (record.state, record.move_um) == ("locked", 0.0)


def test_a_rejected_probe_reading_leaves_for_lost(rig):
    loop = make_loop(rig, blind(rig), rejections_before_lost=1)
    loop.start_lock()
    assert loop.lock_step().state == "probing"
    rig.scope.light_scale = 0.0
    record = loop.lock_step()
    assert (record.state, record.rejected, record.move_um) == ("lost", "dark", 0.0)


@given(distance=st.floats(0.0, 40.0), true_sign=st.sampled_from([-1, 1]),
       probe=st.sampled_from([-3.0, 3.0, -1.5, 1.5]), error=st.floats(0.0, 2.0),
       misread=st.tuples(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0)))
# the probe stopped 0.2 µm past focus, the first reading 0.5 µm long: the candidate it leaves
# lies 0.3 µm ahead, the plane 0.2 µm behind; within e0 of a candidate the side is not known
@example(distance=2.8, true_sign=1, probe=3.0, error=0.5, misread=(1.0, 0.0))
def test_the_rules_never_pick_the_wrong_side_within_the_stated_errors(distance, true_sign, probe,
                                                                      error, misread):
    """Readings off by at most their expected error: undecided, perhaps, but never wrong."""
    z0, focus = 0.0, true_sign * distance
    first = max(0.0, distance + misread[0] * error)
    z1 = z0 + probe
    second = max(0.0, abs(focus - z1) + misread[1] * error)
    side = decide_side(SignProbe(z0, first, error, 1.0 if probe > 0 else -1.0), z1, second,
                       error)
    assert side in (0, 1 if focus > z1 else -1) or focus == z1


def test_a_far_probe_decides_by_the_fit_and_a_probe_past_focus_by_geometry():
    far = SignProbe(z_um=0.0, distance_um=10.0, error_um=0.5, direction=1.0)
    assert decide_side(far, 3.0, 7.0, 0.5) == 1  # came closer: focus is ahead
    assert decide_side(far, 3.0, 13.0, 0.5) == -1  # went away: focus is behind
    assert decide_side(far, 3.0, 10.0, 0.5) == 0  # fits neither
    near = SignProbe(z_um=0.0, distance_um=1.0, error_um=0.5, direction=1.0)
    assert decide_side(near, 3.0, 2.0, 0.5) == decide_side(near, 3.0, 4.0, 0.5) == -1


def test_plan_probe_respects_the_guard():
    from controller.sign_probe import plan_probe

    guard = MoveGuard((0.0, 10.0), max_step_um=5.0, name="search_window")
    assert plan_probe(5.0, guard, 3.0, (1.0, -1.0)) == (3.0, "")
    assert plan_probe(9.0, guard, 3.0, (1.0, -1.0)) == (-3.0, "")
    assert plan_probe(9.0, guard, 3.0, (1.0,)) is None  # 1 µm of room: less than half
    assert plan_probe(8.0, guard, 3.0, (1.0,)) == (2.0, "search_window")
