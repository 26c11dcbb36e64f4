"""The service's state and its status: one mode, and frozen snapshots that any thread may read.

The worker thread publishes a WorkerStatus after every step and command; a StatusSnapshot adds
what is true at the moment of asking (uptime, health). The API's JSON, the Prometheus metrics
and, through the JSON, the dashboard all read these snapshots; nothing in them changes after
they are made, so a reader never sees half of an update.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from controller.config import BoardBackend, CameraBackend, Config, offset_limit_um
from controller.lock_runner import StepCounts
from controller.loop import LoopState
from controller.service.hardware import ModelInfo


class ServiceMode(StrEnum):
    """What the service is doing, besides the loop's own state. The only transitions::

        idle ──focus now accepted (any thread)──► focus ──focus now ended (worker)──► idle
        focus ──stop requested (any thread)──► stopping ──focus now ended (worker)──► idle
        idle ──lock started (worker)──► lock ──lock stopped or ended (worker)──► idle
        idle ──calibration started (worker)──► calibrate ──stacks collected, cancelled,
                                                           stopped or failed (worker)──► idle

    While in ``focus`` every other command but a stop is refused, so focus now never waits
    behind one; in ``stopping`` the worker ends focus now before its next reading or move. In
    ``calibrate`` the worker collects a guided calibration's stacks (calibration.py); the lock,
    focus now and the drive commands are refused meanwhile."""

    IDLE = "idle"
    LOCK = "lock"
    FOCUS = "focus"
    STOPPING = "stopping"  # focus now, asked to stop
    CALIBRATE = "calibrate"  # collecting a calibration's stacks

    @property
    def running(self) -> str:
        """What a refusal says runs: "running", or "stopping" for a focus now asked to stop."""
        return "stopping" if self is ServiceMode.STOPPING else "running"


@dataclass(frozen=True)
class Backends:
    """The configured hardware backends."""

    camera: CameraBackend
    board: BoardBackend


@dataclass(frozen=True)
class ServiceCounters:
    """What has happened since the service started."""

    step_counts: StepCounts = field(default_factory=StepCounts)  # every step, lock or focus now
    faults: int = 0  # times the state became fault
    lock_starts: int = 0
    focus_runs: int = 0
    link_retries: int = 0  # packets resent to the focus board (controller/hardware/board_link.py)

    def to_json(self) -> dict[str, Any]:
        counts = self.step_counts
        return {"steps": counts.steps, "moves": counts.moves,
                "locked_steps": counts.locked_steps, "rejected": dict(counts.rejected),
                "decided": dict(counts.decided), "faults": self.faults,
                "lock_starts": self.lock_starts, "focus_runs": self.focus_runs,
                "link_retries": self.link_retries}


@dataclass(frozen=True)
class WorkerStatus:
    """What the worker thread last published: the loop, the lock settings in force, the drive,
    the LEDs, the model, the mode and the counters."""

    state: LoopState  # fault also when the hardware cannot be opened or a step failed oddly
    reason: str
    z_um: float | None  # None: no drive open, or it cannot say
    offset_um: float
    model_bias_um: float  # what the model reads at the sharpest plane focus now found (0: none)
    offset_limit_um: float
    tolerance_um: float
    rate_hz: float
    travel_um: tuple[float, float] | None
    leds: str  # what the LEDs show: a pattern's name, "off" or "unknown"
    model: ModelInfo | None  # None until the hardware is open
    hardware: Backends
    mode: ServiceMode
    counters: ServiceCounters
    last_step: Mapping[str, Any] | None  # the newest /api/log entry

    @classmethod
    def before_start(cls, config: Config) -> WorkerStatus:
        """The status before the worker has opened anything."""
        lock = config.lock
        return cls(state=LoopState.IDLE, reason="", z_um=None, offset_um=lock.offset_um,
                   model_bias_um=0.0,
                   offset_limit_um=offset_limit_um(lock), tolerance_um=lock.tolerance_um,
                   rate_hz=lock.rate_hz, travel_um=None, leds="off", model=None,
                   hardware=Backends(config.camera.backend, config.board.backend),
                   mode=ServiceMode.IDLE, counters=ServiceCounters(), last_step=None)


@dataclass(frozen=True)
class Health:
    healthy: bool  # the loop thread is alive, making progress and not in fault
    reason: str  # "ok", or why not


@dataclass(frozen=True)
class StatusSnapshot:
    """The service's status at one moment: ``GET /api/status`` is its ``to_json()``."""

    worker: WorkerStatus
    uptime_s: float
    health: Health

    def to_json(self) -> dict[str, Any]:
        w = self.worker
        return {
            "state": w.state.value,
            "reason": w.reason,
            "z_um": w.z_um,
            "offset_um": w.offset_um,
            "model_bias_um": w.model_bias_um,
            "offset_limit_um": w.offset_limit_um,
            "tolerance_um": w.tolerance_um,
            "rate_hz": w.rate_hz,
            "travel_um": None if w.travel_um is None else list(w.travel_um),
            "leds": w.leds,
            "model": {} if w.model is None else w.model.to_json(),
            "hardware": {"camera": w.hardware.camera, "board": w.hardware.board},
            "mode": w.mode.value,
            "counters": w.counters.to_json(),
            "last_step": None if w.last_step is None else dict(w.last_step),
            "uptime_s": self.uptime_s,
            "healthy": self.health.healthy,
            "health": self.health.reason,
        }


class StatusBoard:
    """Where the worker publishes its status and any thread reads it, under one lock: the
    status is replaced whole, never changed in place. It also keeps when the worker last showed
    that it makes progress (its heartbeat)."""

    def __init__(self, status: WorkerStatus) -> None:
        self._lock = threading.Lock()
        self._status = status
        self._beat_at = time.monotonic()

    def read(self) -> WorkerStatus:
        with self._lock:
            return self._status

    def change(self, edit: Callable[[WorkerStatus], WorkerStatus]) -> WorkerStatus:
        """Replace the status by ``edit(status)`` atomically (``edit`` may raise to refuse)."""
        with self._lock:
            self._status = edit(self._status)
            return self._status

    def beat(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._beat_at = now

    def quiet_s(self) -> float:
        """Seconds since the last heartbeat."""
        with self._lock:
            return time.monotonic() - self._beat_at
