"""Trapezoidal step ramps and the axis that runs them: position, limits, homing, stopping.

The ramp is pure arithmetic (steps done as a function of time), so the simulated hardware can
model motion analytically and the RP2040 layer can feed its PIO step generator from a timer with
the same numbers. The axis owns the logical position and whether it is known at all.
"""

import math

from . import protocol

TYPE_CHECKING = False  # mypy reads the imports below; MicroPython has no typing module
if TYPE_CHECKING:
    from .config import MotionConfig
    from .hal import StepperDriver


class Ramp:
    """Move ``distance`` whole steps: accelerate from ``v0`` to at most ``v_max``, cruise, stop.

    Speeds in steps/s, acceleration in steps/s². A distance too short to stop from ``v0`` with
    ``accel`` (a stop commanded at speed) is covered with a proportionally harder deceleration.
    """

    def __init__(self, distance: int, v_max: float, accel: float, v0: float = 0.0) -> None:
        if distance < 0 or v_max <= 0 or accel <= 0 or v0 < 0:
            raise ValueError("ramp needs distance >= 0, v_max > 0, accel > 0, v0 >= 0")
        self.distance = distance
        self.v0 = v0
        v_max = max(v_max, v0)
        stop_distance = v0 * v0 / (2 * accel)
        if distance == 0:
            peak, self.decel, d_acc, d_cruise = v0, accel, 0.0, 0.0
        elif distance < stop_distance:
            peak, self.decel, d_acc, d_cruise = v0, v0 * v0 / (2 * distance), 0.0, 0.0
        else:
            peak = min(v_max, math.sqrt(accel * distance + v0 * v0 / 2))
            self.decel = accel
            d_acc = (peak * peak - v0 * v0) / (2 * accel)
            d_cruise = max(0.0, distance - d_acc - peak * peak / (2 * accel))
        self.accel = accel
        self.peak = peak
        self._d_acc = d_acc
        self._d_cruise = d_cruise
        self._t_acc = (peak - v0) / accel
        self._t_cruise_end = self._t_acc + (d_cruise / peak if peak > 0 else 0.0)
        self.duration = self._t_cruise_end + (peak / self.decel if distance else 0.0)

    def offset_at(self, t: float) -> float:
        """Exact (fractional) steps travelled after ``t`` seconds."""
        if t <= 0:
            return 0.0
        if t >= self.duration:
            return float(self.distance)
        if t < self._t_acc:
            return self.v0 * t + self.accel * t * t / 2
        if t < self._t_cruise_end:
            return self._d_acc + self.peak * (t - self._t_acc)
        tau = t - self._t_cruise_end
        offset = self._d_acc + self._d_cruise + self.peak * tau - self.decel * tau * tau / 2
        return min(offset, float(self.distance))

    def steps_at(self, t: float) -> int:
        """Whole steps emitted after ``t`` seconds (a step is emitted once it is complete)."""
        return min(self.distance, int(self.offset_at(t) + 1e-6))

    def velocity_at(self, t: float) -> float:
        if t <= 0 or t >= self.duration:
            return 0.0 if t > 0 else self.v0
        if t < self._t_acc:
            return self.v0 + self.accel * t
        if t < self._t_cruise_end:
            return self.peak
        return max(0.0, self.peak - self.decel * (t - self._t_cruise_end))


MOVE = 0
HOME = 1


class Axis:
    """The focus axis: the logical position in steps, whether it is known, and the move running.

    ``stepper`` is the hardware layer's step generator (see hal_sim.Stepper for the contract).
    Positions are logical steps; they mean something only while ``known`` is true.
    """

    def __init__(self, stepper: "StepperDriver", config: "MotionConfig") -> None:
        self.stepper = stepper
        self.config = config
        self.position = 0
        self.target = 0
        self.known = False
        self._origin = 0
        self._direction = 1
        self._kind = MOVE
        self._ramp: "Ramp | None" = None
        self._start_us = 0

    @property
    def moving(self) -> bool:
        return self._ramp is not None

    def check_target(self, target: int) -> None:
        """Raise CommandError unless a move to ``target`` is allowed now."""
        from .errors import CommandError

        if not self.known:
            raise CommandError(protocol.E_POSITION_UNKNOWN, "home or set the position first")
        low, high = self.config.limit_min, self.config.limit_max
        if target < low or target > high:
            raise CommandError(
                protocol.E_LIMIT, f"target {target} outside [{low}, {high}]")

    def move_to(self, target: int, speed: float, now_us: int) -> Ramp:
        self.check_target(target)
        return self._start(MOVE, target - self.position, speed, now_us)

    def home(self, speed: float, now_us: int) -> Ramp:
        """Seek the min endstop; the position becomes ``home_position`` where it closes."""
        c = self.config
        span = (c.limit_max - c.home_position) * 5 // 4 + 1
        self.known = False
        return self._start(HOME, -span, speed, now_us)

    def _start(self, kind: int, delta: int, speed: float, now_us: int) -> Ramp:
        ramp = Ramp(abs(delta), speed, self.config.accel)
        self._direction = 1 if delta >= 0 else -1
        self._origin = self.position
        self._kind = kind
        self._ramp = ramp
        self._start_us = now_us
        self.target = self.position + delta
        self.stepper.enable(True)
        halt_min = self._direction < 0
        self.stepper.run(ramp, self._direction, now_us, halt_min, not halt_min)
        return ramp

    def stop(self, now_us: int) -> None:
        """Decelerate to a stop at the configured acceleration (or at once if nearly still)."""
        if self._ramp is None:
            return
        self.update(now_us)
        if self._ramp is None:
            return
        speed = self._ramp.velocity_at((now_us - self._start_us) / 1e6)
        remaining = abs(self.target - self.position)
        distance = min(remaining, math.ceil(speed * speed / (2 * self.config.accel)))
        if distance == 0 or speed < 1:
            self.stepper.halt(now_us)
            self._finish(self.position)
            return
        ramp = Ramp(distance, speed, self.config.accel, speed)
        self._origin = self.position
        self._ramp = ramp
        self._start_us = now_us
        self.target = self.position + self._direction * distance
        self.stepper.run(ramp, self._direction, now_us, self._direction < 0, self._direction > 0)

    def update(self, now_us: int) -> int:
        """Advance the position; return a fault code when the move ended badly, else 0."""
        if self._ramp is None:
            return protocol.FAULT_NONE
        self.position = self._origin + self._direction * self.stepper.steps_done(now_us)
        if not self.stepper.done(now_us):
            return protocol.FAULT_NONE
        halted_by_endstop = self.stepper.halted_by_endstop
        kind = self._kind
        self._finish(self.position)
        if kind == HOME:
            if halted_by_endstop:
                self.position = self.target = self.config.home_position
                self.known = True
                return protocol.FAULT_NONE
            return protocol.FAULT_HOMING
        if halted_by_endstop:
            self.known = False
            return protocol.FAULT_ENDSTOP
        return protocol.FAULT_NONE

    def _finish(self, position: int) -> None:
        self._ramp = None
        self.position = self.target = position

    def set_position(self, steps: int) -> None:
        self.position = self.target = steps
        self.known = True
