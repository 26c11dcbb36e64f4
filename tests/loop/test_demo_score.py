"""Scoring a run on the twin: what counts as locked error, a bad-frame move, a re-lock."""

import pytest

from controller.sim.demo import score_run, summary_lines


def row(state, error, *, move=0.0, condition="", events="", t=0.0):
    return {"elapsed_s": t, "state": state, "focus_error_um": error, "move_um": move,
            "condition": condition, "events": events, "rejected": "empty" if condition else "",
            "error_um": None if condition else -error, "z_um": 0.0}


def test_scores_locked_error_bad_frame_moves_and_relock():
    rows = [
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
    ]
    score = score_run(rows, tolerance_um=0.5)
    assert score.first_locked_s == 1.5
    assert score.relock_steps == [1]  # 4.7 -> 0.5: back in tolerance one step later
    # normal-view frames after the first lock, except the re-acquisition after the knock
    locked = [-0.3, -0.2, 0.1]
    assert score.locked_rms_um == pytest.approx((sum(e * e for e in locked) / 3) ** 0.5)
    assert (score.bad_frames, score.moves_on_bad_frames) == (2, 1)
    assert not score.ok and score.failures == ["1 moves on untrustworthy frames"]
    assert "LOCK FAILED" in summary_lines(score, tolerance_um=0.5)[-1]


def test_a_run_that_never_locks_fails():
    score = score_run([row("focusing", 3.0), row("lost", 3.0, condition="dark")], 0.5)
    assert score.failures == ["never locked", "ended lost"]
