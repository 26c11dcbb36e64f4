"""The digital twin: the virtual microscope with the real focus-board firmware in the loop.

The firmware runs under the MicroPython unix port behind a pty (controller/hardware/board_sim.py)
and the host talks to it with the real driver (controller/hardware/board.py), so every move and
every LED goes through the protocol, the firmware's limits, ramps and heartbeat. The firmware's
simulated motor is the focus mechanism: its true step count, divided by steps per µm, is where
the virtual camera sees the sample from; the LEDs the firmware has lit are what the camera
renders under. Time is real (the firmware keeps its own clock).

A scenario (drift, knocks, the sample leaving the view, a blocked or overexposed light path) is
a list of timed events played against the twin while the loop runs.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from controller.clock import Clock, MonotonicClock
from controller.config import TwinSettings
from controller.hardware.board import BoardSettings, FocusBoard
from controller.hardware.board_sim import SimBoardSettings, SimulatedBoard
from controller.hardware.interfaces import Illuminator
from controller.hardware.rig import Rig, twin_frame_shape
from controller.hardware.virtual import FocalPlane, VirtualCamera, VirtualScope
from controller.optics import LedArray, Pattern, Preset

TWIN_TRAVEL_UM = (-500.0, 500.0)
BLOCKED, OVEREXPOSED = 0.0, 40.0  # light scales of the dark and saturated intervals
SIDE_CHANNEL_WAIT_S = 0.5  # the firmware publishes its state file within ~20 ms of a change


def lit_pattern(levels: dict[int, int], leds: LedArray) -> Pattern | None:
    """The pattern the board's LED levels (index -> 0..255) make, None when all are dark."""
    lit = tuple(leds.led(i, brightness=v / 255) for i, v in sorted(levels.items()) if v > 0)
    return Pattern("board", lit) if lit else None


class TwinIlluminator(Illuminator):
    """The board's LEDs, returning only once the firmware's published state shows them.

    The board replies before its simulated hardware layer writes the state file the camera
    renders from; real LEDs light within microseconds of the reply, so waiting here for the
    side channel keeps the twin as prompt as the real thing.
    """

    def __init__(self, board: FocusBoard, board_sim: SimulatedBoard) -> None:
        self.board = board
        self.board_sim = board_sim

    def show(self, pattern: Pattern) -> None:
        self.board.show(pattern)
        self._await(dict(self.board.led_levels(pattern)))

    def off(self) -> None:
        self.board.off()
        self._await({})

    def _await(self, levels: dict[int, int]) -> None:
        deadline = time.monotonic() + SIDE_CHANNEL_WAIT_S
        while self.board_sim.lit_leds() != levels and time.monotonic() < deadline:
            time.sleep(0.002)


@dataclass
class DigitalTwin:
    """The rig (for the loop) and the simulated board (for the scenario and fault injection)."""

    rig: Rig
    board: SimulatedBoard
    steps_per_um: float

    @property
    def scope(self) -> VirtualScope:
        assert self.rig.scope is not None  # a twin always has its scope
        return self.rig.scope

    def close(self) -> None:
        self.rig.close()


def open_twin(system: Preset, settings: TwinSettings, *, steps_per_um: float = 10.0,
              frame_shape: tuple[int, int] | None = None, workdir: Path | None = None,
              clock: Clock | None = None) -> DigitalTwin:
    """Start the firmware, connect the driver, and couple both to a virtual scope."""
    from controller.sim import make_sample

    clock = clock or MonotonicClock()
    shape = frame_shape or twin_frame_shape(system, settings)
    system = dataclasses.replace(system, optics=dataclasses.replace(system.optics,
                                                                    frame_shape=shape))
    sample = make_sample(settings.sample, shape, system.optics.pixel_um, settings.seed)
    closers = []
    if workdir is None:
        temporary = tempfile.TemporaryDirectory(prefix="focuslock-twin-")
        closers.append(temporary.cleanup)
        workdir = Path(temporary.name)
    start_steps = round(settings.start_z_um * steps_per_um)
    leds_dmm = [[round(x * 10), round(y * 10), round(d * 10)]
                for x, y, d in system.leds.positions_mm]
    board_sim = SimulatedBoard(workdir, SimBoardSettings(motor_steps=start_steps, leds=leds_dmm))
    board_sim.start()
    closers.insert(0, board_sim.close)
    try:
        board = FocusBoard(BoardSettings(port=board_sim.port, steps_per_um=steps_per_um,
                                         travel_um=TWIN_TRAVEL_UM, settle_s=settings.settle_s,
                                         leds=system.leds)).connect()
        # After power-up the firmware does not vouch for its position; the twin knows where the
        # mechanism is, so it re-references there (a user would home or set it).
        board.set_position_um(start_steps / steps_per_um)
    except BaseException:
        for closer in closers:
            closer()
        raise
    focal_plane = FocalPlane(clock, settings.focus_z_um,
                             drift_um_per_min=settings.drift_um_per_min,
                             random_walk_um_per_sqrt_s=settings.random_walk_um_per_sqrt_s,
                             seed=settings.seed)
    scope = VirtualScope(system, sample, focal_plane,
                         lambda: board_sim.motor_steps() / steps_per_um, seed=settings.seed)
    camera = VirtualCamera(scope, lambda: lit_pattern(board_sim.lit_leds(), system.leds), clock)
    rig = Rig(camera, board, TwinIlluminator(board, board_sim), clock, system, scope.full_scale,
              scope, closers)
    return DigitalTwin(rig, board_sim, steps_per_um)


@dataclass(frozen=True)
class Event:
    """Something that happens to the microscope at ``at_s`` seconds into a run."""

    at_s: float
    kind: str  # knock | empty-field | sample-back | dark | saturated | light-normal
    value: float = 0.0  # µm for a knock

    def describe(self) -> str:
        return f"knock {self.value:+.1f} µm" if self.kind == "knock" else self.kind


EVENT_KINDS = ("knock", "empty-field", "sample-back", "dark", "saturated", "light-normal")


class Scenario:
    """Plays timed events against a scope; ``condition`` says what the camera is facing."""

    def __init__(self, events: list[Event]) -> None:
        for event in events:
            if event.kind not in EVENT_KINDS:
                raise ValueError(f"scenario: unknown event {event.kind!r}")  # a caller's bug
        self.pending = sorted(events, key=lambda e: e.at_s)
        self.fired: list[tuple[float, Event]] = []

    def advance(self, scope: VirtualScope, elapsed_s: float) -> list[Event]:
        """Apply every event due by ``elapsed_s``; return them."""
        due = [e for e in self.pending if e.at_s <= elapsed_s]
        self.pending = self.pending[len(due):]
        for event in due:
            if event.kind == "knock":
                scope.focal_plane.knock(event.value)
            elif event.kind in ("empty-field", "sample-back"):
                scope.empty_field = event.kind == "empty-field"
            else:
                scope.light_scale = {"dark": BLOCKED, "saturated": OVEREXPOSED,
                                     "light-normal": 1.0}[event.kind]
            self.fired.append((elapsed_s, event))
        return due

    @staticmethod
    def condition(scope: VirtualScope) -> str:
        """'' for a normal view, else why no frame should be trusted."""
        if scope.empty_field:
            return "empty-field"
        if scope.light_scale == BLOCKED:
            return "dark"
        if scope.light_scale >= OVEREXPOSED:
            return "saturated"
        return ""


def demo_scenario(duration_s: float) -> list[Event]:
    """The demo's bad day, scaled to its length: a knock, the sample leaving the view, a
    blocked and an overexposed light path, with time to re-lock after each."""
    def at(fraction: float) -> float:
        return round(fraction * duration_s, 1)

    return [
        Event(at(0.30), "knock", 5.0),
        Event(at(0.50), "empty-field"),
        Event(at(0.62), "sample-back"),
        Event(at(0.72), "dark"),
        Event(at(0.76), "light-normal"),
        Event(at(0.84), "saturated"),
        Event(at(0.88), "light-normal"),
    ]
