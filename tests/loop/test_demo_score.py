"""Scoring a run on the twin: what counts as locked error, a bad-frame move, a re-lock."""

import pytest

from controller.lock_runner import LockReport, StepCounts
from controller.loop import LoopState
from controller.runlog import StepRecord
from controller.sim.demo import ScenarioRun, score_run, summary_lines


def row(state, error, *, move=0.0, condition="", events="", t=0.0):
    """A step as the loop records it, and the truth the twin adds to its row."""
    record = StepRecord(t=t, step=0, state=state, z_um=0.0, defocus_um=None, confidence=None,
                        error_um=None if condition else -error,
                        rejected="empty" if condition else "", move_um=move, limited="",
                        reason="")
    return record, {"elapsed_s": t, "focus_error_um": error, "condition": condition,
                    "events": events}


def scenario_run(*steps) -> ScenarioRun:
    """The rows and the report the runner would give for these steps."""
    counts = StepCounts()
    for record, _ in steps:
        counts = counts.plus(record)
    last = LoopState(steps[-1][0].state)
    return ScenarioRun([record.to_row() | truth for record, truth in steps],
                       LockReport(counts, last, ""))


def test_scores_locked_error_bad_frame_moves_and_relock():
    run = scenario_run(
        row("focusing", 4.0, move=-3.6), row("focusing", 0.4), row("focusing", 0.2),
        row("locked", 0.1, t=1.5),
        row("locked", -0.3, events="knock +5.0 µm"),
        row("focusing", 4.7, move=-4.2),  # the knock's transient is not locked error
        row("focusing", 0.5, move=-0.3),
        row("locked", 0.2),
        row("locked", -0.2),
        row("holding", 9.0, condition="empty-field"),  # not scored as error: nothing was seen
        row("holding", 9.0, condition="empty-field", move=1.0),  # a move on a bad frame
        row("locked", 0.1),
    )
    score = score_run(run, tolerance_um=0.5)
    assert score.first_locked_s == 1.5
    assert score.relock_steps == [1]  # 4.7 -> 0.5: back in tolerance one step later
    # normal-view frames after the first lock, except the re-acquisition after the knock
    locked = [-0.3, -0.2, 0.1]
    assert score.locked_rms_um == pytest.approx((sum(e * e for e in locked) / 3) ** 0.5)
    assert (score.bad_frames, score.moves_on_bad_frames) == (2, 1)
    assert not score.ok and score.failures == ["1 moves on untrustworthy frames"]
    lines = summary_lines(score, tolerance_um=0.5)
    assert lines[0] == "steps: 12; final state: locked"
    assert "rejected readings: empty 2" in lines
    assert "LOCK FAILED" in lines[-1]


def test_a_run_that_never_locks_fails():
    score = score_run(scenario_run(row("focusing", 3.0), row("lost", 3.0, condition="dark")),
                      0.5)
    assert score.failures == ["never locked", "ended lost"]


def test_step_counts_count_steps_moves_locked_steps_and_each_failed_gate():
    counts = StepCounts()
    for record, _ in (row("focusing", 4.0, move=-3.6), row("locked", 0.1),
                      row("holding", 9.0, condition="dark")):
        counts = counts.plus(record)
    twice = counts.plus(StepRecord(t=0.0, step=4, state="holding", z_um=0.0, defocus_um=None,
                                   confidence=None, error_um=None, rejected="dark+stale",
                                   move_um=0.0, limited="", reason=""))
    assert (counts.steps, counts.moves, counts.locked_steps) == (3, 1, 1)
    assert counts.rejected == {"empty": 1}
    assert twice.rejected == {"empty": 1, "dark": 1, "stale": 1}
    assert counts.rejected == {"empty": 1}  # a value: plus() leaves it as it was
