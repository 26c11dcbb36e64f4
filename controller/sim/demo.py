"""The main job, shown on the digital twin: a continuous lock through a bad day.

The real firmware drives the virtual focus (controller/sim/twin.py); the bundled model reads the
virtual camera; the focal plane drifts (thermal drift plus a random walk), the sample is knocked,
leaves the field of view, the light path is blocked and overexposed. Every step is logged with
the truth only the twin knows, then scored against the project's goals:

- locked RMS focus error: every frame of a normal view after the first lock, except while
  re-acquiring after a knock or a lost spell (those are scored as steps to re-lock);
- moves made on a frame of an empty, dark or saturated view (goal: none);
- corrective steps after the knock until a frame is back within tolerance (goal: at most 3).

The run fails (non-zero exit) when the lock never locks, ends lost or in a fault, moves on a bad
frame, or its locked RMS error exceeds the lock tolerance.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from controller.config import Config
from controller.hardware.rig import Rig
from controller.lock_runner import LockReport, LockRunner
from controller.loop import FocusLoop, FocusReport, LoopState
from controller.runlog import RunLog, StepRecord
from controller.sensing import FocusSensor
from controller.sim.devices import VirtualScope
from controller.sim.scenario import Event, Scenario

TRUTH_COLUMNS = ("elapsed_s", "true_defocus_um", "focus_error_um", "condition", "events")
RMS_GOAL_UM = 0.25
RELOCK_GOAL_STEPS = 3


@dataclass(frozen=True)
class ScenarioRun:
    """A lock run on simulated hardware: its rows (StepRecord fields plus TRUTH_COLUMNS) and the
    runner's report (the counts and how the run ended)."""

    rows: list[dict[str, Any]]
    report: LockReport
    focus: FocusReport | None = None  # focus now's, where it ran before the lock


@dataclass
class RunScore:
    """What a lock run on the twin achieved, judged against the truth in its rows."""

    lock: LockReport  # the runner's counts and final state
    first_locked_s: float | None = None
    locked_rms_um: float | None = None
    locked_max_um: float | None = None
    locked_frames: int = 0
    bad_frames: int = 0
    moves_on_bad_frames: int = 0
    relock_steps: list[int | None] = field(default_factory=list)  # one per knock
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def score_run(run: ScenarioRun, tolerance_um: float) -> RunScore:
    """Score a run on simulated hardware against the truth its rows carry."""
    rows = run.rows
    score = RunScore(run.report)
    locked_errors: list[float] = []
    acquired = False  # locked at least once
    recovering = False  # after a knock or a lost spell, until locked again: re-acquisition
    for i, row in enumerate(rows):
        if row["state"] == "locked" and score.first_locked_s is None:
            score.first_locked_s = row["elapsed_s"]
        if row["condition"]:
            score.bad_frames += 1
            score.moves_on_bad_frames += row["move_um"] != 0.0
        elif acquired and not recovering:
            locked_errors.append(row["focus_error_um"])
        if row["state"] == "locked":
            acquired, recovering = True, False
        elif row["state"] == "lost":
            recovering = True
        if "knock" in row["events"]:
            score.relock_steps.append(_steps_back_in_tolerance(rows[i + 1:], tolerance_um))
            recovering = True
    if locked_errors:
        score.locked_frames = len(locked_errors)
        score.locked_rms_um = math.sqrt(sum(e * e for e in locked_errors) / len(locked_errors))
        score.locked_max_um = max(abs(e) for e in locked_errors)
    if score.first_locked_s is None:
        score.failures.append("never locked")
    if not run.report.ok:
        score.failures.append(f"ended {run.report.final_state}")
    if score.moves_on_bad_frames:
        score.failures.append(f"{score.moves_on_bad_frames} moves on untrustworthy frames")
    if score.locked_rms_um is not None and score.locked_rms_um > tolerance_um:
        score.failures.append(f"locked RMS error {score.locked_rms_um:.2f} µm exceeds the "
                              f"tolerance {tolerance_um} µm")
    return score


def _steps_back_in_tolerance(after: list[dict[str, Any]], tolerance_um: float) -> int | None:
    for steps, row in enumerate(after):
        if not row["condition"] and abs(row["focus_error_um"]) <= tolerance_um:
            return steps
    return None


class LiveView:
    """One status line per step: rewritten in place on a terminal, appended otherwise."""

    def __init__(self, duration_s: float, out: TextIO = sys.stdout) -> None:
        self.duration_s = duration_s
        self.out = out
        self.tty = out.isatty()

    def step(self, row: dict[str, Any]) -> None:
        # the model's reading of the focus error is minus the correction it asks for
        predicted = "   -- " if row["error_um"] is None else f"{-row['error_um']:+6.2f}"
        flag = f" rejected: {row['rejected']}" if row["rejected"] else ""
        line = (f"{row['elapsed_s']:6.1f}/{self.duration_s:.0f} s  {row['state']:<8}  "
                f"z {row['z_um']:+7.2f} µm  focus error: model {predicted} µm, "
                f"true {row['focus_error_um']:+6.2f} µm{flag}")
        if self.tty:
            self.out.write("\r\x1b[2K" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.out.write(("\n" if self.tty else "") + f"  >> {text}\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")


def run_scenario_lock(rig: Rig, sensor: FocusSensor, config: Config, *,
                      duration_s: float, events: list[Event], log: RunLog,
                      view: LiveView | None = None, focus_first: bool = False) -> ScenarioRun:
    """Lock on simulated hardware (the twin, or the in-process virtual rig) for ``duration_s``
    while playing ``events``; every row is logged with the truth. ``focus_first``: focus now
    (``config.focus``) before the lock, on the same loop, as ``focuslock lock --focus-first``
    does; the lock runs whatever focus now's report says."""
    scope = rig.scope
    if scope is None:
        raise ValueError("a scenario needs simulated hardware (a rig with a scope)")  # a bug
    scenario = Scenario(events)
    loop = FocusLoop.for_rig(rig, sensor, config)
    focus = loop.focus_now(config.focus) if focus_first else None
    runner = LockRunner(loop)
    rows: list[dict[str, Any]] = []
    start = rig.clock.now()
    offset = config.lock.offset_um

    def on_step(record: StepRecord) -> None:
        truth = _truth(scope, offset, Scenario.condition(scope))  # as the frame was taken
        fired = scenario.advance(scope, rig.clock.now() - start)
        truth["elapsed_s"] = record.t - start
        truth["events"] = "; ".join(e.describe() for e in fired)
        log.write(record, **truth)
        row = record.to_row() | truth
        rows.append(row)
        if view is not None:
            view.step(row)
            for event in fired:
                view.note(f"{event.describe()} at {truth['elapsed_s']:.1f} s")

    report = runner.run(duration_s=duration_s, on_step=on_step)
    if view is not None:
        view.close()
    return ScenarioRun(rows, report, focus)


def _truth(scope: VirtualScope, offset_um: float, condition: str) -> dict[str, Any]:
    true_defocus = scope.last_defocus_um
    return {"true_defocus_um": true_defocus,
            "focus_error_um": -true_defocus - offset_um,  # z - (z_focus + offset)
            "condition": condition}


def plot_run(rows: list[dict[str, Any]], path: Path, *, tolerance_um: float,
             title: str) -> Path:
    """Focus error over time (truth and the model's reading), bad-view intervals shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["elapsed_s"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.axhspan(-tolerance_um, tolerance_um, color="tab:green", alpha=0.15,
                label=f"tolerance ±{tolerance_um} µm")
    top.plot(t, [r["focus_error_um"] for r in rows], color="black", lw=1.2,
             label="true focus error")
    reading = [(r["elapsed_s"], -r["error_um"]) for r in rows if r["error_um"] is not None]
    if reading:
        top.plot(*zip(*reading, strict=True), ".", color="tab:blue", ms=3,
                 label="model's reading (trusted or not)")
    _shade_conditions(top, rows)
    _shade_conditions(bottom, rows)
    for r in rows:
        if r["events"]:
            top.axvline(r["elapsed_s"], color="tab:red", ls=":", lw=1)
            top.annotate(r["events"], (r["elapsed_s"], 0.95), xycoords=("data", "axes fraction"),
                         fontsize=8, color="tab:red", rotation=90, va="top", ha="right")
    top.set_ylabel("z − (z_focus + offset)  [µm]")
    limit = max(3.0, min(12.0, max(abs(r["focus_error_um"]) for r in rows) * 1.1))
    top.set_ylim(-limit, limit)
    top.legend(loc="lower right", fontsize=8)
    top.set_title(title)
    states = [state.value for state in LoopState]  # every state the loop can report
    bottom.step(t, [states.index(r["state"]) for r in rows], where="post", color="tab:purple")
    bottom.set_yticks(range(len(states)), states, fontsize=8)
    bottom.set_xlabel("time [s]")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _shade_conditions(axis: Any, rows: list[dict[str, Any]]) -> None:
    colours = {"empty-field": "tab:gray", "dark": "black", "saturated": "gold"}
    labelled: set[str] = set()
    for i, row in enumerate(rows):
        condition = row["condition"]
        if not condition:
            continue
        end = rows[i + 1]["elapsed_s"] if i + 1 < len(rows) else row["elapsed_s"] + 0.5
        label = None if condition in labelled else condition
        labelled.add(condition)
        axis.axvspan(row["elapsed_s"], end, color=colours[condition], alpha=0.2, lw=0,
                     label=label)


def summary_lines(score: RunScore, *, tolerance_um: float) -> list[str]:
    def goal(met: bool) -> str:
        return "goal met" if met else "GOAL MISSED"

    counts = score.lock.counts
    lines = [f"steps: {counts.steps}; final state: {score.lock.final_state}"]
    lines.append("first locked after: " + (
        "never" if score.first_locked_s is None else f"{score.first_locked_s:.1f} s"))
    if score.locked_rms_um is not None and score.locked_max_um is not None:
        lines.append(f"locked RMS focus error: {score.locked_rms_um:.3f} µm over "
                     f"{score.locked_frames} frames (max {score.locked_max_um:.2f} µm; goal "
                     f"≤ {RMS_GOAL_UM} µm: {goal(score.locked_rms_um <= RMS_GOAL_UM)})")
    lines.append(f"moves on empty/dark/saturated frames: {score.moves_on_bad_frames} of "
                 f"{score.bad_frames} such frames ({goal(score.moves_on_bad_frames == 0)})")
    for steps in score.relock_steps:
        text = "never" if steps is None else f"{steps} step{'s' * (steps != 1)}"
        met = steps is not None and steps <= RELOCK_GOAL_STEPS
        lines.append(f"back within {tolerance_um} µm after the knock: {text} "
                     f"(goal ≤ {RELOCK_GOAL_STEPS}: {goal(met)})")
    if counts.rejected:
        by_count = sorted(counts.rejected.items(), key=lambda item: -item[1])  # ties: first seen
        lines.append("rejected readings: " + ", ".join(
            f"{gate} {count}" for gate, count in by_count))
    lines.append("result: " + ("LOCK OK" if score.ok else "LOCK FAILED: "
                               + "; ".join(score.failures)))
    return lines
