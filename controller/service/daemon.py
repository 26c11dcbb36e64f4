"""The focus-lock daemon: what the API (or any caller, from any thread) may ask of the service.

One worker thread owns the rig and the focus loop (controller/service/worker.py); this facade
checks each request, hands it to the worker and waits for the answer. What callers read (status,
health, the step history) is what the worker last published, plus the uptime and the health at
the moment of asking (controller/service/status.py).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

from controller.config import Config, ConfigError, with_offset
from controller.frame_views import Sighting
from controller.loop import FocusReport, LoopState
from controller.service.calibration import (
    CalibrationRequest,
    calibration_json,
    check_fine_tuning_possible,
)
from controller.service.errors import Conflict, InvalidRequest, StillRunning, Unavailable
from controller.service.events import EventHub
from controller.service.hardware import Hardware, open_hardware
from controller.service.history import Page, StepHistory
from controller.service.metrics import ServiceMetrics
from controller.service.sdnotify import Notifier
from controller.service.status import (
    Health,
    ServiceMode,
    StatusBoard,
    StatusSnapshot,
    WorkerStatus,
)
from controller.service.worker import LoopWorker

if TYPE_CHECKING:
    from controller.hardware.rig import Rig

T = TypeVar("T")
HISTORY_CAPACITY = 2000  # steps kept for /api/log: over 15 minutes at 2 Hz
COMMAND_GRACE_S = 10.0  # a command waits at most one step plus this for the worker
# A step may legitimately block this long: a board unplugged mid-step makes each of the step's
# calls and the safe stop wait for the port to come back (~30 s measured on the twin).
STALL_AFTER_S = 45.0


class FocusService:
    """The daemon. Queries and commands may come from any thread; see the module docstring."""

    def __init__(self, config: Config, hardware: Callable[[], Hardware] | None = None, *,
                 load_model: Callable[[Rig], Hardware] | None = None,
                 notifier: Notifier | None = None, stall_after_s: float | None = None,
                 history_capacity: int = HISTORY_CAPACITY) -> None:
        """``hardware`` opens the rig and its sensor (default: the config's); ``load_model``
        gives the open rig the sensor of the bundle the config names now (default: the
        config's), which a model reload calls."""
        self.config = config
        self.notifier = notifier or Notifier(None)
        self.stall_after_s = stall_after_s or STALL_AFTER_S
        self.history = StepHistory(history_capacity)
        self.events = EventHub(self.history, lambda: self.status().to_json())
        self._board = StatusBoard(WorkerStatus.before_start(config))
        self.metrics = ServiceMetrics(self.status)
        self._worker = LoopWorker(config, hardware or (lambda: open_hardware(config)),
                                  board=self._board, history=self.history,
                                  notifier=self.notifier, metrics=self.metrics,
                                  load_model=load_model, on_change=self.events.publish_state,
                                  on_calibration=self.events.publish_calibration)
        self._started_at = time.monotonic()

    # -- life cycle (main thread) ----------------------------------------------------------------

    def start(self) -> None:
        """Start the worker and wait until it has opened the hardware (or failed to, which is a
        fault the status shows) and started the lock if the config says so."""
        self._worker.start()

    def close(self, timeout_s: float | None = None) -> tuple[bool, str]:
        """Stop the loop and the drive, LEDs off, close the rig; (clean, what was done).
        A running focus now is asked to stop first, so the worker ends it between two moves;
        open event streams end at once."""
        self.events.close()
        self._request_focus_stop()
        wait = timeout_s if timeout_s is not None else self._command_timeout()
        if not self._worker.stop(wait):
            return False, (f"the loop thread did not stop within {wait:.0f} s; the board's "
                           f"heartbeat deadline stops the motor and LEDs when we exit")
        return True, self._worker.shutdown_summary or "stopped"

    # -- queries (any thread) -------------------------------------------------------------------

    def status(self) -> StatusSnapshot:
        return self._snapshot(self._board.read())

    def health(self) -> Health:
        """Whether the loop thread is alive, making progress and not in fault."""
        return self._health(self._board.read())

    def steps_since(self, seq: int, limit: int) -> Page:
        return self.history.since(seq, limit)

    def sighting(self) -> Sighting:
        """The latest autofocus frame the loop read, with what the bundle expects of it;
        Conflict until focus now or the lock has read one."""
        seen = self._worker.sighting()
        if seen is None:
            raise Conflict("no frame has been read yet; focus now or start the lock first")
        return seen

    # -- commands (any thread; the worker carries them out) --------------------------------------

    def focus_now(self, timeout_s: float) -> FocusReport:
        """Focus now; the report, or StillRunning after ``timeout_s`` (the focus goes on until
        it ends or ``stop`` ends it)."""
        def claim(status: WorkerStatus) -> WorkerStatus:
            if status.mode is ServiceMode.LOCK:
                raise Conflict("the lock is running; stop it first (POST /api/lock/stop)")
            if status.mode in (ServiceMode.FOCUS, ServiceMode.STOPPING):
                raise Conflict(f"focus now is already {status.mode.running}")
            if status.mode is ServiceMode.CALIBRATE:
                raise Conflict("a calibration is collecting its stacks; cancel it first "
                               "(POST /api/calibration/cancel)")
            return dataclasses.replace(status, mode=ServiceMode.FOCUS)

        self._board.change(claim)
        try:
            done = self._worker.submit(self._worker.focus_now)
        except BaseException:
            self._board.change(lambda s: dataclasses.replace(s, mode=ServiceMode.IDLE))
            raise
        try:
            return done.result(timeout_s)
        except TimeoutError:
            raise StillRunning(f"focus now has not finished after {timeout_s:g} s; it goes on "
                               f"(see /api/status) until it ends or POST /api/stop ends it"
                               ) from None

    def start_lock(self) -> StatusSnapshot:
        return self._snapshot(self._call(self._worker.start_lock))

    def stop_lock(self) -> StatusSnapshot:
        return self._snapshot(self._call(self._worker.stop_lock))

    def stop(self) -> StatusSnapshot:
        """Stop whatever runs: focus now between two moves (its report ends idle, "stopped by
        request"), or the lock; LEDs off. The answer comes once it has stopped."""
        self._request_focus_stop()
        return self._snapshot(self._wait_for(self._worker.submit(self._worker.stop_lock)))

    def set_offset(self, offset_um: object) -> StatusSnapshot:
        """Hold ``z = z_focus + offset_um`` from the next step on (and in later runs); refused
        unless the config's own rule for lock.offset_um admits it."""
        value = _finite_number("offset_um", offset_um)
        try:
            with_offset(self.config, value)
        except ConfigError as exc:
            raise InvalidRequest(str(exc)) from None
        return self._snapshot(self._call(lambda: self._worker.set_offset(value)))

    def reload_model(self) -> StatusSnapshot:
        """Read with the bundle the config names now (after ``focuslock model install`` or
        ``rollback``); refused (Conflict) while focus now or the lock runs."""
        return self._snapshot(self._call(self._worker.reload_model))

    def rollback_model(self) -> StatusSnapshot:
        """Make the previous installed bundle current again and read with it; refused
        (Conflict) while something runs or without a previous bundle."""
        return self._snapshot(self._call(self._worker.rollback_model))

    # -- the guided calibration (controller/service/calibration.py) -------------------------------

    def calibration(self) -> dict[str, Any]:
        """The latest calibration job, as ``GET /api/calibration`` answers."""
        return calibration_json(self._worker.calibration())

    def calibration_figure(self) -> bytes:
        """The latest calibration's before/after figure (PNG); Conflict until it has one."""
        job = self._worker.calibration()
        if job is None:
            raise Conflict("no calibration has run since the service started")
        return job.figure()

    def start_calibration(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start a guided calibration of the bundle the box reads: InvalidRequest for a bad
        request, Unavailable without TensorFlow, Conflict while anything runs."""
        from controller.installed_models import configured_bundle

        request = CalibrationRequest.from_body(body)
        base = configured_bundle(self.config)
        if base is None:
            raise Conflict("model.bundle = 'none' reads no network to fine-tune")
        check_fine_tuning_possible()
        return self._call(lambda: self._worker.start_calibration(request, base)).to_json()

    def next_calibration_field(self) -> dict[str, Any]:
        return self._call(self._worker.next_calibration_field).to_json()

    def cancel_calibration(self) -> dict[str, Any]:
        return self._call(self._worker.cancel_calibration).to_json()

    def install_calibrated(self, force: bool) -> dict[str, Any]:
        return self._call(lambda: self._worker.install_calibrated(force)).to_json()

    def home_drive(self) -> StatusSnapshot:
        """Seek the drive's min endstop: its position is known again."""
        return self._snapshot(self._call(self._worker.home_drive,
                                         timeout_s=STALL_AFTER_S))  # may cross the whole travel

    def set_drive_position(self, z_um: object) -> StatusSnapshot:
        """Declare that the drive is at ``z_um`` now (re-reference without an endstop)."""
        value = _finite_number("z_um", z_um)
        return self._snapshot(self._call(lambda: self._worker.set_drive_position(value)))

    def clear_drive_fault(self) -> StatusSnapshot:
        """Clear a fault the drive latched (heartbeat missed, endstop hit)."""
        return self._snapshot(self._call(self._worker.clear_drive_fault))

    # -- internals --------------------------------------------------------------------------------

    def _request_focus_stop(self) -> None:
        """A running focus now becomes ``stopping``: the worker ends it before its next reading
        or move (atomically, so a focus now accepted at the same moment is not missed)."""
        self._board.change(lambda s: dataclasses.replace(s, mode=ServiceMode.STOPPING)
                           if s.mode is ServiceMode.FOCUS else s)

    def _call(self, action: Callable[[], T], *, timeout_s: float | None = None) -> T:
        mode = self._board.read().mode
        if mode in (ServiceMode.FOCUS, ServiceMode.STOPPING):
            raise Conflict(f"focus now is {mode.running}; it ends by itself within "
                           f"{self.config.focus.max_steps} moves, or POST /api/stop ends it")
        return self._wait_for(self._worker.submit(action), timeout_s=timeout_s)

    def _wait_for(self, done: Future[T], *, timeout_s: float | None = None) -> T:
        """The worker's answer, waiting one command's time plus ``timeout_s``."""
        wait = self._command_timeout() + (timeout_s or 0.0)
        try:
            return done.result(wait)
        except TimeoutError:
            raise Unavailable(f"the loop thread did not answer within {wait:.0f} s") from None

    def _command_timeout(self) -> float:
        return COMMAND_GRACE_S + 2 * self.config.camera.timeout_s + 1 / self.config.lock.rate_hz

    def _snapshot(self, worker: WorkerStatus) -> StatusSnapshot:
        return StatusSnapshot(worker, time.monotonic() - self._started_at, self._health(worker))

    def _health(self, worker: WorkerStatus) -> Health:
        if not self._worker.alive:
            return Health(False, "the loop thread is not running")
        quiet = self._board.quiet_s()
        if quiet > self.stall_after_s:
            return Health(False, f"the loop thread has made no progress for {quiet:.0f} s")
        if worker.state is LoopState.FAULT:
            return Health(False, f"fault: {worker.reason}")
        return Health(True, "ok")


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """A finite JSON number (true and false are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _finite_number(name: str, value: object) -> float:
    """``value`` as a float if it is a finite JSON number, else InvalidRequest."""
    if is_finite_number(value):
        return float(value)
    raise InvalidRequest(f"{name}: must be a finite number, got {value!r}")
