"""The service's worker: the one thread that touches the rig and the focus loop.

Devices and the loop are not thread-safe, and a lock step must never interleave with a command,
so this thread alone opens the hardware, carries out the commands other threads queue (through
``submit``) and, between them, runs the lock's steps when the LockRunner says they are due, in
real time. After every step and command it publishes the status on the StatusBoard and beats
its heart; it pings the systemd watchdog from here, so a hung step stops the pings.

A fault (camera timeout, board fault, hardware that cannot be opened, an unexpected error)
leaves the thread running: the status says what failed, and starting the lock again retries
once the cause is fixed. Stopping it (``stop``) stops the loop, stops the drive, switches the
LEDs off and closes the rig, in this thread, and ``shutdown_summary`` says what it did.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from controller.clock import MonotonicClock
from controller.config import Config, with_offset
from controller.errors import FocuslockError
from controller.features import FeatureSpec
from controller.frame_views import Sighting
from controller.hardware.board import FocusBoard
from controller.lock_runner import LockRunner
from controller.loop import FocusLoop, FocusReport, LoopState
from controller.move_guard import MoveGuard, MoveRefused
from controller.runlog import RunLog, StepRecord, timestamped_dir
from controller.sensing import NetworkSensor, ParallaxSensor
from controller.service.calibration import CalibrationJob, CalibrationRequest
from controller.service.calibration_collect import FieldCollection
from controller.service.errors import Conflict, InvalidRequest, ServiceError, Unavailable
from controller.service.hardware import (
    Hardware,
    KeepingCamera,
    ReferencedDrive,
    TrackedIlluminator,
    read_by_model,
)
from controller.service.history import StepHistory, step_entry
from controller.service.metrics import ServiceMetrics
from controller.service.sdnotify import Notifier
from controller.service.status import ServiceMode, StatusBoard, WorkerStatus

if TYPE_CHECKING:
    from controller.hardware.rig import Rig

log = logging.getLogger(__name__)

T = TypeVar("T")
IDLE_TICK_S = 1.0  # the worker wakes at least this often (watchdog, heartbeat)


@dataclass(frozen=True)
class _Command:
    action: Callable[[], Any]
    done: Future[Any]


@dataclass(frozen=True)
class _OpenRig:
    """The hardware once open, with the LEDs as the status sees them, the camera that keeps
    the latest autofocus frame and the loop on them."""

    hardware: Hardware
    leds: TrackedIlluminator
    camera: KeepingCamera
    loop: FocusLoop

    def sighting(self) -> Sighting | None:
        """The latest autofocus frame with what the bundle expects of it (None: none yet)."""
        frame = self.camera.latest
        if frame is None:
            return None
        sensor = self.hardware.sensor
        network = sensor if isinstance(sensor, NetworkSensor) else (
            sensor.network if isinstance(sensor, ParallaxSensor) else None)
        spec = getattr(network.predictor, "spec", None) if network is not None else None
        rig = self.hardware.rig
        return Sighting(frame.image, rig.full_scale, rig.preset.optics, sensor.patterns[0],
                        spec if isinstance(spec, FeatureSpec) else None)


class LoopWorker:
    """The worker thread. ``start``, ``stop``, ``submit`` and ``alive`` may be called from any
    thread; the command methods (``start_lock`` ...) only through ``submit``."""

    def __init__(self, config: Config, open_hardware: Callable[[], Hardware], *,
                 board: StatusBoard, history: StepHistory, notifier: Notifier,
                 metrics: ServiceMetrics,
                 load_model: Callable[[Rig], Hardware] | None = None,
                 on_change: Callable[[], None] = lambda: None,
                 on_calibration: Callable[[dict[str, Any]], None] = lambda job: None) -> None:
        """``on_change`` is called (in this thread, never blocking) when the state, the mode,
        a fault or a setting changes: the live events' ``state``; ``on_calibration`` (in this
        thread or the fine-tuning's watcher, never blocking) when a calibration job changes:
        their ``calibration``."""
        self.config = config  # the config in force: set_offset changes its lock.offset_um
        self._open_hardware = open_hardware
        self._load_model = load_model or (lambda rig: read_by_model(self.config, rig))
        self._board = board
        self._history = history
        self._notifier = notifier
        self._metrics = metrics
        self._on_change = on_change
        self._on_calibration = on_calibration
        self._run_log = _open_run_log(config)
        self._commands: queue.Queue[_Command | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="focuslock-loop", daemon=True)
        self._started = threading.Event()
        self.shutdown_summary = ""
        # touched by the worker thread only
        self._clock = MonotonicClock()  # the service paces in real time, whatever the rig's
        self._open: _OpenRig | None = None
        self._runner: LockRunner | None = None  # while the lock runs
        self._job: CalibrationJob | None = None  # the latest calibration (read by any thread)
        self._collection: FieldCollection | None = None  # while its stacks are collected
        self._fault = ""  # a fault outside the loop (open failed, unexpected error)
        self._last_ping = -math.inf
        self._told_systemd = ""
        self._retries_seen = 0  # the board link's resend count at the last publish
        self._announced: tuple[object, ...] = ()

    # -- any thread -----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        """Start the thread and wait until it has opened the hardware (or failed to, which is a
        fault the status shows) and started the lock if the config says so."""
        self._publish()
        self._thread.start()
        self._started.wait()

    def stop(self, timeout_s: float) -> bool:
        """Make the thread leave everything safe and end; False if it did not within the time."""
        if self._thread.is_alive():
            self._commands.put(None)
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        if self._thread.ident is None:
            self._shut_down()  # never started: only the run log is open
        return True

    def sighting(self) -> Sighting | None:
        """The latest autofocus frame the loop read and what the bundle expects of it (None:
        no frame read yet). Reads references the worker replaces whole: no copy, no wait."""
        opened = self._open
        return opened.sighting() if opened is not None else None

    def calibration(self) -> CalibrationJob | None:
        """The latest calibration job (None: none since the service started)."""
        return self._job

    def submit(self, action: Callable[[], T]) -> Future[T]:
        """Queue ``action`` for the thread; the future has its result or its exception."""
        if not self._thread.is_alive():
            raise Unavailable("the loop thread is not running")
        done: Future[T] = Future()
        self._commands.put(_Command(action, done))
        return done

    # -- commands (worker thread, through submit) -----------------------------------------------

    def start_lock(self) -> WorkerStatus:
        mode = self._board.read().mode
        if mode is ServiceMode.LOCK:
            raise Conflict("the lock is already running")
        if mode in (ServiceMode.FOCUS, ServiceMode.STOPPING):  # accepted after this was queued
            raise Conflict(f"focus now is {mode.running}")
        if mode is ServiceMode.CALIBRATE:
            raise Conflict("a calibration is collecting its stacks; cancel it first "
                           "(POST /api/calibration/cancel)")
        loop = self._ensure_open().loop
        self._fault = ""
        runner = LockRunner(loop, clock=self._clock)
        runner.start()
        self._board.change(lambda s: dataclasses.replace(s, counters=dataclasses.replace(
            s.counters, lock_starts=s.counters.lock_starts + 1)))
        if not runner.running:
            raise Unavailable(f"the lock could not start: {loop.reason}")
        self._runner = runner
        self._board.change(lambda s: dataclasses.replace(s, mode=ServiceMode.LOCK))
        return self._publish()

    def stop_lock(self) -> WorkerStatus:
        """End the lock, or a calibration's collecting, if it runs; LEDs off in any case."""
        if self._collection is not None:
            self._end_collection("stopped by request")
        self._end_lock()
        if self._open is not None:
            self._open.loop.stop()
        return self._publish()

    def focus_now(self) -> FocusReport:
        """Focus now, until it ends or another thread asks it to stop (the mode becomes
        ``stopping``: asked before every reading and move); the mode is ``focus`` already (set
        when it was accepted)."""
        try:
            loop = self._ensure_open().loop
            self._fault = ""
            self._board.change(lambda s: dataclasses.replace(s, counters=dataclasses.replace(
                s.counters, focus_runs=s.counters.focus_runs + 1)))
            return loop.focus_now(self.config.focus, should_stop=lambda: (
                self._board.read().mode is ServiceMode.STOPPING))
        finally:
            self._board.change(lambda s: dataclasses.replace(s, mode=ServiceMode.IDLE))

    def set_offset(self, offset_um: float) -> WorkerStatus:
        """Hold ``z = z_focus + offset_um`` from the next step on (and in later runs)."""
        self.config = with_offset(self.config, offset_um)
        if self._open is not None:
            self._open.loop.lock_settings = self.config.lock
        return self._publish()

    def reload_model(self) -> WorkerStatus:
        """Read with the bundle the config names now (``current`` after an install or a
        rollback) on the open rig; only while nothing runs, so no run mixes two models. A
        bundle that does not load leaves the one in use."""
        mode = self._board.read().mode
        if mode is not ServiceMode.IDLE:
            raise Conflict(f"the {mode} is running; stop it before reloading the model")
        if self._open is None:  # opening reads the bundle the config names now
            self._ensure_open()
            return self._publish()
        opened = self._open
        try:
            hardware = self._load_model(opened.hardware.rig)
        except FocuslockError as exc:
            raise Unavailable(f"the model was not reloaded: {exc}; still reading with "
                              f"{opened.hardware.model.id}") from None
        self._open = self._rig_with_loop(hardware, opened.leds)
        log.info("model reloaded: %s (was %s)", hardware.model.id, opened.hardware.model.id)
        return self._publish()

    def start_calibration(self, request: CalibrationRequest, base: Path) -> CalibrationJob:
        """Start collecting a guided calibration's stacks of ``base``'s reading, from the
        drive's z now; only while nothing runs and no other calibration does."""
        if self._job is not None and self._job.phase.active:
            raise Conflict(f"a calibration is {self._job.phase} already; cancel it first "
                           f"(POST /api/calibration/cancel)")
        self._require_idle("calibrating")
        opened = self._ensure_open()
        rig = dataclasses.replace(opened.hardware.rig, illuminator=opened.leds,
                                  camera=opened.camera)  # the status and the views see it
        job = CalibrationJob(request, timestamped_dir(Path(self.config.log_dir), "calibrate"),
                             base, simulated=rig.scope is not None,
                             on_change=self._on_calibration)
        self._collection = FieldCollection(job, rig, self.config)
        self._job = job
        self._board.change(lambda s: dataclasses.replace(s, mode=ServiceMode.CALIBRATE))
        log.info("calibration started: %d stacks of %d planes into %s", request.stacks,
                 request.planes, job.folder)
        return job

    def next_calibration_field(self) -> CalibrationJob:
        """The user has moved to a new field: collect the next stack."""
        if self._collection is None or self._job is None:
            raise Conflict("no calibration is collecting stacks")
        self._collection.next_field()
        return self._job

    def cancel_calibration(self) -> CalibrationJob:
        """End the calibration with nothing installed: collecting stops with the drive back
        where it started, fine-tuning's process is killed."""
        job = self._job
        if job is None:
            raise Conflict("no calibration to cancel")
        if self._collection is not None:
            self._end_collection("cancelled")
        else:
            job.cancel("cancelled")
        return job

    def install_calibrated(self, force: bool) -> CalibrationJob:
        """Install the fine-tuned bundle (the previous one kept) and read with it; only while
        nothing runs, so no run mixes two models."""
        from controller.installed_models import install, reads_store

        self._require_idle("installing a model")
        job = self._job
        if job is None:
            raise Conflict("no calibration has run: nothing to install")
        bundle, note = job.installable(force)
        try:
            installed = install(self.config, bundle, note=note)
        except FocuslockError as exc:
            raise Conflict(f"not installed: {exc}") from None
        job.installed(installed.name, reads_store(self.config))
        if reads_store(self.config):
            self.reload_model()
        return job

    def rollback_model(self) -> WorkerStatus:
        """Make the previous installed bundle current again and read with it."""
        from controller.installed_models import reads_store, rollback

        self._require_idle("rolling the model back")
        try:
            rollback(self.config)
        except FocuslockError as exc:
            raise Conflict(f"not rolled back: {exc}") from None
        return self.reload_model() if reads_store(self.config) else self._publish()

    def home_drive(self) -> WorkerStatus:
        return self._drive_command("home", lambda drive: drive.home())

    def set_drive_position(self, z_um: float) -> WorkerStatus:
        """Declare where the drive is: not a move, but only a place an absolute move could go."""
        def within_travel(travel: tuple[float, float]) -> None:
            try:
                MoveGuard.for_drive(travel).check_target(z_um)
            except MoveRefused as exc:
                raise InvalidRequest(str(exc)) from None

        return self._drive_command("set its position",
                                   lambda drive: drive.set_position_um(z_um),
                                   check=within_travel)

    def clear_drive_fault(self) -> WorkerStatus:
        return self._drive_command("clear a fault", lambda drive: drive.clear_fault())

    # -- the thread -----------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            self._guarded(self._ensure_open)
            if self.config.service.autostart_lock and self._open is not None:
                self._guarded(self.start_lock)
            self._started.set()
            while True:
                try:
                    command = self._commands.get(timeout=self._wait_s())
                except queue.Empty:
                    command = None
                else:
                    if command is None:
                        break
                if command is not None:
                    self._execute(command)
                if self._runner is not None and self._runner.due_in() == 0:
                    self._guarded(self._lock_step)
                if self._collection is not None and self._collection.due:
                    self._guarded(self._calibration_step)
                self._beat()
        finally:
            self._started.set()
            self._shut_down()

    def _wait_s(self) -> float:
        tick = IDLE_TICK_S
        if self._notifier.watchdog_s is not None:
            tick = min(tick, self._notifier.watchdog_s / 4)
        if self._runner is not None:
            tick = min(tick, self._runner.due_in())
        if self._collection is not None and self._collection.due:
            tick = 0.0
        return tick

    def _execute(self, command: _Command) -> None:
        try:
            command.done.set_result(self._guarded(command.action, reraise=True))
        except BaseException as exc:  # delivered to the caller, who reports it
            command.done.set_exception(exc)

    def _guarded(self, action: Callable[[], Any], *, reraise: bool = False) -> Any:
        """Run ``action`` in the worker; an unexpected error becomes a safe-stop fault instead
        of killing the thread (the caller of a command gets it as Unavailable)."""
        try:
            return action()
        except ServiceError:
            if reraise:
                raise
        except Exception as exc:
            log.exception("focus loop: unexpected error")
            self._safe_stop(f"unexpected {type(exc).__name__}: {exc}")
            if reraise:
                raise Unavailable(self._fault) from exc
        finally:
            self._publish()
        return None

    def _beat(self) -> None:
        self._board.beat()
        now = time.monotonic()
        interval = self._notifier.watchdog_s
        if interval is not None and now - self._last_ping >= interval / 4:
            self._notifier.watchdog()
            self._last_ping = now

    def _ensure_open(self) -> _OpenRig:
        if self._open is not None:
            return self._open
        try:
            hardware = self._open_hardware()
        except FocuslockError as exc:
            self._fault = f"cannot open the hardware: {exc}"
            raise Unavailable(self._fault) from exc
        self._open = self._rig_with_loop(hardware, TrackedIlluminator(hardware.rig.illuminator))
        self._fault = ""
        log.info("hardware open: camera %s, board %s, model %s", self.config.camera.backend,
                 self.config.board.backend, hardware.model.id)
        return self._open

    def _rig_with_loop(self, hardware: Hardware, leds: TrackedIlluminator) -> _OpenRig:
        camera = KeepingCamera(hardware.rig.camera, leds, hardware.sensor.patterns[0].name)
        loop = FocusLoop.for_rig(hardware.rig, hardware.sensor, self.config, illuminator=leds,
                                 camera=camera, record_sink=self._on_record)
        return _OpenRig(hardware, leds, camera, loop)

    def _require_idle(self, what: str) -> None:
        mode = self._board.read().mode
        if mode is ServiceMode.CALIBRATE:
            raise Conflict(f"a calibration is collecting its stacks; cancel it (POST "
                           f"/api/calibration/cancel) before {what}")
        if mode is not ServiceMode.IDLE:
            raise Conflict(f"the {mode} is running; stop it before {what}")

    def _drive_command(self, what: str, action: Callable[[ReferencedDrive], object], *,
                       check: Callable[[tuple[float, float]], None] | None = None
                       ) -> WorkerStatus:
        self._require_idle(f"asking the drive to {what}")
        drive = self._ensure_open().hardware.rig.drive
        if not isinstance(drive, ReferencedDrive):
            raise Conflict(f"the {self.config.board.backend} focus drive cannot {what}: it "
                           f"never loses its position")
        if check is not None:
            check(drive.travel_um)
        try:
            action(drive)
        except FocuslockError as exc:
            raise Unavailable(f"the drive could not {what}: {exc}") from exc
        return self._publish()

    def _lock_step(self) -> None:
        runner = self._runner
        assert runner is not None  # stepped only while the lock runs
        runner.step()
        if not runner.running:
            self._end_lock()
            log.warning("lock ended: %s", runner.loop.reason)

    def _calibration_step(self) -> None:
        """One plane of the calibration's stacks; after the last one its fine-tuning starts
        (in a child process) and the rig is free again. A device that fails ends the job."""
        collection = self._collection
        assert collection is not None  # stepped only while collecting
        try:
            finished = collection.step()
        except FocuslockError as exc:
            self._end_collection(f"collecting failed: {exc}", failed=True)
            return
        if finished:
            self._collection = None
            self._board.change(lambda s: dataclasses.replace(s, mode=ServiceMode.IDLE))
            try:
                collection.job.start_fine_tuning()
            except OSError as exc:
                collection.job.fail(f"the fine-tuning could not start: {exc}")

    def _end_collection(self, why: str, *, failed: bool = False) -> None:
        """Stop collecting: LEDs off, the drive back where the calibration started, mode idle;
        the job says ``why``."""
        collection, self._collection = self._collection, None
        if collection is None:
            return
        where = collection.abandon()
        self._board.change(lambda s: dataclasses.replace(s, mode=ServiceMode.IDLE)
                           if s.mode is ServiceMode.CALIBRATE else s)
        if failed:
            collection.job.fail(f"{why}; {where}")
        else:
            collection.job.cancel(f"{why}; {where}")
        log.info("calibration ended: %s; %s", why, where)

    def _end_lock(self) -> None:
        self._runner = None
        self._board.change(lambda s: dataclasses.replace(s, mode=ServiceMode.IDLE)
                           if s.mode is ServiceMode.LOCK else s)

    def _on_record(self, record: StepRecord) -> None:
        """The loop's record sink: log, count, publish (in the worker, during a step)."""
        self._run_log.write(record)
        opened = self._open
        assert opened is not None  # records come from the open rig's loop
        self._metrics.observe_step(record, opened.loop.clock.now() - record.t)
        entry = MappingProxyType(self._history.append(step_entry(record, time.time())))
        self._board.change(lambda s: dataclasses.replace(
            s, last_step=entry, counters=dataclasses.replace(
                s.counters, step_counts=s.counters.step_counts.plus(record))))
        self._beat()
        self._publish()

    def _safe_stop(self, reason: str) -> None:
        """After an unexpected error: stop the drive and the LEDs as far as they still obey."""
        self._fault = reason
        self._end_lock()
        self._end_collection(reason, failed=True)
        if self._open is None:
            return
        for action in (self._open.hardware.rig.drive.stop, self._open.leds.off):
            try:
                action()
            except Exception as exc:  # keep going: the other device may still obey
                self._fault += f"; {action.__qualname__} also failed ({exc})"

    def _shut_down(self) -> None:
        """Leave the hardware safe and closed (a calibration cancelled, its fine-tuning
        killed); remember what was done for the caller."""
        done: list[str] = []
        self._end_collection("the service stopped")
        if self._job is not None and self._job.phase.active:
            self._job.cancel("the service stopped")
        opened, self._open = self._open, None
        if opened is not None:
            rig = opened.hardware.rig
            steps: list[tuple[str, Callable[[], None]]] = [
                ("loop stopped", opened.loop.stop), ("drive stopped", rig.drive.stop),
                ("LEDs off", opened.leds.off), ("rig closed", rig.close)]
            for what, action in steps:
                try:
                    action()
                    done.append(what)
                except Exception as exc:
                    done.append(f"{what} FAILED ({type(exc).__name__}: {exc})")
        else:
            done.append("no hardware was open")
        self._runner = None
        self._run_log.close()
        while True:  # commands that arrived after the stop are answered, not left hanging
            try:
                late = self._commands.get_nowait()
            except queue.Empty:
                break
            if late is not None:
                late.done.set_exception(Unavailable("the service is stopping"))
        self._board.change(lambda s: dataclasses.replace(s, mode=ServiceMode.IDLE))
        self.shutdown_summary = "stopped: " + ", ".join(done)
        log.info(self.shutdown_summary)

    def _publish(self) -> WorkerStatus:
        """Copy what other threads may read out of the worker's objects (worker thread only)."""
        opened = self._open
        loop = opened.loop if opened is not None else None
        state = LoopState.FAULT if self._fault else (
            loop.state if loop is not None else LoopState.IDLE)
        reason = self._fault or (loop.reason if loop is not None else "")
        z_um: float | None = None
        travel: tuple[float, float] | None = None
        if opened is not None:
            drive = opened.hardware.rig.drive
            try:
                z_um = drive.position_um()
                travel = drive.travel_um
            except FocuslockError:
                z_um = None
        retries = _link_retries(opened)
        new_retries = retries - self._retries_seen if retries >= self._retries_seen else retries
        self._retries_seen = retries
        lock = self.config.lock

        def edit(status: WorkerStatus) -> WorkerStatus:
            became_fault = state is LoopState.FAULT and status.state is not LoopState.FAULT
            return dataclasses.replace(
                status, state=state, reason=reason, z_um=z_um, offset_um=lock.offset_um,
                model_bias_um=loop.model_bias_um if loop is not None else 0.0,
                tolerance_um=lock.tolerance_um, rate_hz=lock.rate_hz, travel_um=travel,
                leds=opened.leds.showing if opened is not None else "off",
                model=opened.hardware.model if opened is not None else None,
                counters=dataclasses.replace(
                    status.counters, faults=status.counters.faults + became_fault,
                    link_retries=status.counters.link_retries + new_retries))

        published = self._board.change(edit)
        told = f"{state}: {reason}" if reason else str(state)
        if told != self._told_systemd:  # `systemctl status` shows it; not a datagram per step
            self._notifier.status(told)
            self._told_systemd = told
        announced = (published.state, published.mode, self._fault, published.offset_um,
                     published.model_bias_um,
                     published.leds, published.model, published.travel_um)
        if announced != self._announced:  # not the per-step fields: those are step events
            self._announced = announced
            self._on_change()
        return published


def _link_retries(opened: _OpenRig | None) -> int:
    """Packets the focus board's link has resent since it opened (0 without a board)."""
    drive = opened.hardware.rig.drive if opened is not None else None
    return drive.link.retransmissions if isinstance(drive, FocusBoard) else 0


def _open_run_log(config: Config) -> RunLog:
    folder = Path(config.log_dir)
    try:
        return RunLog(timestamped_dir(folder, "serve") / "steps.jsonl",
                      max_bytes=round(config.log_max_mb * 1e6), keep=config.log_keep)
    except OSError as exc:
        raise FocuslockError(f"cannot write the run log under {folder}: {exc}") from exc
