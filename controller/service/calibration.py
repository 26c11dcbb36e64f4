"""A guided calibration inside the service (docs/calibrate.md, "From the dashboard"): what one
job asked for, how far it is, each collected stack's ground-truth curve, and its fine-tuning.

The service owns the camera and the board, so ``focuslock calibrate`` cannot run beside it; the
job does the same round through the API instead. Its stacks are collected by the worker thread a
plane at a time (controller/service/calibration_collect.py), waiting between stacks for the user
to bring a new field into view (``POST /api/calibration/next``). Fine-tuning and the comparison
on the held-out stack are ``focuslock calibrate --from STACKS --no-install`` itself, in a child
process: TensorFlow's memory and a crash stay out of the service, which serves its status all
the while. Installing is a separate request, so the person decides after seeing both RMSEs.

Phases::

    collecting ⇄ waiting (for the next field) ─► training ─► ready ─► installed
    any of the first four ─► cancelled (nothing installed) or failed (the message says why)

Any thread reads a job (``to_json``); the worker and the fine-tuning's watcher thread advance it,
and every change is handed to ``on_change`` (the ``calibration`` event of /api/events).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from controller.groundtruth import GroundTruthError, find_focus, sharpness_curve
from controller.service.errors import Conflict, InvalidRequest, Unavailable
from controller.stackio import FocalStack

# training/calibrate.py refuses fewer (one stack held out, two to fine-tune and validate on);
# checked here before minutes of collecting (tests/service/test_calibration.py holds them equal)
MIN_STACKS = 3
MAX_STACKS = 50
DEFAULT_STACKS = 10  # training/calibrate.py STACKS (the test holds them equal)
DEFAULT_RANGE_UM = 30.0  # focuslock calibrate's defaults
DEFAULT_STEP_UM = 1.0
MAX_RANGE_UM = 200.0
MAX_STEP_UM = 20.0
MIN_PLANES = 7  # controller/groundtruth.py fits its peak through seven planes
MAX_PLANES = 401
MAX_EPOCHS = 1000
FIGURE = "before-after.png"  # training/calibrate.py's FIGURE, in the fine-tuning's folder
SUMMARY = "calibration.json"
LOG = "calibrate.log"
KILL_WAIT_S = 30.0


class Phase(StrEnum):
    COLLECTING = "collecting"
    WAITING = "waiting"  # for the user to bring the next field into view
    TRAINING = "training"  # fine-tuning and comparing, in the child process
    READY = "ready"  # both RMSEs known; install or not
    INSTALLED = "installed"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        """Whether the job still runs: another one may not start."""
        return self in (Phase.COLLECTING, Phase.WAITING, Phase.TRAINING)


@dataclass(frozen=True)
class CalibrationRequest:
    """What ``POST /api/calibration`` asks for."""

    stacks: int = DEFAULT_STACKS
    range_um: float = DEFAULT_RANGE_UM
    step_um: float = DEFAULT_STEP_UM
    max_epochs: int | None = None  # None: focuslock calibrate's default

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> CalibrationRequest:
        """The request a JSON body asks for; InvalidRequest naming the first bad field."""
        stacks = _integer(body, "stacks", DEFAULT_STACKS, MIN_STACKS, MAX_STACKS)
        range_um = _number(body, "range_um", DEFAULT_RANGE_UM, MAX_RANGE_UM)
        step_um = _number(body, "step_um", DEFAULT_STEP_UM, MAX_STEP_UM)
        epochs = body.get("max_epochs")
        request = cls(stacks, range_um, step_um,
                      None if epochs is None else _integer(body, "max_epochs", 0, 1, MAX_EPOCHS))
        if not MIN_PLANES <= request.planes <= MAX_PLANES:
            raise InvalidRequest(f"range_um {range_um:g} in steps of {step_um:g} µm makes "
                                 f"{request.planes} planes a stack; the ground truth needs "
                                 f"{MIN_PLANES} to {MAX_PLANES}")
        return request

    @property
    def offsets_um(self) -> list[float]:
        """The planes around the drive's z, as ``focuslock collect`` spaces them."""
        from controller.collect import plane_offsets

        return plane_offsets(self.range_um, self.step_um)

    @property
    def planes(self) -> int:
        return len(self.offsets_um)


def _integer(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(f"{name}: must be an integer in [{low}, {high}], got {value!r}")
    return value


def _number(body: Mapping[str, Any], name: str, default: float, high: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not (math.isfinite(value) and 0 < value <= high):
        raise InvalidRequest(f"{name}: must be a number in (0, {high:g}] µm, got {value!r}")
    return float(value)


def check_fine_tuning_possible() -> None:
    """Refuse a calibration on a box whose Python has no TensorFlow, before anything moves."""
    if importlib.util.find_spec("tensorflow") is None:
        raise Unavailable("fine-tuning needs TensorFlow, which this box's Python does not have: "
                          "install the train extra (docs/calibrate.md), or collect with "
                          "`focuslock calibrate --collect-only` and fine-tune on a desktop")


@dataclass(frozen=True)
class Curve:
    """One collected stack's ground truth: sharpness against z, and where it peaks."""

    file: str
    z_um: tuple[float, ...]
    sharpness: tuple[float, ...]
    focus_z_um: float | None  # None: no peak found (``error`` says why)
    error: str = ""

    @classmethod
    def of(cls, file: str, stack: FocalStack) -> Curve:
        """The stack's curve and its peak, as training will label it; a curve without a peak
        (focus outside the stack, an empty field) shows why."""
        try:
            z, sharpness = sharpness_curve(stack)
        except GroundTruthError as exc:
            return cls(file, (), (), None, str(exc))
        z_um = tuple(round(float(v), 3) for v in z)
        curve = tuple(round(float(v), 4) for v in sharpness)
        try:
            focus: float | None = round(find_focus(stack).focus_z_um, 3)
        except GroundTruthError as exc:
            return cls(file, z_um, curve, None, str(exc))
        return cls(file, z_um, curve, focus)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "z_um": list(self.z_um), "sharpness": list(self.sharpness),
                "focus_z_um": self.focus_z_um, "error": self.error}


class CalibrationJob:
    """One guided calibration: its request, its folder (``log_dir/calibrate-<time>``, laid out
    as focuslock calibrate's), its progress and its result."""

    def __init__(self, request: CalibrationRequest, folder: Path, base: Path, *,
                 simulated: bool, on_change: Callable[[dict[str, Any]], None]) -> None:
        self.request = request
        self.folder = folder
        self.base = base
        self.simulated = simulated  # the next field is the twin's next sample, not the user's
        self._on_change = on_change
        self._lock = threading.Lock()
        self._phase = Phase.COLLECTING
        self._message = ""
        self._stack = 1  # the stack being collected, from 1
        self._plane = 0  # its planes taken
        self._collect_s = 0.0  # time spent taking planes (not waiting for the user)
        self._curves: list[Curve] = []
        self._result: dict[str, Any] | None = None
        self._installed: str | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._watcher: threading.Thread | None = None
        self._cancelling = False
        self._change(Phase.COLLECTING, f"stack 1 of {request.stacks}")

    # -- reading (any thread) ---------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        with self._lock:
            return self._phase

    @property
    def stacks_dir(self) -> Path:
        return self.folder / "stacks"

    @property
    def tune_dir(self) -> Path:
        return self.folder / "tune"

    def figure(self) -> bytes:
        """The before/after figure; Conflict until the comparison has made it."""
        path = self.tune_dir / FIGURE
        with self._lock:
            ready = self._result is not None
        if not ready or not path.is_file():
            raise Conflict("no before/after figure yet: the calibration has not compared the "
                           "two bundles")
        return path.read_bytes()

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return self._json_locked()

    def _json_locked(self) -> dict[str, Any]:
        request = self.request
        total = request.stacks * request.planes
        done = (self._stack - 1) * request.planes + self._plane
        collecting = self._phase in (Phase.COLLECTING, Phase.WAITING)
        left = (self._collect_s / done * (total - done)) if collecting and done else None
        return {"phase": self._phase.value, "message": self._message,
                "folder": str(self.folder), "base": self.base.name,
                "stacks": request.stacks, "range_um": request.range_um,
                "step_um": request.step_um, "planes": request.planes,
                "stack": self._stack, "plane": self._plane, "planes_done": done,
                "planes_total": total, "time_left_s": None if left is None else round(left, 1),
                "curves": [c.to_json() for c in self._curves], "result": self._result,
                "installed": self._installed}

    # -- collecting (the worker thread) ---------------------------------------------------------

    def plane_taken(self, seconds: float) -> None:
        with self._lock:
            self._plane += 1
            self._collect_s += seconds
            message = (f"stack {self._stack} of {self.request.stacks}: plane {self._plane} of "
                       f"{self.request.planes}")
        self._change(Phase.COLLECTING, message)

    def stack_done(self, curve: Curve) -> None:
        """A stack is written; wait for the next field, unless it was the last one."""
        with self._lock:
            self._curves.append(curve)
            stack = self._stack
        if stack == self.request.stacks:
            return
        where = ("the twin shows the next seed's sample when you go on" if self.simulated else
                 "move the sample to a new field and focus roughly")
        self._change(Phase.WAITING, f"stack {stack} of {self.request.stacks} done: {where}, "
                                    f"then ask for the next field")

    def next_field(self) -> int:
        """The next stack starts (its index from 0); Conflict unless the job waits for it."""
        with self._lock:
            if self._phase is not Phase.WAITING:
                raise Conflict(f"the calibration is not waiting for a new field (it is "
                               f"{self._phase})")
            self._stack += 1
            self._plane = 0
            stack = self._stack
        self._change(Phase.COLLECTING, f"stack {stack} of {self.request.stacks}")
        return stack - 1

    # -- fine-tuning (a child process, watched by a thread) ---------------------------------------

    def start_fine_tuning(self) -> None:
        """``focuslock calibrate --from`` the collected stacks, without installing."""
        command = [sys.executable, "-m", "controller.cli", "calibrate",
                   "--from", str(self.stacks_dir), "--base", str(self.base),
                   "--out", str(self.tune_dir), "--no-install", "--no-reload"]
        if self.request.max_epochs is not None:
            command += ["--max-epochs", str(self.request.max_epochs)]
        with open(self.folder / LOG, "wb") as log:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=self.folder,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        with self._lock:
            self._child = child
        self._watcher = threading.Thread(target=self._watch, args=(child, time.monotonic()),
                                         name="focuslock-calibration", daemon=True)
        self._watcher.start()
        self._change(Phase.TRAINING, f"fine-tuning {self.base.name} on "
                                     f"{self.request.stacks - 1} stacks and comparing both "
                                     f"bundles on the last one: minutes")

    def _watch(self, child: subprocess.Popen[bytes], started: float) -> None:
        code = child.wait()
        with self._lock:
            cancelled = self._cancelling
        if cancelled:
            self._change(Phase.CANCELLED, "cancelled while fine-tuning: nothing installed")
            return
        try:
            result = json.loads((self.tune_dir / SUMMARY).read_text())
            before, after = (_finite(result[which]["rmse_um"]) for which in ("before", "after"))
            refused = {which: _finite(result[which].get("refused"))
                       for which in ("before", "after")}
            verdict = str(result["verdict"])
        except (OSError, ValueError, KeyError, TypeError):
            self._change(Phase.FAILED, f"fine-tuning failed (exit status {code}): "
                                       f"{_last_line(self.folder / LOG)}")
            return
        with self._lock:
            self._result = {"before_rmse_um": before, "after_rmse_um": after,
                            "before_refused": refused["before"],
                            "after_refused": refused["after"],
                            "no_move_rmse_um": _finite(result.get("no_move_rmse_um")),
                            "improved": result["improved"], "verdict": verdict,
                            "held_out": result["held_out"],
                            "bundle": result["bundle"], "seconds": round(
                                time.monotonic() - started, 1)}
        advice = "install it" if result["improved"] else "installing it is not advised"
        self._change(Phase.READY, f"held-out RMSE {_um(before)} before, {_um(after)} after; "
                                  f"{verdict}: {advice}"
                                  f"{_refusing(refused['after'])}")

    # -- the end ---------------------------------------------------------------------------------

    def installable(self, force: bool) -> tuple[Path, str]:
        """The fine-tuned bundle and the install's note; Conflict unless it is ready and better
        (or ``force``)."""
        with self._lock:
            phase, result = self._phase, self._result
        if phase is not Phase.READY or result is None:
            raise Conflict(f"nothing to install: the calibration is {phase}")
        if not result["improved"] and not force:
            raise Conflict(f"{result['verdict']}; send {{\"force\": true}} to install it "
                           f"anyway")
        note = (f"calibrate (service): held-out RMSE {_um(result['before_rmse_um'])} -> "
                f"{_um(result['after_rmse_um'])} ({', '.join(result['held_out'])})")
        return Path(result["bundle"]), note

    def installed(self, name: str, read_now: bool) -> None:
        with self._lock:
            self._installed = name
        self._change(Phase.INSTALLED, f"installed {name}" + (
            "; the service reads it now" if read_now else
            "; the config does not read the installed bundles (model.bundle)"))

    def cancel(self, why: str) -> None:
        """End the job with nothing installed: the fine-tuning's child is killed and waited for;
        the collecting part is the worker's to undo first. Conflict once it has ended."""
        with self._lock:
            phase, child = self._phase, self._child
            if not phase.active and phase is not Phase.READY:
                raise Conflict(f"no calibration to cancel: it is {phase}")
            self._cancelling = phase is Phase.TRAINING
        if phase is Phase.TRAINING and child is not None and self._watcher is not None:
            child.kill()
            self._watcher.join(KILL_WAIT_S)
            return
        self._change(Phase.CANCELLED, f"{why}: nothing installed")

    def fail(self, why: str) -> None:
        self._change(Phase.FAILED, why)

    def _change(self, phase: Phase, message: str) -> None:
        with self._lock:
            self._phase = phase
            self._message = message
            data = self._json_locked()
        self._on_change(data)


def calibration_json(job: CalibrationJob | None) -> dict[str, Any]:
    """``GET /api/calibration``: the latest job, or that none has run."""
    if job is not None:
        return job.to_json()
    return {"phase": "none", "message": "no calibration has run since the service started"}


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError as exc:
        return f"(its log {path} cannot be read: {exc})"
    return lines[-1].strip() if lines else f"(nothing in its log {path})"


def _finite(value: float | None) -> float | None:
    """An RMSE or a share as JSON carries it: None for a bundle that read no frame (NaN)."""
    return value if value is not None and math.isfinite(value) else None


def _refusing(share: float | None) -> str:
    """What the fine-tuned bundle's gates make of the held-out frames: a bundle that reads a
    new field well but refuses it does not lock on it either."""
    return "" if share is None else f"; its gates refuse {share:.0%} of the held-out frames"


def _um(value: float | None) -> str:
    return "none (no frame read)" if value is None else f"{value:.2f} µm"
