"""The probe pair in the loop: a sign probe whose two frames a pair network reads together
(controller/probe_pair.py, controller/sign_probe.py). The pair network here reads the truth the
oracle model's frames carry (tests/loop/doubles.py); the trained network is tested in
tests/training/test_probe_pair.py. The focal plane sits at z = 0."""

from __future__ import annotations

from controller.runlog import StepRecord
from tests.loop.conftest import model_alone
from tests.loop.doubles import OraclePredictor, oracle_pair
from tests.loop.test_probing import PROBE, rig_with_travel


def worsened(records: list[StepRecord]) -> list[float]:
    """How much each move made the focus worse (µm; negative: better)."""
    return [abs(r.z_um + r.move_um) - abs(r.z_um) for r in records
            if r.move_um and r.z_um is not None]


def test_a_confidently_wrong_sign_is_probed_and_the_pair_reads_the_side(make_rig):
    rig = make_rig(start_z_um=8.0)  # the truth: -8 µm; the model says +8 µm and is sure of it
    records: list[StepRecord] = []
    report = make_loop_with(rig, OraclePredictor(rig.scope, scale=-1.0), records,
                            pair=True).focus_now(model_alone())
    probe, decided, done = records
    assert (probe.state, probe.probe_um) == ("probing", PROBE)  # the way the wrong sign points
    assert (decided.probed_sign, decided.state) == (-1, "focusing")
    assert decided.error_um == -11.0 and decided.move_um == -11.0  # the pair's reading, in full
    assert done.state == "idle" and report.success and report.moves == 2
    assert max(worsened(records)) <= PROBE  # only the probe went away from focus


def test_where_the_pair_agrees_the_networks_own_finer_reading_is_acted_on(make_rig):
    from tests.loop.conftest import make_loop, model_alone

    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    coarse = oracle_pair(PROBE, bias_um=1.0)  # the pair is the coarser of the two
    report = make_loop(rig, OraclePredictor(rig.scope, pair=coarse),
                       records=records).focus_now(model_alone())
    assert records[0].probe_um == -PROBE  # towards focus, as the network's sign points
    assert records[1].error_um == -5.0 and "confirmed -5.00 µm" in records[1].reason
    assert report.success and abs(rig.scope.defocus_um()) <= 0.5


def test_without_the_pair_the_same_model_drives_away_from_focus(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    make_loop_with(rig, OraclePredictor(rig.scope, scale=-1.0), records,
                   pair=False).focus_now(model_alone(max_steps=1))
    assert worsened(records) == [8.0]  # what the pair prevents


def test_a_probe_downwards_reads_the_pair_the_other_way_round():
    rig = rig_with_travel(8.0, (-500.0, 9.0))  # no room above for the probe the sign points to
    records: list[StepRecord] = []
    report = make_loop_with(rig, OraclePredictor(rig.scope, scale=-1.0), records,
                            pair=True).focus_now(model_alone())
    assert records[0].probe_um == -PROBE
    assert records[1].error_um == -5.0 and "probe pair" in records[1].reason
    assert report.success and report.moves == 2


def test_a_probe_the_guard_cut_to_another_length_falls_back_to_the_distances(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    blind = OraclePredictor(rig.scope, sign_blind="wrong")
    make_loop_with(rig, blind, records, pair=True).focus_now(model_alone(max_step_um=2.0))
    assert (records[0].probe_um, records[0].limited) == (2.0, "max_step")
    assert "the probe decided the sign" in records[1].reason  # not the pair: it reads 3 µm
    assert records[1].probed_sign == -1 and records[1].move_um == -2.0


def test_within_the_pairs_probe_a_trusted_sign_is_acted_on_at_once(make_rig):
    rig = make_rig(start_z_um=2.0)
    records: list[StepRecord] = []
    report = make_loop_with(rig, OraclePredictor(rig.scope), records,
                            pair=True).focus_now(model_alone())
    assert report.success and report.moves == 1
    assert "probing" not in {r.state for r in records}


def test_the_lock_probes_with_the_pair_and_then_reads_the_backwards_network_right(make_rig):
    rig = make_rig(start_z_um=8.0)
    loop = make_loop_with(rig, OraclePredictor(rig.scope, scale=-1.0), [], pair=True)
    loop.start_lock()
    steps = [loop.lock_step() for _ in range(6)]
    assert steps[0].state == "probing" and steps[1].probed_sign == -1
    # nearer than the probe, the network's own (backwards) sign is read through the relation
    # the pair measured: every move after the probe goes towards focus
    assert all(w < 0 for w in worsened(steps[1:]))
    assert steps[-1].state == "locked" and abs(rig.scope.defocus_um()) <= 0.5


def test_a_new_run_forgets_the_sign_relation(make_rig):
    rig = make_rig(start_z_um=8.0)
    records: list[StepRecord] = []
    loop = make_loop_with(rig, OraclePredictor(rig.scope, scale=-1.0), records, pair=True)
    assert loop.focus_now(model_alone()).success
    rig.drive.move_by(2.0)  # within the probe: the network's own sign would be acted on
    records.clear()
    loop.focus_now(model_alone(max_steps=1))
    assert worsened(records) == [2.0]  # a new sample may read either way: nothing carried over


def make_loop_with(rig, predictor: OraclePredictor, records: list[StepRecord], *, pair: bool):
    """The loop with ``predictor``, given the oracle's probe pair network or none."""
    from tests.loop.conftest import make_loop

    predictor.pair = oracle_pair(PROBE) if pair else None
    return make_loop(rig, predictor, records=records)
