"""The focus-lock daemon: one worker thread owns the rig and the focus loop; everyone else asks.

Devices and the loop are not thread-safe, and a lock step must never interleave with a command,
so the worker thread is the only one that touches them. HTTP threads (or any caller) submit
commands (focus now, start or stop the lock, set the offset) to a queue and wait for the
worker's answer; what they read (status, health, the step history) is a snapshot the worker
publishes after every step and command. Between commands the worker paces the lock at
``lock.rate_hz`` in real time and pings the systemd watchdog, so a hung step stops the pings.

A fault (camera timeout, board fault, hardware that cannot be opened, an unexpected error)
leaves the worker and the server running: the status and health say what failed, and starting
the lock again retries once the cause is fixed. ``close()`` stops the loop, stops the drive,
switches the LEDs off and closes the rig, in the worker, and says what it did.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from controller.config import Config
from controller.errors import FocuslockError
from controller.hardware.interfaces import Illuminator
from controller.loop import FocusLoop, FocusReport, LoopState, Predictor
from controller.optics import Pattern
from controller.runlog import RunLog, StepRecord
from controller.service.history import Page, StepHistory
from controller.service.sdnotify import Notifier

if TYPE_CHECKING:
    from controller.hardware.rig import Rig

log = logging.getLogger(__name__)

Mode = Literal["idle", "lock", "focus"]
HISTORY_CAPACITY = 2000  # steps kept for /api/log: over 15 minutes at 2 Hz
IDLE_TICK_S = 1.0  # the worker wakes at least this often (watchdog, heartbeat)
COMMAND_GRACE_S = 10.0  # a command waits at most one step plus this for the worker
# A step may legitimately block this long: a board unplugged mid-step makes each of the step's
# calls and the safe stop wait for the port to come back (~30 s measured on the twin).
STALL_AFTER_S = 45.0


class ServiceError(FocuslockError):
    """A request the service cannot carry out; the message says why."""


class InvalidRequest(ServiceError):
    """A value out of range or of the wrong kind (HTTP 400)."""


class Conflict(ServiceError):
    """A request that contradicts what is running, e.g. focus now while locked (HTTP 409)."""


class Unavailable(ServiceError):
    """The hardware is faulted or cannot be opened, or the worker does not answer (HTTP 503)."""


class StillRunning(ServiceError):
    """Focus now did not report within the caller's timeout; it goes on (HTTP 504)."""


@dataclass
class Hardware:
    """What the worker runs the loop on."""

    rig: Rig
    predictor: Predictor
    model: dict[str, str] = field(default_factory=dict)  # "id", "path" of the model bundle


def open_hardware(config: Config) -> Hardware:
    """The rig and the model bundle the config asks for (the box's, or the virtual one)."""
    from controller.hardware.rig import open_rig
    from controller.model import DEFAULT_BUNDLE, FocusModel

    rig = open_rig(config)
    try:
        model = FocusModel.load(config.model.bundle or DEFAULT_BUNDLE, optics=rig.preset.optics,
                                pattern=rig.preset.autofocus)
    except BaseException:
        rig.close()
        raise
    digest = str(model.record.get("weights_sha256", ""))[:12]
    return Hardware(rig, model, {"id": f"{model.path.name}@{digest}", "path": str(model.path)})


@runtime_checkable
class ReferencedDrive(Protocol):
    """A drive that can lose its reference (the focus board after a reset) and be given it back:
    the service offers these so a headless box recovers without anyone freeing the port."""

    def home(self) -> float: ...

    def set_position_um(self, z_um: float) -> None: ...

    def clear_fault(self) -> None: ...


class TrackedIlluminator(Illuminator):
    """Passes every call to the LED board and remembers what it was last told successfully,
    so the status can say whether the LEDs are on ("unknown" after a failed call)."""

    def __init__(self, inner: Illuminator) -> None:
        self.inner = inner
        self.lit = "off"

    def show(self, pattern: Pattern) -> None:
        self.lit = "unknown"
        self.inner.show(pattern)
        self.lit = pattern.name

    def off(self) -> None:
        self.lit = "unknown"
        self.inner.off()
        self.lit = "off"


@dataclass
class _Command:
    action: Callable[[], dict[str, Any]]
    done: Future[dict[str, Any]] = field(default_factory=Future)


@dataclass
class _Counters:
    steps: int = 0
    moves: int = 0
    locked_steps: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    faults: int = 0
    lock_starts: int = 0
    focus_runs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"rejected": dict(self.rejected)}


class FocusService:
    """The daemon. Queries and commands may come from any thread; see the module docstring."""

    def __init__(self, config: Config, hardware: Callable[[], Hardware] | None = None, *,
                 notifier: Notifier | None = None, stall_after_s: float | None = None,
                 history_capacity: int = HISTORY_CAPACITY) -> None:
        self.config = config
        self._open_hardware = hardware or (lambda: open_hardware(config))
        self.notifier = notifier or Notifier(None)
        self._run_log = _open_run_log(config)
        self.stall_after_s = stall_after_s or STALL_AFTER_S
        self.history = StepHistory(history_capacity)
        self._lock_settings = config.lock
        self._commands: queue.Queue[_Command | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="focuslock-loop", daemon=True)
        self._started = threading.Event()
        self._started_at = time.monotonic()
        # the worker's own state: touched by the worker thread only
        self._hardware: Hardware | None = None
        self._loop: FocusLoop | None = None
        self._leds: TrackedIlluminator | None = None
        self._next_due = 0.0
        self._last_ping = -math.inf
        self._fault = ""  # a fault outside the loop (open failed, unexpected error)
        self._previous_state = ""
        self._told_systemd = ""
        # published by the worker, read by everyone: guarded by _published_lock
        self._published_lock = threading.Lock()
        self._mode: Mode = "idle"
        self._focusing = False  # focus now accepted or running: other commands must wait
        self._beat_at = time.monotonic()
        self._counters = _Counters()
        self._snapshot: dict[str, Any] = {}
        self._last_step: dict[str, Any] | None = None
        self._shutdown_summary = ""

    # -- life cycle (main thread) ----------------------------------------------------------------

    def start(self) -> None:
        """Start the worker and wait until it has opened the hardware (or failed to, which is a
        fault the status shows) and started the lock if the config says so."""
        self._publish()
        self._thread.start()
        self._started.wait()

    def close(self, timeout_s: float | None = None) -> tuple[bool, str]:
        """Stop the loop and the drive, LEDs off, close the rig; (clean, what was done)."""
        wait = timeout_s if timeout_s is not None else self._command_timeout()
        if self._thread.is_alive():
            self._commands.put(None)
            self._thread.join(wait)
            if self._thread.is_alive():
                return False, (f"the loop thread did not stop within {wait:.0f} s; the board's "
                               f"heartbeat deadline stops the motor and LEDs when we exit")
        elif self._thread.ident is None:
            self._shut_down()  # never started: only the run log is open
        return True, self._shutdown_summary or "stopped"

    # -- queries (any thread) -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._published_lock:
            status = dict(self._snapshot)
            status["mode"] = self._mode
            status["counters"] = self._counters.as_dict()
            status["last_step"] = self._last_step
        status["uptime_s"] = time.monotonic() - self._started_at
        status["healthy"], status["health"] = self.health()
        return status

    def health(self) -> tuple[bool, str]:
        """(healthy, why): the loop thread is alive, making progress and not in fault."""
        if not self._thread.is_alive():
            return False, "the loop thread is not running"
        with self._published_lock:
            quiet = time.monotonic() - self._beat_at
            state, reason = self._snapshot.get("state"), self._snapshot.get("reason", "")
        if quiet > self.stall_after_s:
            return False, f"the loop thread has made no progress for {quiet:.0f} s"
        if state == LoopState.FAULT:
            return False, f"fault: {reason}"
        return True, "ok"

    def steps_since(self, seq: int, limit: int) -> Page:
        return self.history.since(seq, limit)

    # -- commands (any thread; the worker carries them out) --------------------------------------

    def focus_now(self, timeout_s: float) -> dict[str, Any]:
        """Focus now; the report, or StillRunning after ``timeout_s`` (the focus goes on)."""
        with self._published_lock:
            if self._mode == "lock":
                raise Conflict("the lock is running; stop it first (POST /api/lock/stop)")
            if self._focusing:
                raise Conflict("focus now is already running")
            self._focusing = True
        try:
            command = self._submit(self._do_focus)
        except BaseException:
            with self._published_lock:
                self._focusing = False
            raise
        try:
            return command.done.result(timeout_s)
        except TimeoutError:
            raise StillRunning(f"focus now has not finished after {timeout_s:g} s; it goes on, "
                               f"see /api/status") from None

    def start_lock(self) -> dict[str, Any]:
        return self._call(self._do_start_lock)

    def stop_lock(self) -> dict[str, Any]:
        return self._call(self._do_stop_lock)

    def set_offset(self, offset_um: float) -> dict[str, Any]:
        """Hold ``z = z_focus + offset_um`` from the next step on (and in later runs)."""
        limit = self.offset_limit_um
        if not _is_finite_number(offset_um):
            raise InvalidRequest(f"offset_um: must be a finite number, got {offset_um!r}")
        if abs(offset_um) > limit:
            raise InvalidRequest(f"offset_um: must be within ±{limit:g} µm (half of "
                                 f"lock.travel_window_um), got {offset_um:g}")
        return self._call(lambda: self._do_set_offset(float(offset_um)))

    def home_drive(self) -> dict[str, Any]:
        """Seek the drive's min endstop: its position is known again."""
        return self._call(lambda: self._do_drive("home", lambda drive: drive.home()),
                          timeout_s=STALL_AFTER_S)  # may cross the whole travel

    def set_drive_position(self, z_um: float) -> dict[str, Any]:
        """Declare that the drive is at ``z_um`` now (re-reference without an endstop)."""
        if not _is_finite_number(z_um):
            raise InvalidRequest(f"z_um: must be a finite number, got {z_um!r}")
        return self._call(lambda: self._do_drive(
            "set its position", lambda drive: drive.set_position_um(float(z_um)),
            check=lambda travel: _within("z_um", float(z_um), travel)))

    def clear_drive_fault(self) -> dict[str, Any]:
        """Clear a fault the drive latched (heartbeat missed, endstop hit)."""
        return self._call(lambda: self._do_drive("clear a fault",
                                                 lambda drive: drive.clear_fault()))

    @property
    def offset_limit_um(self) -> float:
        return self.config.lock.travel_window_um / 2

    def _call(self, action: Callable[[], dict[str, Any]], *,
              timeout_s: float | None = None) -> dict[str, Any]:
        with self._published_lock:
            if self._focusing:
                raise Conflict("focus now is running; it ends by itself within "
                               f"{self.config.focus.max_steps} moves")
        command = self._submit(action)
        wait = self._command_timeout() + (timeout_s or 0.0)
        try:
            return command.done.result(wait)
        except TimeoutError:
            raise Unavailable(f"the loop thread did not answer within {wait:.0f} s") from None

    def _submit(self, action: Callable[[], dict[str, Any]]) -> _Command:
        if not self._thread.is_alive():
            raise Unavailable("the loop thread is not running")
        command = _Command(action)
        self._commands.put(command)
        return command

    def _command_timeout(self) -> float:
        return COMMAND_GRACE_S + 2 * self.config.camera.timeout_s + 1 / self.config.lock.rate_hz

    # -- the worker -----------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            self._guarded(self._ensure_open)
            if self.config.service.autostart_lock and self._hardware is not None:
                self._guarded(self._do_start_lock)
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
                if self._mode == "lock" and time.monotonic() >= self._next_due:
                    self._guarded(self._lock_step)
                self._beat()
        finally:
            self._started.set()
            self._shut_down()

    def _wait_s(self) -> float:
        tick = IDLE_TICK_S
        if self.notifier.watchdog_s is not None:
            tick = min(tick, self.notifier.watchdog_s / 4)
        if self._mode == "lock":
            tick = min(tick, max(0.0, self._next_due - time.monotonic()))
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
        now = time.monotonic()
        with self._published_lock:
            self._beat_at = now
        interval = self.notifier.watchdog_s
        if interval is not None and now - self._last_ping >= interval / 4:
            self.notifier.watchdog()
            self._last_ping = now

    def _ensure_open(self) -> FocusLoop:
        if self._loop is not None:
            return self._loop
        try:
            hardware = self._open_hardware()
        except FocuslockError as exc:
            self._fault = f"cannot open the hardware: {exc}"
            raise Unavailable(self._fault) from exc
        self._hardware = hardware
        rig = hardware.rig
        self._leds = TrackedIlluminator(rig.illuminator)
        self._loop = FocusLoop(
            rig.camera, rig.drive, self._leds, hardware.predictor, rig.preset.autofocus,
            lock=self._lock_settings, gates=self.config.gates, full_scale=rig.full_scale,
            camera_timeout_s=self.config.camera.timeout_s, clock=rig.clock,
            record_sink=self._on_record)
        self._fault = ""
        log.info("hardware open: camera %s, board %s, model %s", self.config.camera.backend,
                 self.config.board.backend, hardware.model.get("id", "(none)"))
        return self._loop

    def _do_start_lock(self) -> dict[str, Any]:
        if self._mode == "lock":
            raise Conflict("the lock is already running")
        loop = self._ensure_open()
        self._fault = ""
        loop.start_lock()
        self._counters.lock_starts += 1
        if loop.state is LoopState.FAULT:
            raise Unavailable(f"the lock could not start: {loop.reason}")
        self._set_mode("lock")
        self._next_due = time.monotonic()
        return self._snapshot_now()

    def _do_stop_lock(self) -> dict[str, Any]:
        if self._loop is not None:
            self._loop.stop()
        self._set_mode("idle")
        return self._snapshot_now()

    def _do_set_offset(self, offset_um: float) -> dict[str, Any]:
        self._lock_settings = dataclasses.replace(self._lock_settings, offset_um=offset_um)
        if self._loop is not None:
            self._loop.lock_settings = self._lock_settings
        return self._snapshot_now()

    def _do_drive(self, what: str, action: Callable[[ReferencedDrive], object], *,
                  check: Callable[[tuple[float, float]], None] | None = None) -> dict[str, Any]:
        if self._mode != "idle":
            raise Conflict(f"the {self._mode} is running; stop it before asking the drive to "
                           f"{what}")
        self._ensure_open()
        assert self._hardware is not None  # opened just now
        drive = self._hardware.rig.drive
        if not isinstance(drive, ReferencedDrive):
            raise Conflict(f"the {self.config.board.backend} focus drive cannot {what}: it "
                           f"never loses its position")
        if check is not None:
            check(drive.travel_um)
        try:
            action(drive)
        except FocuslockError as exc:
            raise Unavailable(f"the drive could not {what}: {exc}") from exc
        return self._snapshot_now()

    def _do_focus(self) -> dict[str, Any]:
        try:
            if self._mode == "lock":
                raise Conflict("the lock is running; stop it first (POST /api/lock/stop)")
            loop = self._ensure_open()
            self._fault = ""
            self._set_mode("focus")
            self._counters.focus_runs += 1
            try:
                report = loop.focus_now(self.config.focus)
            finally:
                self._set_mode("idle")
            return _report_dict(report)
        finally:
            with self._published_lock:
                self._focusing = False

    def _lock_step(self) -> None:
        loop = self._loop
        assert loop is not None  # the lock only runs on open hardware
        loop.lock_step()
        ended = loop.state is LoopState.FAULT or (
            loop.state is LoopState.LOST and not self._lock_settings.recover_from_lost)
        if ended:
            if loop.state is LoopState.LOST:
                loop.stop()  # LEDs off; the reason still says why the lock gave up
            self._set_mode("idle")
            log.warning("lock ended: %s", loop.reason)
            return
        period = 1.0 / self._lock_settings.rate_hz
        self._next_due += period
        if self._next_due < time.monotonic():  # slower than the rate: no burst to catch up
            self._next_due = time.monotonic()

    def _on_record(self, record: StepRecord) -> None:
        """The loop's record sink: log, count, publish (in the worker, during a step)."""
        self._run_log.write(record)
        entry = self.history.append(step_entry(record, time.time()))
        with self._published_lock:
            counters = self._counters
            counters.steps += 1
            counters.moves += record.move_um != 0.0
            counters.locked_steps += record.state == LoopState.LOCKED
            counters.rejected.update(entry["rejected"])
            self._last_step = entry
        self._beat()
        self._publish()

    def _safe_stop(self, reason: str) -> None:
        """After an unexpected error: stop the drive and the LEDs as far as they still obey."""
        self._fault = reason
        self._set_mode("idle")
        if self._hardware is None:
            return
        for action in (self._hardware.rig.drive.stop,
                       self._leds.off if self._leds else self._hardware.rig.illuminator.off):
            try:
                action()
            except Exception as exc:  # keep going: the other device may still obey
                self._fault += f"; {action.__qualname__} also failed ({exc})"

    def _shut_down(self) -> None:
        """Leave the hardware safe and closed; remember what was done for the caller."""
        done: list[str] = []
        hardware, self._hardware = self._hardware, None
        if hardware is not None:
            steps: list[tuple[str, Callable[[], None]]] = []
            if self._loop is not None:
                steps.append(("loop stopped", self._loop.stop))
            steps.append(("drive stopped", hardware.rig.drive.stop))
            if self._leds is not None:
                steps.append(("LEDs off", self._leds.off))
            steps.append(("rig closed", hardware.rig.close))
            for what, action in steps:
                try:
                    action()
                    done.append(what)
                except Exception as exc:
                    done.append(f"{what} FAILED ({type(exc).__name__}: {exc})")
        else:
            done.append("no hardware was open")
        self._set_mode("idle")
        self._run_log.close()
        while True:  # commands that arrived after the stop are answered, not left hanging
            try:
                late = self._commands.get_nowait()
            except queue.Empty:
                break
            if late is not None:
                late.done.set_exception(Unavailable("the service is stopping"))
        self._shutdown_summary = "stopped: " + ", ".join(done)
        log.info(self._shutdown_summary)

    # -- publishing -------------------------------------------------------------------------------

    def _set_mode(self, mode: Mode) -> None:
        with self._published_lock:
            self._mode = mode

    def _snapshot_now(self) -> dict[str, Any]:
        self._publish()
        return self.status()

    def _publish(self) -> None:
        """Copy what the HTTP side may read out of the worker's objects (worker thread only)."""
        loop = self._loop
        state = LoopState.FAULT.value if self._fault else (
            loop.state.value if loop is not None else LoopState.IDLE.value)
        reason = self._fault or (loop.reason if loop is not None else "")
        z_um: float | None = None
        travel: list[float] | None = None
        if self._hardware is not None:
            drive = self._hardware.rig.drive
            try:
                z_um = drive.position_um()
                travel = list(drive.travel_um)
            except FocuslockError:
                z_um = None
        snapshot = {
            "state": state,
            "reason": reason,
            "z_um": z_um,
            "offset_um": self._lock_settings.offset_um,
            "offset_limit_um": self.offset_limit_um,
            "tolerance_um": self._lock_settings.tolerance_um,
            "rate_hz": self._lock_settings.rate_hz,
            "travel_um": travel,
            "leds": self._leds.lit if self._leds is not None else "off",
            "model": dict(self._hardware.model) if self._hardware is not None else {},
            "hardware": {"camera": self.config.camera.backend,
                         "board": self.config.board.backend},
        }
        with self._published_lock:
            if state == LoopState.FAULT and self._previous_state != LoopState.FAULT:
                self._counters.faults += 1
            self._previous_state = state
            self._snapshot = snapshot
        told = f"{state}: {reason}" if reason else state
        if told != self._told_systemd:  # `systemctl status` shows it; not a datagram per step
            self.notifier.status(told)
            self._told_systemd = told


def step_entry(record: StepRecord, wall_time: float) -> dict[str, Any]:
    """A step record as the API shows it: gates as a list, wall-clock time, no NaN."""
    row = record.to_row()
    row["rejected"] = [gate for gate in record.rejected.split("+") if gate]
    row["time"] = wall_time
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in row.items()}


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _within(name: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise InvalidRequest(f"{name}: must be within the drive's travel [{low:g}, {high:g}] "
                             f"µm, got {value:g}")


def _report_dict(report: FocusReport) -> dict[str, Any]:
    return {"success": report.success, "moves": report.moves, "steps": report.steps,
            "z_um": report.z_um, "error_um": report.error_um, "state": report.state.value,
            "reason": report.reason}


def _open_run_log(config: Config) -> RunLog:
    from controller.runlog import timestamped_dir

    folder = Path(config.log_dir)
    try:
        return RunLog(timestamped_dir(folder, "serve") / "steps.jsonl",
                      max_bytes=round(config.log_max_mb * 1e6), keep=config.log_keep)
    except OSError as exc:
        raise FocuslockError(f"cannot write the run log under {folder}: {exc}") from exc
