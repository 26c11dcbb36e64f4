"""The digital twin: the virtual microscope with the real focus-board firmware in the loop.

The firmware runs under the MicroPython unix port behind a pty (controller/sim/board.py)
and the host talks to it with the real driver (controller/hardware/board.py), so every move and
every LED goes through the protocol, the firmware's limits, ramps and heartbeat. The firmware's
simulated motor is the focus mechanism: its true step count, divided by steps per µm, is where
the virtual camera sees the sample from; the LEDs the firmware has lit are what the camera
renders under. Time is real (the firmware keeps its own clock).

Scenarios (controller/sim/scenario.py) play timed events against the twin while the loop runs.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controller.clock import Clock, MonotonicClock
from controller.config import SimSettings
from controller.hardware.board import FocusBoard, FocusBoardSettings
from controller.hardware.board_leds import in_colour
from controller.hardware.box import serial_opener
from controller.hardware.interfaces import Illuminator
from controller.hardware.rig import Rig
from controller.optics import LedArray, Pattern, Preset
from controller.sim.board import LitLeds, SimBoardSettings, SimulatedBoard, temporary_workdir
from controller.sim.devices import VirtualCamera, VirtualScope
from controller.sim.rigs import SimulatedWorld

TWIN_TRAVEL_UM = (-500.0, 500.0)
SIDE_CHANNEL_WAIT_S = 0.5  # the firmware publishes its state file within ~20 ms of a change


def lit_pattern(lit: LitLeds, leds: LedArray,
                emitters_um: tuple[float, float, float]) -> Pattern | None:
    """The pattern the board's lit LEDs make, None when all are dark. LEDs in the board's own
    colour shine the optics' light (no wavelength), as on a monochrome rig; LEDs in colours the
    host chose are one LED per lit emitter, at that emitter's peak wavelength (``emitters_um``:
    red, green, blue), so two colours on one LED are two lights from the same angle."""
    if lit.in_colour:
        lights = tuple(leds.led(index, brightness=level / 255, wavelength_um=emitters_um[emitter])
                       for index, colour in sorted(lit.colours.items())
                       for emitter, level in enumerate(colour) if level > 0)
    else:
        lights = tuple(leds.led(index, brightness=level / 255)
                       for index, level in sorted(lit.levels.items()) if level > 0)
    return Pattern("board", lights) if lights else None


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
        if in_colour(pattern):  # the board keeps only what it lights: no dark entries
            colours = {i: (r, g, b) for i, r, g, b in self.board.led_colours(pattern)
                       if r or g or b}
            self._await(lambda lit: lit.in_colour and lit.colours == colours)
        else:
            levels = {i: level for i, level in self.board.led_levels(pattern) if level}
            self._await(lambda lit: not lit.in_colour and lit.levels == levels)

    def off(self) -> None:
        self.board.off()
        self._await(lambda lit: not lit.colours)

    def _await(self, shown: Callable[[LitLeds], bool]) -> None:
        deadline = time.monotonic() + SIDE_CHANNEL_WAIT_S
        while not shown(self.board_sim.lit_leds()) and time.monotonic() < deadline:
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


def open_twin(system: Preset, settings: SimSettings, *, steps_per_um: float = 10.0,
              frame_shape: tuple[int, int] | None = None, workdir: Path | None = None,
              clock: Clock | None = None,
              travel_um: tuple[float, float] = TWIN_TRAVEL_UM) -> DigitalTwin:
    """Start the firmware, connect the driver, and couple both to a virtual scope."""
    clock = clock or MonotonicClock()
    world = SimulatedWorld.build(system, settings, clock, frame_shape)
    system = world.system
    closers: list[Callable[[], None]] = []
    if workdir is None:  # removed on close, or by the next twin's start after a kill
        workdir = temporary_workdir()
        closers.append(functools.partial(shutil.rmtree, workdir, ignore_errors=True))
    start_steps = round(settings.start_z_um * steps_per_um)
    leds_dmm = [[round(x * 10), round(y * 10), round(d * 10)]
                for x, y, d in system.leds.positions_mm]
    board_sim = SimulatedBoard(workdir, SimBoardSettings(motor_steps=start_steps, leds=leds_dmm))
    board_sim.start()
    closers.insert(0, board_sim.close)
    try:
        board = FocusBoard(serial_opener(board_sim.port), FocusBoardSettings(
            steps_per_um=steps_per_um, travel_um=travel_um, settle_s=settings.settle_s,
            leds=system.leds)).connect()
        # After power-up the firmware does not vouch for its position; the twin knows where the
        # mechanism is, so it re-references there (a user would home or set it).
        board.set_position_um(start_steps / steps_per_um)
    except BaseException:
        for closer in closers:
            closer()
        raise
    scope = world.scope(lambda: board_sim.motor_steps() / steps_per_um)
    emitters_um = board.settings.led_emitters_um
    camera = VirtualCamera(scope, lambda: lit_pattern(board_sim.lit_leds(), system.leds,
                                                      emitters_um), clock)
    rig = Rig(camera, board, TwinIlluminator(board, board_sim), clock, system, scope.full_scale,
              scope, closers)
    return DigitalTwin(rig, board_sim, steps_per_um)
