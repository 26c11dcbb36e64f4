"""Focus now and the continuous focus lock: one step, the control law, and the state machine.

A step: light the autofocus pattern, capture a frame exposed after the drive settled
(``not_before=drive.settled_at``), check the frame, predict the correction
(``defocus_um = z_focus - z``), check the prediction, then move by the control law and let the
drive settle. Any failed gate means no move (docs/conventions.md, Safety). The lock holds
``z = z_focus + offset_um``, so the correction it wants is ``error_um = defocus_um + offset_um
- model_bias_um``. The model's bias is what it reads at the sharpest plane on this sample: focus
now measures it when it ends on the sharpness peak (three readings there, their median), and the
lock that follows holds that reading, not the model's own zero, so it keeps the plane the
sharpness found (a model reads a sample it never saw 0.3-1.5 µm off near focus). It is 0 until
then, and each focus now measures it afresh.

Control law (lock): no move when ``|error| <= dead_band``; else ``gain * error`` (a gain below 1
averages the model's noise while locked) or, for errors beyond ``capture_beyond_um``,
``capture_gain * error`` (a knock is corrected in one or two steps), then cut by a MoveGuard
(controller/move_guard.py) to ``max_step`` and to the travel window (± half of
``travel_window_um`` around where the lock started, inside the drive's own limits). Focus now
moves by ``focus.gain * error`` through its own guard: ``focus.max_step_um`` and the search
window (± half of ``focus.search_window_um`` around where it started). A correction its window
forbids entirely counts as a rejected reading ("window"), so a focus outside the window ends in
``lost``, not in pushing on a limit.

The sign is never guessed: a trusted reading whose sign is ambiguous
(``Prediction.sign_ambiguous``: a thin phase sample reads the same at +D and -D) and whose
distance is beyond the tolerance makes a probe move of ``probe_um`` instead (``probing``); the
next reading decides the sign from how the distance changed (then corrected in full), or probes
once more, or counts as rejected ("sign"); a reading rejected by a gate ends the probe with no
further move (controller/sign_probe.py). A probe is a move (focus now counts it) through the
same guard. Within the tolerance an ambiguous reading counts as 0: no sign is followed.

States (the same for focus now and the lock; documented for users in docs/loop.md)::

    idle ──start──────────────────────────────► focusing
    focusing ──K consecutive in-tolerance readings──► locked
    locked ──reading rejected──► holding (no move)
    holding ──trusted, in tolerance──► locked
    locked, holding ──trusted, out of tolerance──► focusing (and corrects)
    focusing, locked, holding, lost ──trusted, sign ambiguous, out of tolerance──► probing (probe)
    probing ──sign decided (or read), in or out of tolerance──► focusing or locked (corrects)
    probing ──sign undecided──► probing (a second probe)
    probing ──reading rejected, or sign undecided after 2 probes──► focusing (no move)
    focusing, probing ──focus now, trusted within focus.sharpness_finish_um──► finishing
    finishing ──three sharpness frames (a fourth a step past the bracket where the peak lies
                beyond it), a move to their peak (at the peak: three readings of the model
                there, its bias)──► idle (focus now ends)
    focusing, holding, probing ──N consecutive rejections──► lost (no moves, says why)
    lost ──trusted reading, if recover_from_lost──► focusing (or probing)
    lost ──run ends, if not recover_from_lost
    any running state ──camera, drive or model fault──► fault (drive stopped, LEDs off, run ends)
    any ──stop──► idle (LEDs off)

K is ``lock.in_tolerance_count``, N is ``lock.rejections_before_lost``. Focus now starts in
``focusing`` and ends in ``idle`` (within tolerance, out of moves, or stopped by request
between two moves: its ``should_stop``), ``lost`` or ``fault``. Every step is
handed to a record sink (the run log) as a StepRecord. The loop steps when asked: pacing the
lock and ending its run are the runner's job (controller/lock_runner.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from controller.clock import Clock, MonotonicClock
from controller.config import Config, FocusSettings, GateSettings, LockSettings
from controller.errors import FocuslockError
from controller.gates import Rejection, check_frame, check_prediction
from controller.hardware.interfaces import Camera, FocusDrive, Frame, Illuminator
from controller.move_guard import MoveGuard
from controller.prediction import Prediction
from controller.runlog import StepRecord
from controller.sensing import FocusSensor
from controller.sharpness_finish import (
    BIAS_READINGS,
    FINISH_MOVES,
    FINISH_SHORT,
    Landing,
    SharpnessMeter,
    bias_of,
    finish_centre,
    finish_stops,
    handover_move,
    sharpness_peak,
    step_beyond,
)
from controller.sign_probe import SignProbe, SignVerdict, judge_sign

if TYPE_CHECKING:
    from controller.hardware.rig import Rig

NO_MOVE_UM = 1e-6  # a clipped correction smaller than this is no correction
TRAVEL_WINDOW = "travel_window"  # the lock's guard (step records' ``limited``)
SEARCH_WINDOW = "search_window"  # focus now's guard
STOPPED_BY_REQUEST = "stopped by request"


class LoopState(StrEnum):
    IDLE = "idle"
    FOCUSING = "focusing"
    PROBING = "probing"  # a probe move made; the next reading decides the sign
    FINISHING = "finishing"  # focus now measures the sharpness around the model's focus
    LOCKED = "locked"
    HOLDING = "holding"
    LOST = "lost"
    FAULT = "fault"


def control_move(error_um: float, z_um: float, *, gain: float, dead_band_um: float,
                 guard: MoveGuard, capture_gain: float | None = None,
                 capture_beyond_um: float = math.inf) -> tuple[float, str]:
    """The move for a trusted ``error_um`` at ``z_um``, and which limit of ``guard`` clipped it
    ('' if none)."""
    if abs(error_um) <= dead_band_um:
        return 0.0, ""
    large = capture_gain is not None and abs(error_um) > capture_beyond_um
    return guard.clip(z_um, (capture_gain if large and capture_gain is not None else gain)
                      * error_um)


def window_rejection(error_um: float, guard: MoveGuard) -> Rejection:
    """The reading whose correction ``guard``'s window forbids entirely: no move, as for any
    untrusted reading."""
    return Rejection("window", f"the correction {error_um:+.2f} µm would leave "
                               f"{guard.describe()}")


@dataclass(frozen=True)
class FocusReport:
    """The outcome of focus now."""

    success: bool
    moves: int
    steps: int  # step records written: readings, the finish's frames, the report's own
    z_um: float | None  # where the drive ended
    error_um: float | None  # the last trusted reading's remaining correction
    state: LoopState
    reason: str
    model_bias_um: float = 0.0  # what the model reads where focus now ended on the sharpness


@dataclass(frozen=True)
class _Reading:
    z_um: float
    prediction: Prediction | None
    rejections: list[Rejection]


@dataclass(frozen=True)
class _Plan:
    """What one reading asks for: a correction ``error_um`` with its sign (the reading's own or
    a probe's), a probe (``error_um`` None), or nothing (``rejections``); the move and the limit
    that cut it."""

    sign: SignVerdict
    error_um: float | None
    move_um: float
    limited: str
    rejections: list[Rejection]


@dataclass(frozen=True)
class _Finished:
    """What focus now's finish did: its moves, what it moved to (None: nothing, it was stopped
    or a device failed)."""

    moves: int
    landing: Landing | None


@dataclass(frozen=True)
class _BiasReadings:
    """What reading the model at the sharpness peak found (for the report), the last trusted
    correction read there (None: none), and the last reading with its time and plan, whose
    record is focus now's report (None: none was taken, or a stop request ended them)."""

    said: str
    error_um: float | None
    last: tuple[float, _Reading, _Plan] | None


class FocusLoop:
    """Runs focus now or the lock on one camera, focus drive, illuminator and sensor (what a
    reading lights and how its frames become a prediction: controller/sensing.py)."""

    def __init__(self, camera: Camera, drive: FocusDrive, illuminator: Illuminator,
                 sensor: FocusSensor, *, lock: LockSettings,
                 gates: GateSettings, full_scale: int, camera_timeout_s: float = 2.0,
                 clock: Clock | None = None,
                 record_sink: Callable[[StepRecord], None] | None = None,
                 sharpness: SharpnessMeter | None = None) -> None:
        self.camera = camera
        self.drive = drive
        self.illuminator = illuminator
        self.sensor = sensor
        self.lock_settings = lock
        self.gate_settings = gates
        self.full_scale = full_scale
        self.camera_timeout_s = camera_timeout_s
        self.clock: Clock = clock or MonotonicClock()
        self.record_sink = record_sink
        self.sharpness = sharpness  # how focus now finishes (None: on the model alone)
        self.state = LoopState.IDLE
        self.reason = ""
        self._step = 0
        self._in_tolerance = 0
        self._rejections = 0
        self._probe: SignProbe | None = None  # the probe in flight (state probing)
        self._sign_relation = 0  # the network's sign on this run's sample, as a pair measured it
        self._lock_guard: MoveGuard | None = None  # set by start_lock
        # what the model reads at the sharpest plane of this sample (module docstring)
        self.model_bias_um = 0.0

    @classmethod
    def for_rig(cls, rig: Rig, sensor: FocusSensor, config: Config, *,
                illuminator: Illuminator | None = None, camera: Camera | None = None,
                record_sink: Callable[[StepRecord], None] | None = None) -> FocusLoop:
        """The loop on a rig's devices and clock, with the config's lock, gates and camera
        timeout; ``illuminator`` and ``camera`` stand in for the rig's own (the service passes
        LEDs that remember what they show and a camera that keeps the latest frame)."""
        return cls(camera or rig.camera, rig.drive, illuminator or rig.illuminator, sensor,
                   lock=config.lock, gates=config.gates,
                   full_scale=rig.full_scale, camera_timeout_s=config.camera.timeout_s,
                   clock=rig.clock, record_sink=record_sink,
                   sharpness=SharpnessMeter(rig.preset.ground_truth, rig.preset.optics))

    # -- the lock ---------------------------------------------------------------------------

    def start_lock(self) -> None:
        """Light the sensor's first pattern and fix the travel window around the current z."""
        self._reset(LoopState.FOCUSING)
        self._lock_guard = None
        settings = self.lock_settings
        if self.model_bias_um:
            self.reason = (f"holding the model's reading {self.model_bias_um:+.2f} µm as focus: "
                           f"what it read where focus now found the sharpness peak")
        try:
            self.illuminator.show(self.sensor.patterns[0])
            self._lock_guard = MoveGuard.around(
                self.drive.position_um(), settings.travel_window_um, self.drive.travel_um,
                max_step_um=settings.max_step_um, name=TRAVEL_WINDOW)
        except FocuslockError as exc:
            self._enter_fault(exc)

    def lock_step(self) -> StepRecord:
        """One lock step: read, gate, apply the control law, move, update the state."""
        guard = self._lock_guard
        if guard is None:
            raise RuntimeError("lock_step() before start_lock(): the lock has no travel window")
        t = self.clock.now()
        self._step += 1
        settings = self.lock_settings
        try:
            reading = self._read()
        except FocuslockError as exc:
            return self._record(t, None, None, [], 0.0, "", self._enter_fault(exc))
        prediction = reading.prediction
        plan = self._plan(reading, guard, settings.tolerance_um, settings.probe_um,
                          lambda wanted, z: control_move(
                              wanted, z, gain=settings.gain, dead_band_um=settings.dead_band_um,
                              guard=guard, capture_gain=settings.capture_gain,
                              capture_beyond_um=settings.capture_beyond_um))
        if plan.rejections:
            self._on_rejected(plan.rejections)
            return self._record(t, reading.z_um, prediction, plan.rejections, 0.0, "",
                                self.reason)
        if self.state is LoopState.LOST and not settings.recover_from_lost:
            return self._record(t, reading.z_um, prediction, [], 0.0, "", self.reason)
        if plan.error_um is None:
            self._on_probe(plan.sign)
        else:
            self._on_trusted(abs(plan.error_um) <= settings.tolerance_um, plan.sign)
        move = plan.move_um
        if abs(move) >= NO_MOVE_UM:
            try:
                self.drive.move_by(move)
            except FocuslockError as exc:
                return self._record(t, reading.z_um, prediction, [], 0.0, plan.limited,
                                    self._enter_fault(exc), plan.sign)
        else:
            move = 0.0
        return self._record(t, reading.z_um, prediction, [], move, plan.limited, self.reason,
                            plan.sign)

    # -- focus now ---------------------------------------------------------------------------

    def focus_now(self, settings: FocusSettings,
                  should_stop: Callable[[], bool] | None = None) -> FocusReport:
        """Move until a trusted reading is within tolerance, or, where the finish is on and
        the model puts focus near, until the finish ends on the sharpness (``_finish_focus``);
        at most ``settings.max_steps`` moves, never out of the search window around where it
        started; stop early (lost) after ``rejections_before_lost`` consecutive rejections, or
        (idle) when ``should_stop()`` says so: it is asked before every reading and every move,
        from this thread."""
        self._reset(LoopState.FOCUSING)
        self.model_bias_um = 0.0  # this run measures it afresh, on whatever sample is there now
        moves = 0
        error: float | None = None
        z: float | None = None
        landed_um: float | None = None
        try:
            self.illuminator.show(self.sensor.patterns[0])
            guard = MoveGuard.around(self.drive.position_um(), settings.search_window_um,
                                     self.drive.travel_um, max_step_um=settings.max_step_um,
                                     name=SEARCH_WINDOW)
        except FocuslockError as exc:
            self._enter_fault(exc)
            return self._report(False, 0, None, None)

        while True:
            if should_stop is not None and should_stop():
                return self._stopped(moves, z, error)
            t = self.clock.now()
            self._step += 1
            try:
                reading = self._read()
            except FocuslockError as exc:
                self._record(t, z, None, [], 0.0, "", self._enter_fault(exc))
                return self._report(False, moves, z, error)
            z = reading.z_um
            prediction = reading.prediction
            plan = self._plan(reading, guard, settings.tolerance_um, settings.probe_um,
                              lambda wanted, z_um: control_move(
                                  wanted, z_um, gain=settings.gain, dead_band_um=0.0,
                                  guard=guard))
            refused = bool(plan.rejections) or prediction is None
            finish = self._finish_around(reading, plan, refused, guard, settings, moves,
                                         landed_um)
            if finish is not None:
                centre, self.reason = finish
                return self._finish_focus(t, reading, plan, refused, guard, settings,
                                          should_stop, centre, moves, error)
            if refused:
                self._on_rejected(plan.rejections)
                self._record(t, z, prediction, plan.rejections, 0.0, "", self.reason)
                if self.state is LoopState.LOST:
                    self._lights_off()
                    return self._report(False, moves, z, error)
                continue
            assert prediction is not None
            error = plan.error_um
            if error is not None and abs(error) <= settings.tolerance_um:
                return self._ended(True, f"within {settings.tolerance_um} µm after {moves} "
                                         f"moves", t, z, moves, error, prediction, plan.sign)
            if moves >= settings.max_steps:
                still = (f"{error:+.2f} µm" if error is not None else
                         f"{prediction.distance:.2f} µm (sign undecided)")
                return self._ended(False, f"still {still} from focus after {moves} moves "
                                          f"(limit {settings.max_steps})", t, z, moves, error,
                                   prediction, plan.sign)
            if should_stop is not None and should_stop():
                return self._ended(False, STOPPED_BY_REQUEST, t, z, moves, error, prediction,
                                   plan.sign)
            move = plan.move_um
            if error is None:
                self._on_probe(plan.sign)
            else:
                self._on_trusted(False, plan.sign)
                handover = self._toward_finish(plan, guard, z, settings, moves)
                if handover is not None:
                    move = handover
                self.reason = "; ".join(filter(None, (
                    plan.sign.reason, f"moved {move:+.2f} µm",
                    f"{FINISH_SHORT * settings.sharpness_step_um:.2f} µm short of the model's "
                    f"focus, to finish there" if handover is not None else "")))
            try:
                self.drive.move_by(move)
            except FocuslockError as exc:
                self._record(t, z, prediction, [], 0.0, plan.limited, self._enter_fault(exc),
                             plan.sign)
                return self._report(False, moves, z, error)
            moves += 1
            # where a trusted correction put focus, for a finish if the next reading is refused
            landed_um = (None if error is None or plan.limited
                         else z + error - self._held_offset_um)
            self._record(t, z, prediction, [], move, plan.limited, self.reason, plan.sign)

    def _finish_focus(self, t: float, reading: _Reading, plan: _Plan, refused: bool,
                      guard: MoveGuard, settings: FocusSettings,
                      should_stop: Callable[[], bool] | None, centre_um: float, moves: int,
                      error: float | None) -> FocusReport:
        """Focus now's last phase, from the reading that started it (``refused``: by a gate):
        the finish around ``centre_um`` on the sharpness, the model's bias read at its peak,
        and the report."""
        z: float | None = reading.z_um
        if not refused:
            error = plan.error_um
        self._rejections = 0
        self.state = LoopState.FINISHING
        self._record(t, z, reading.prediction, plan.rejections, 0.0, "", self.reason, plan.sign)
        finished = self._finish(guard, settings, centre_um, should_stop,
                                settings.max_steps - moves)
        moves += finished.moves
        if self.state is LoopState.FAULT:
            return self._report(False, moves, z, error)
        if finished.landing is None:
            return self._stopped(moves, z, error)
        z = self.drive.position_um()
        # in focus at the sharpness peak, or by the model where the sharpness cannot say and
        # the model's reading was trusted
        in_focus = finished.landing is Landing.PEAK or (
            finished.landing is Landing.MODEL and not refused)
        reason = f"{self.reason}, after {moves} moves"
        if finished.landing is Landing.PEAK:
            bias = self._measure_bias(guard, settings, should_stop)
            if self.state is LoopState.FAULT:
                return self._report(False, moves, z, error)
            reason = f"{reason}; {bias.said}"
            if bias.error_um is not None:
                error = bias.error_um - self.model_bias_um
            if bias.last is not None:  # the report's record is the last reading's
                t, last, last_plan = bias.last
                return self._ended(in_focus, reason, t, z, moves, error, last.prediction,
                                   last_plan.sign, last_plan.rejections)
        self._step += 1  # the report's own record, after the finish's
        return self._ended(in_focus, reason, self.clock.now(), z, moves, error, None,
                           SignVerdict())

    def _ended(self, success: bool, reason: str, t: float, z_um: float | None, moves: int,
               error_um: float | None, prediction: Prediction | None, sign: SignVerdict,
               rejections: list[Rejection] | None = None) -> FocusReport:
        """Focus now ends idle: its last record (the reading it ended on, if any), LEDs off,
        the report."""
        self.state, self.reason = LoopState.IDLE, reason
        self._record(t, z_um, prediction, rejections or [], 0.0, "", reason, sign)
        self._lights_off()
        return self._report(success, moves, z_um, error_um)

    def _stopped(self, moves: int, z_um: float | None, error_um: float | None) -> FocusReport:
        """Focus now stopped by request between two moves: LEDs off, idle."""
        self.state, self.reason = LoopState.IDLE, STOPPED_BY_REQUEST
        self._lights_off()
        return self._report(False, moves, z_um, error_um)

    def _report(self, success: bool, moves: int, z_um: float | None,
                error_um: float | None) -> FocusReport:
        """Focus now's report as the loop stands: its state, reason, steps and bias."""
        return FocusReport(success, moves, self._step, z_um, error_um, self.state, self.reason,
                           self.model_bias_um)

    def _toward_finish(self, plan: _Plan, guard: MoveGuard, z_um: float,
                       settings: FocusSettings, moves: int) -> float | None:
        """The correction that hands over to the finish (``handover_move``), where the finish
        is on with its three moves left after this one and the law's move was not cut; None:
        the law's move."""
        if plan.error_um is None or plan.limited or not self._can_finish(settings, moves + 1):
            return None
        return handover_move(z_um, plan.error_um - self._held_offset_um, settings, guard)

    def _can_finish(self, settings: FocusSettings, moves: int) -> bool:
        """The finish is on, and its moves fit in what focus now has left after ``moves``."""
        return (self.sharpness is not None and settings.sharpness_finish_um > 0
                and moves + FINISH_MOVES <= settings.max_steps)

    def _finish_around(self, reading: _Reading, plan: _Plan, refused: bool, guard: MoveGuard,
                       settings: FocusSettings, moves: int,
                       landed_um: float | None) -> tuple[float, str] | None:
        """Where focus now finishes on the sharpness after this reading (``refused``: by a
        gate), and why (``finish_centre``); None where the finish is off or fewer than its
        three moves are left."""
        if not self._can_finish(settings, moves):
            return None
        prediction = reading.prediction
        return finish_centre(
            reading.z_um, settings, guard,
            to_focus_um=(None if refused or plan.error_um is None
                         else plan.error_um - self._held_offset_um),
            refusal="; ".join(r.reason for r in plan.rejections) if refused else None,
            distance_um=math.inf if prediction is None else prediction.distance,
            landed_um=landed_um)

    def _finish(self, guard: MoveGuard, settings: FocusSettings, focus_um: float,
                should_stop: Callable[[], bool] | None, moves_left: int) -> _Finished:
        """Measure the sharpness where the drive stands and ``sharpness_step_um`` either side
        of the model's ``focus_um``, then move to the peak (controller/sharpness_finish.py).
        Where the peak lies beyond that bracket and two of ``moves_left`` remain, measure a
        step past its sharpest end first (``_finish_target``). A frame a gate refuses ends the
        measuring, and the finish moves to the model's focus. A device failure is a fault;
        ``should_stop()`` is asked before every frame and every move."""
        meter = self.sharpness
        assert meter is not None
        step = settings.sharpness_step_um
        offset = self._held_offset_um
        moves = 0
        measured_z: list[float] = []
        measured: list[float] = []
        landing: Landing | None = None
        try:
            self.illuminator.show(meter.pattern)
            stops = list(finish_stops(self.drive.position_um(), focus_um, step))
            while landing is None:
                if should_stop is not None and should_stop():
                    return _Finished(moves, None)
                t = self.clock.now()
                frame, rejections = self._checked_frame(max(self.drive.settled_at, t))
                z = self.drive.position_um()
                value = None
                if rejections:
                    target, landing = focus_um + offset, Landing.MODEL
                    self.reason = (f"kept the model's focus: a sharpness frame was refused "
                                   f"({'; '.join(r.reason for r in rejections)})")
                else:
                    value = meter.measure(frame.image)
                    measured_z.append(z)
                    measured.append(value)
                    if stops:
                        target = stops.pop(0)
                        self.reason = f"sharpness {value:.3f} at {z:.2f} µm"
                    else:
                        target, landing = self._finish_target(
                            measured_z, measured, focus_um, step, guard,
                            extend=moves + 2 <= moves_left, probe_um=settings.probe_um)
                        if landing is not None:
                            target += offset
                            if abs(target - z) < settings.tolerance_um / 2:
                                target = z  # already there: the model's focus was the peak
                move, limited = guard.clip(z, target - z)
                if should_stop is not None and should_stop():
                    return _Finished(moves, None)
                if abs(move) >= NO_MOVE_UM:
                    self.drive.move_by(move)
                    moves += 1
                else:
                    move = 0.0
                self._step += 1
                self._record(t, z, None, rejections, move, limited, self.reason,
                             sharpness=value)
        except FocuslockError as exc:
            self._enter_fault(exc)
            landing = None
        return _Finished(moves, landing)

    def _finish_target(self, z_um: list[float], sharpness: list[float], focus_um: float,
                       step_um: float, guard: MoveGuard, *, extend: bool,
                       probe_um: float) -> tuple[float, Landing | None]:
        """Where the finish goes after its measurements and what that is (None: a stop to
        measure at first), with the reason set: the peak of the three around ``focus_um``
        (``sharpness_peak``); where it lies beyond the bracket and the finish may ``extend``,
        a step past the sharpest end (``step_beyond``), if ``guard`` lets the drive get there
        in one move no longer than a probe (so it cannot worsen the focus by more); after that
        step, the peak of the parabola through it, the sharpest end and that end's
        neighbour."""
        here = z_um[-1]
        if len(z_um) == 3:
            peak = sharpness_peak(z_um, sharpness, focus_um, step_um)
            if peak.landing is Landing.SEARCHED and extend:
                beyond = step_beyond(z_um, sharpness, step_um)[2]
                if abs(beyond - here) <= probe_um and not guard.clip(here, beyond - here)[1]:
                    self.reason = (f"{peak.reason.split(':')[0]}: measuring a step further, "
                                   f"at {beyond:.2f} µm")
                    return beyond, None
        else:  # the same three again, and the step past them
            neighbour, best, _ = step_beyond(z_um[:3], sharpness[:3], step_um)
            near = [neighbour, best, 3]
            peak = sharpness_peak([z_um[i] for i in near], [sharpness[i] for i in near],
                                  z_um[best], step_um, centre="the bracket's end")
            if peak.landing is Landing.MODEL:  # flat past the end: not the model's focus
                peak = replace(peak, landing=Landing.SEARCHED)
        self.reason = peak.reason
        return peak.z_um, peak.landing

    def _measure_bias(self, guard: MoveGuard, settings: FocusSettings,
                      should_stop: Callable[[], bool] | None) -> _BiasReadings:
        """Read the model ``BIAS_READINGS`` times where the finish landed (the sharpness peak
        plus the offset) and keep its bias there (``bias_of``: the median of the corrections
        asked for, with rules). The last reading's record is left to focus now's report. A
        device failure is a fault; ``should_stop()`` is asked before every reading."""
        self._probe = None  # a probe's first reading is not this plane's
        readings: list[float] = []
        last: tuple[float, _Reading, _Plan] | None = None
        try:
            self.illuminator.show(self.sensor.patterns[0])
            for _ in range(BIAS_READINGS):
                if last is not None:
                    t, reading, plan = last
                    self._record(t, reading.z_um, reading.prediction, plan.rejections, 0.0,
                                 "", "reading the model at the sharpness peak", plan.sign)
                    last = None
                if should_stop is not None and should_stop():
                    return _BiasReadings(f"the model's bias was not measured: "
                                         f"{STOPPED_BY_REQUEST}", None, None)
                t = self.clock.now()
                self._step += 1
                reading = self._read()
                plan = self._plan(reading, guard, settings.tolerance_um, settings.probe_um,
                                  lambda error_um, z_um: (0.0, ""))
                if not plan.rejections and plan.error_um is not None:
                    readings.append(plan.error_um)
                last = t, reading, plan
        except FocuslockError as exc:
            return _BiasReadings(self._enter_fault(exc), None, None)
        bias, said = bias_of(readings, settings)
        if bias is not None:
            self.model_bias_um = bias
        return _BiasReadings(said, readings[-1] if readings else None, last)

    def stop(self) -> None:
        """End any run: LEDs off, state idle (a fault stays a fault until the next start)."""
        self._lights_off()
        if self.state is not LoopState.FAULT:
            self.state = LoopState.IDLE

    # -- internals ----------------------------------------------------------------------------

    @property
    def _held_offset_um(self) -> float:
        """What a reading's signed defocus is shifted by to give the correction: the lock's
        offset, less the model's bias on this sample."""
        return self.lock_settings.offset_um - self.model_bias_um

    def _reset(self, state: LoopState) -> None:
        self.state = state
        self.reason = ""
        self._step = 0
        self._in_tolerance = 0
        self._rejections = 0
        self._probe = None
        self._sign_relation = 0

    def _read(self) -> _Reading:
        """Capture a frame per pattern of the sensor, each exposed after the drive settled and
        after its LEDs were lit; check them, predict if they are good. A single pattern stays
        lit from the start of the run."""
        settled_at = self.drive.settled_at
        patterns = self.sensor.patterns
        images = []
        z: float | None = None
        for pattern in patterns:
            not_before = settled_at
            if len(patterns) > 1:
                self.illuminator.show(pattern)
                not_before = max(settled_at, self.clock.now())
            frame, rejections = self._checked_frame(not_before)
            if z is None:
                z = self.drive.position_um()
            if rejections:  # a bad frame is not worth a prediction, and may not survive one
                if len(patterns) > 1:
                    rejections = [Rejection(r.gate, f"{pattern.name}: {r.reason}")
                                  for r in rejections]
                return _Reading(z, None, rejections)
            images.append(frame.image)
        assert z is not None  # a sensor lights at least one pattern
        prediction = self.sensor.read(images)
        return _Reading(z, prediction, check_prediction(prediction, self.sensor.min_confidence))

    def _checked_frame(self, not_before: float) -> tuple[Frame, list[Rejection]]:
        """A frame exposed at or after ``not_before``, and what the frame gates make of it."""
        frame = self.camera.capture(not_before=not_before, timeout_s=self.camera_timeout_s)
        return frame, check_frame(frame, settled_at=not_before, now=self.clock.now(),
                                  full_scale=self.full_scale, settings=self.gate_settings)

    def _plan(self, reading: _Reading, guard: MoveGuard, tolerance_um: float, probe_um: float,
              law: Callable[[float, float], tuple[float, str]]) -> _Plan:
        """What a reading asks for under the mode's ``law`` (error, z -> move, limit; a sign a
        probe decided is corrected in full): a correction its window forbids entirely is a
        rejected reading ("window")."""
        prediction = reading.prediction
        if prediction is None or reading.rejections:
            return _Plan(SignVerdict(), None, 0.0, "", reading.rejections)
        sign = judge_sign(prediction, reading.z_um, self._probe, guard=guard,
                          tolerance_um=tolerance_um, probe_um=probe_um, pair=self.sensor.pair,
                          sign_relation=self._sign_relation,
                          default_error_um=self.gate_settings.expected_error_um)
        if sign.rejection is not None:
            return _Plan(sign, None, 0.0, "", [sign.rejection])
        if sign.defocus_um is None:
            return _Plan(sign, None, sign.probe_um, sign.limited, [])
        error = sign.defocus_um + self._held_offset_um
        # a probed sign is corrected in full: a gain below 1 would leave a residual on a side
        # the next reading, as blind to it, would have to probe anew
        move, limited = (guard.clip(reading.z_um, error) if sign.probed_sign
                         else law(error, reading.z_um))
        if limited == guard.name and abs(move) < NO_MOVE_UM and abs(error) > tolerance_um:
            return _Plan(sign, error, 0.0, "", [window_rejection(error, guard)])
        return _Plan(sign, error, move, limited, [])

    def _on_rejected(self, rejections: list[Rejection]) -> None:
        """A rejected reading: no move; a probe in flight ends undecided (no guess)."""
        self._rejections += 1
        self._in_tolerance = 0
        self._probe = None
        if self.state is LoopState.LOST:
            return
        if self._rejections >= self.lock_settings.rejections_before_lost:
            self._go_lost(rejections)
            return
        if self.state is LoopState.LOCKED:
            self.state = LoopState.HOLDING
        elif self.state is LoopState.PROBING:
            self.state = LoopState.FOCUSING
        self.reason = "; ".join(r.reason for r in rejections)

    def _on_probe(self, sign: SignVerdict) -> None:
        self._rejections = 0
        self._in_tolerance = 0
        self._probe = sign.probe
        self.state = LoopState.PROBING
        self.reason = sign.reason

    def _go_lost(self, rejections: list[Rejection]) -> None:
        self.state = LoopState.LOST
        last = "; ".join(r.reason for r in rejections)
        self.reason = (f"{self._rejections} consecutive untrusted readings, not moving; "
                       f"last: {last}")

    def _on_trusted(self, in_tolerance: bool, sign: SignVerdict) -> None:
        """A trusted reading with a sign (its own, or the one a probe decided)."""
        self._rejections = 0
        self._probe = None
        if sign.sign_relation:
            self._sign_relation = sign.sign_relation
        count = self.lock_settings.in_tolerance_count
        if not in_tolerance:
            self._in_tolerance = 0
            self.state = LoopState.FOCUSING
            self.reason = "correcting"
        else:
            self._in_tolerance += 1
            if (self.state in (LoopState.LOCKED, LoopState.HOLDING)
                    or self._in_tolerance >= count):
                self.state = LoopState.LOCKED
                self.reason = "in tolerance"
            else:
                self.state = LoopState.FOCUSING
                self.reason = f"in tolerance {self._in_tolerance}/{count}"
        if sign.reason:
            self.reason = f"{sign.reason}; {self.reason}"

    def _enter_fault(self, exc: FocuslockError) -> str:
        """Safe stop: halt the drive, LEDs off, and say what failed."""
        self.state = LoopState.FAULT
        problems = [f"{type(exc).__name__}: {exc}"]
        try:
            self.drive.stop()
        except FocuslockError as stop_exc:
            problems.append(f"drive stop also failed ({stop_exc})")
        try:
            self.illuminator.off()
        except FocuslockError as off_exc:
            problems.append(f"LEDs off also failed ({off_exc})")
        self.reason = "safe stop: " + "; ".join(problems)
        return self.reason

    def _lights_off(self) -> None:
        try:
            self.illuminator.off()
        except FocuslockError as exc:
            self._enter_fault(exc)

    def _record(self, t: float, z_um: float | None, prediction: Prediction | None,
                rejections: list[Rejection], move_um: float, limited: str,
                reason: str, sign: SignVerdict | None = None,
                sharpness: float | None = None) -> StepRecord:
        """Hand the step to the record sink; ``error_um`` is the correction acted on (the
        reading's own sign, or the one a probe decided)."""
        sign = sign or SignVerdict()
        error = None
        defocus = sign.defocus_um if sign.defocus_um is not None else (
            None if prediction is None else prediction.defocus_um)
        if defocus is not None and math.isfinite(defocus):
            error = defocus + self._held_offset_um
        record = StepRecord(
            t=t, step=self._step, state=self.state.value, z_um=z_um,
            defocus_um=None if prediction is None else float(prediction.defocus_um),
            confidence=None if prediction is None else float(prediction.confidence),
            error_um=error, rejected="+".join(r.gate for r in rejections), move_um=move_um,
            limited=limited, reason=reason, cue="" if prediction is None else prediction.cue,
            cue_reason="" if prediction is None else prediction.cue_reason,
            parallax_um=None if prediction is None else prediction.parallax_um,
            parallax_confidence=None if prediction is None else prediction.parallax_confidence,
            distance_um=None if prediction is None else prediction.distance_um,
            sign_ambiguous=prediction is not None and prediction.sign_ambiguous,
            probe_um=move_um if sign.probe_um else 0.0, probed_sign=sign.probed_sign,
            sharpness=sharpness)
        if self.record_sink is not None:
            self.record_sink(record)
        return record
