"""The lock's runner: it paces a FocusLoop's lock steps, ends the run and counts its steps.

The loop (controller/loop.py) is the engine: one step, the control law, the states. The runner is
kept apart from it, as pymmcore-plus keeps its runner apart from its engine, so that the command
line (``focuslock lock``, the demo) and the service's worker run the lock by the same rules:

- pacing: one step every ``1 / lock.rate_hz`` seconds on the runner's clock; after a step that
  ends late the next one follows at once, without a burst to catch up;
- end of run: a step that ends in ``fault``, or in ``lost`` without ``lock.recover_from_lost``,
  ends the run at once; ``run()`` also ends it at its duration, its step count or a stop request,
  checked when the next step is due. At the end the LEDs are off (after a fault the loop's safe
  stop has already stopped the drive and switched them off).

``run()`` blocks, sleeping on the clock between steps (the command line, in the rig's time). The
service's worker waits for commands between steps, in real time: it calls ``start()``, then
``step()`` whenever ``due_in()`` is 0, as long as ``running``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from controller.clock import Clock
from controller.loop import FocusLoop, LoopState
from controller.runlog import StepRecord


def _no_counts() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True)
class StepCounts:
    """What a run of steps did, counted from its step records (a lock runs for days: counts, not
    rows). A value: ``plus`` returns the counts with one more record."""

    steps: int = 0
    moves: int = 0
    locked_steps: int = 0  # steps that ended locked
    rejected: Mapping[str, int] = field(default_factory=_no_counts)  # readings, by gate
    # trusted readings, by the cue that decided them ("network", "parallax")
    decided: Mapping[str, int] = field(default_factory=_no_counts)

    def plus(self, record: StepRecord) -> StepCounts:
        rejected = dict(self.rejected)
        for gate in filter(None, record.rejected.split("+")):
            rejected[gate] = rejected.get(gate, 0) + 1
        decided = dict(self.decided)
        if record.cue and not record.rejected:
            decided[record.cue] = decided.get(record.cue, 0) + 1
        return StepCounts(steps=self.steps + 1, moves=self.moves + (record.move_um != 0.0),
                          locked_steps=self.locked_steps + (record.state == LoopState.LOCKED),
                          rejected=MappingProxyType(rejected), decided=MappingProxyType(decided))


@dataclass(frozen=True)
class LockReport:
    """The outcome of a lock run: its counts, the state it ended in and why."""

    counts: StepCounts
    final_state: LoopState
    reason: str

    @property
    def ok(self) -> bool:
        return self.final_state not in (LoopState.FAULT, LoopState.LOST)


class LockRunner:
    """Runs the lock of one FocusLoop once; see the module docstring for the rules."""

    def __init__(self, loop: FocusLoop, *, clock: Clock | None = None) -> None:
        self.loop = loop
        self.clock: Clock = clock or loop.clock  # the service paces in real time, on any rig
        self.counts = StepCounts()
        self.report: LockReport | None = None  # set when the run ends
        self._next_due = 0.0

    @property
    def running(self) -> bool:
        return self.report is None

    def start(self) -> None:
        """Light the autofocus pattern and fix the travel window; a fault here ends the run."""
        self.loop.start_lock()
        self._next_due = self.clock.now()
        if self.loop.state is LoopState.FAULT:
            self._end()

    def due_in(self) -> float:
        """Seconds until the next step is due (0: now)."""
        return max(0.0, self._next_due - self.clock.now())

    def step(self) -> StepRecord:
        """One lock step, counted; ends the run if the step faulted, or lost for good."""
        loop = self.loop
        record = loop.lock_step()
        self.counts = self.counts.plus(record)
        period = 1.0 / loop.lock_settings.rate_hz
        self._next_due = max(self._next_due + period, self.clock.now())
        if loop.state is LoopState.FAULT or (
                loop.state is LoopState.LOST and not loop.lock_settings.recover_from_lost):
            self._end()
        return record

    def run(self, *, duration_s: float | None = None, max_steps: int | None = None,
            should_stop: Callable[[], bool] | None = None,
            on_step: Callable[[StepRecord], None] | None = None) -> LockReport:
        """Start and step at the lock's rate until the run ends (see the module docstring)."""
        self.start()
        start = self.clock.now()
        try:
            while self.running:
                if (duration_s is not None and self.clock.now() - start >= duration_s) or (
                        max_steps is not None and self.counts.steps >= max_steps) or (
                        should_stop is not None and should_stop()):
                    break
                record = self.step()
                if on_step is not None:
                    on_step(record)
                if self.running:
                    self.clock.sleep(self.due_in())
        finally:
            self._end()
        assert self.report is not None  # _end() sets it
        return self.report

    def _end(self) -> None:
        """Report the run, then LEDs off unless a fault's safe stop already saw to them."""
        if self.report is not None:
            return
        loop = self.loop
        self.report = LockReport(self.counts, loop.state, loop.reason)
        if loop.state is not LoopState.FAULT:
            loop.stop()
