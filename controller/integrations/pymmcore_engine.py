"""pymmcore-plus's MDA engine with the box as its hardware autofocus, for the acquisition PC.

``FocuslockEngine`` is pymmcore-plus's default ``MDAEngine`` with three additions:

- a ``HardwareAutofocus`` event (useq's ``autofocus_plan``) asks the box to focus now, after the
  stage moved to the event's position; a box that refuses, fails or does not answer is reported
  as pymmcore-plus reports a failed autofocus (a warning "Hardware autofocus failed. ..." on its
  logger) and the sequence goes on;
- with ``hold_lock``, the box's lock runs through the sequence: started and waited for before
  the first event, paused (the drive stands still) for each z-stack once it holds focus, resumed
  after the stack, and stopped at the end however the sequence ends (completed, cancelled,
  failed);
- every frame's metadata carries the box's state, defocus and confidence under
  ``meta["extra"]["focuslock"]``.

The box moves its own focus drive; Micro-Manager's Z stage is left where the sequence puts it
(no autofocus correction is added to its z positions). The box is reached with
``FocuslockClient`` (controller/service/client.py); docs/acquisition.md has the recipes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from pymmcore_plus import CMMCorePlus
from pymmcore_plus.mda import MDAEngine
from pymmcore_plus.metadata import FrameMetaV1, PropertyValue, SummaryMetaV1
from useq import HardwareAutofocus, MDAEvent, MDASequence

from controller.service.client import ApiError, FocuslockClient

log = logging.getLogger("pymmcore-plus")  # where pymmcore-plus reports its own autofocus

STACK_AXES = ("z", "c")  # a z-stack's planes (and its channels) share every other index
AUTOFOCUS_FAILED = "Hardware autofocus failed. %s"  # pymmcore-plus's own words


class FocuslockEngine(MDAEngine):
    """``MDAEngine(mmc, **options)`` that asks ``box`` to focus at each ``HardwareAutofocus``
    event (waiting at most ``focus_timeout_s``) and, with ``hold_lock``, holds the box's lock
    through the sequence (waiting at most ``lock_timeout_s`` for it to hold)."""

    def __init__(self, mmc: CMMCorePlus, box: FocuslockClient, *, hold_lock: bool = False,
                 focus_timeout_s: float = 30.0, lock_timeout_s: float = 60.0,
                 **options: Any) -> None:
        super().__init__(mmc, **options)
        self.box = box
        self.hold_lock = hold_lock
        self.focus_timeout_s = focus_timeout_s
        self.lock_timeout_s = lock_timeout_s
        self.last_autofocus: dict[str, Any] | None = None  # the newest focus report, with "p"
        self._holding = False  # this sequence started (or found) the lock and must stop it
        self._paused = False  # the lock is stopped for the stack being acquired
        self._stack_ends = True  # the event being run is the last of its stack

    # -- the sequence -----------------------------------------------------------------------------

    def setup_sequence(self, sequence: MDASequence) -> SummaryMetaV1 | None:
        self.last_autofocus = None
        summary = super().setup_sequence(sequence)
        if self.hold_lock:
            self._holding = True  # from here on teardown_sequence stops it, whatever happens
            if self.box.status().get("mode") != "lock":
                self.box.lock()
            self.box.wait_locked(self.lock_timeout_s)
        return summary

    def teardown_sequence(self, sequence: MDASequence) -> None:
        try:
            super().teardown_sequence(sequence)
        finally:
            if self._holding:
                self._holding = self._paused = False
                try:
                    self.box.unlock()
                except ApiError as exc:  # the runner must still finish: say so and go on
                    log.warning("focuslock: the lock was not stopped after the sequence. %s",
                                exc)

    def event_iterator(self, events: Iterable[MDAEvent]) -> Iterator[MDAEvent]:
        """The engine's events, each known to end its stack or not (one event read ahead),
        so that a held lock resumes right after a stack rather than at the next one."""
        merged = super().event_iterator(events)
        if not self.hold_lock:
            yield from merged
            return
        ahead = next(merged, None)
        while ahead is not None:
            event, ahead = ahead, next(merged, None)
            self._stack_ends = ahead is None or not _in_stack(ahead) \
                or _stack_key(ahead) != _stack_key(event)
            yield event
        self._stack_ends = True

    # -- each event -------------------------------------------------------------------------------

    def setup_event(self, event: MDAEvent) -> None:
        if self._holding and not self._paused and _in_stack(event):
            self.box.wait_locked(self.lock_timeout_s)  # the stack starts where focus is held
            self.box.unlock()  # the drive stands still while the stack steps through z
            self._paused = True
        super().setup_event(event)

    def exec_event(self, event: MDAEvent) -> Iterable[Any]:
        """An autofocus event asks the box (and yields no image); any other is the engine's."""
        if isinstance(event.action, HardwareAutofocus):
            self._autofocus(event)
            return ()
        return super().exec_event(event)

    def teardown_event(self, event: MDAEvent) -> None:
        super().teardown_event(event)
        if self._paused and self._stack_ends:
            self._paused = False
            self.box.lock()  # hold focus again until the next stack or the end

    def get_frame_metadata(self, event: MDAEvent,
                           prop_values: tuple[PropertyValue, ...] | None = None,
                           runner_time_ms: float = 0.0, include_position: bool = True,
                           camera_device: str | None = None) -> FrameMetaV1:
        meta = super().get_frame_metadata(event, prop_values, runner_time_ms,
                                          include_position, camera_device)
        meta.setdefault("extra", {})["focuslock"] = self.box_record()
        return meta

    # -- the box ----------------------------------------------------------------------------------

    def box_record(self) -> dict[str, Any]:
        """What the box says now, for a frame's metadata: ``state``, ``mode``, ``z_um`` (its
        drive), ``defocus_um`` and ``confidence`` (its newest step), ``seq`` (that step's
        number in /api/log) and ``autofocus`` (the newest focus report of this sequence); only
        ``error`` when the box does not answer (the frame is kept)."""
        try:
            status = self.box.status()
        except ApiError as exc:
            return {"error": str(exc)}
        step = status.get("last_step") or {}
        return {"state": status.get("state"), "mode": status.get("mode"),
                "z_um": status.get("z_um"), "defocus_um": step.get("defocus_um"),
                "confidence": step.get("confidence"), "seq": step.get("seq"),
                "autofocus": self.last_autofocus}

    def _autofocus(self, event: MDAEvent) -> None:
        """Focus now at the event's position; a failure is a warning, as pymmcore-plus's own."""
        try:
            report = self.box.focus(timeout_s=self.focus_timeout_s)
        except ApiError as exc:
            report = {"success": False, "reason": str(exc)}
        self.last_autofocus = {**report, "p": event.index.get("p")}
        self._af_succeeded = bool(report.get("success"))
        if not self._af_succeeded:
            log.warning(AUTOFOCUS_FAILED, f"focuslock at {self.box.url}: {report.get('reason')}")


def _in_stack(event: MDAEvent) -> bool:
    return "z" in event.index and not isinstance(event.action, HardwareAutofocus)


def _stack_key(event: MDAEvent) -> tuple[tuple[str, int], ...]:
    """What the planes (and channels) of one stack share: every other index."""
    return tuple(sorted((axis, i) for axis, i in event.index.items() if axis not in STACK_AXES))
