"""The virtual microscope as the loop's hardware: camera, focus drive and LEDs, in-process.

The camera renders, with the simulator's wave optics and sensor noise, the sample at its true
defocus under the pattern the illuminator shows right now: a monochrome frame, or the raw Bayer
mosaic when the optics have a colour filter (controller/sim/bayer.py). The truth a real box
never knows lives here: the focal plane's position in drive coordinates (thermal drift, a random
walk, knocks) and the mechanism's position (steps, backlash). ``defocus_um = z_focus - z_mechanism``
(docs/conventions.md). Everything runs on one injectable clock, so tests in simulated time
behave as they would in real time, only faster.

Fault switches make the bad days reproducible: a dead camera (timeouts), a camera that hands out
an old buffered frame, a blocked light path or overexposure, the sample leaving the field of
view, a drive that refuses to move. Pattern brightness sets the LEDs' relative weights only
(the simulator's convention: exposure absorbs the absolute level).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from controller.clock import Clock
from controller.hardware.interfaces import (
    Camera,
    CameraTimeout,
    DriveFault,
    FocusDrive,
    Frame,
    HardwareError,
    Illuminator,
)
from controller.optics import LedArray, Pattern, Preset
from controller.sim import CameraModel, Imager, Sample
from controller.sim.bayer import BayerFilter, sensor_intensity
from controller.sim.instrument import Instrument

LED_MATCH_NA = 0.01  # an LED of the pattern must be this close (in NA) to one of the array


class FocalPlane:
    """Where the sample is in focus, in drive coordinates (µm), as time goes by."""

    def __init__(self, clock: Clock, z_um: float = 0.0, *, drift_um_per_min: float = 0.0,
                 random_walk_um_per_sqrt_s: float = 0.0, seed: int = 0) -> None:
        self.clock = clock
        self.drift_um_per_min = drift_um_per_min
        self.random_walk_um_per_sqrt_s = random_walk_um_per_sqrt_s
        self._rng = np.random.default_rng(seed)
        self._t = clock.now()
        self._z = z_um

    def z_um(self) -> float:
        """The focal plane now (drift and random walk accumulated since the last look)."""
        now = self.clock.now()
        dt = now - self._t
        if dt > 0:
            self._z += self.drift_um_per_min * dt / 60.0
            if self.random_walk_um_per_sqrt_s > 0:
                self._z += self.random_walk_um_per_sqrt_s * math.sqrt(dt) * \
                    float(self._rng.standard_normal())
            self._t = now
        return self._z

    def knock(self, delta_um: float) -> None:
        """A bump: the sample jumps along z relative to the objective."""
        self._z = self.z_um() + delta_um


class VirtualScope:
    """Renders camera frames of one sample at the current true defocus.

    ``mechanism_z`` says where the focus mechanism really is (µm, drive coordinates): the
    in-process drive's mechanism, or the firmware's simulated motor in the digital twin.
    """

    def __init__(self, preset: Preset, sample: Sample, focal_plane: FocalPlane,
                 mechanism_z: Callable[[], float], *, camera: CameraModel | None = None,
                 instrument: Instrument | None = None, seed: int = 0) -> None:
        self.preset = preset
        self.sample = sample
        self.focal_plane = focal_plane
        self.mechanism_z = mechanism_z
        self.sensor = camera or CameraModel.for_bit_depth(preset.optics.bit_depth)
        self.colour_filter = BayerFilter.for_optics(preset.optics)  # None: monochrome
        self.instrument = instrument  # None: the ideal one (LEDs where the preset says)
        self.imager = Imager(preset.optics, sample, instrument=instrument)
        self.empty_field = False  # the sample has left the field of view
        self.light_scale = 1.0  # 0: light path blocked; > 1: overexposed (stray light)
        self.last_defocus_um = math.nan  # the truth of the last frame rendered
        self._empty_imager: Imager | None = None
        self._rng = np.random.default_rng(seed)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.imager.frame_shape

    def replace_sample(self, sample: Sample) -> None:
        """Another field of view (the same grid): what moving the slide does."""
        if sample.shape != self.sample.shape or sample.pixel_um != self.sample.pixel_um:
            raise HardwareError(f"virtual scope: new sample grid {sample.shape} at "
                                f"{sample.pixel_um} µm differs from {self.sample.shape}")
        self.sample = sample
        self.imager = Imager(self.preset.optics, sample, instrument=self.instrument)
        self._empty_imager = None

    @property
    def full_scale(self) -> int:
        return self.sensor.max_adu

    def defocus_um(self) -> float:
        """The truth: how far the drive must move to bring the sample into focus."""
        return self.focal_plane.z_um() - self.mechanism_z()

    def render(self, pattern: Pattern | None) -> np.ndarray:
        """One uint16 frame under ``pattern`` (None: every LED off); a colour camera's is its raw
        mosaic."""
        self.last_defocus_um = self.defocus_um()
        if pattern is None or self.light_scale == 0:
            intensity = np.zeros(self.frame_shape, dtype=np.float32)
        else:
            intensity = sensor_intensity(self._imager(), pattern, self.last_defocus_um,
                                         self.colour_filter)
            if self.light_scale != 1.0:
                intensity = intensity * np.float32(self.light_scale)
        return self.sensor.expose(intensity, self._rng)

    def _imager(self) -> Imager:
        if not self.empty_field:
            return self.imager
        if self._empty_imager is None:
            self._empty_imager = Imager(self.preset.optics, empty_sample_like(self.sample),
                                        instrument=self.instrument)
        return self._empty_imager


class VirtualIlluminator(Illuminator):
    """The preset's LED array; ``pattern`` is what it shows now (None: LEDs off), which the
    camera renders."""

    def __init__(self, leds: LedArray) -> None:
        self.leds = leds
        self.pattern: Pattern | None = None

    def show(self, pattern: Pattern) -> None:
        for led in pattern.leds:
            nearest = self.leds.na_of(self.leds.nearest(led.na_x, led.na_y))
            if math.hypot(nearest[0] - led.na_x, nearest[1] - led.na_y) > LED_MATCH_NA:
                raise HardwareError(f"illuminator: pattern {pattern.name!r} asks for an LED at "
                                    f"NA ({led.na_x:+.3f}, {led.na_y:+.3f}); the array has none")
        self.pattern = pattern

    def off(self) -> None:
        self.pattern = None


class VirtualCamera(Camera):
    """Frames of the virtual scope on the shared clock, under ``illumination()``: the pattern
    lighting the sample at the moment of exposure (None: dark)."""

    def __init__(self, scope: VirtualScope, illumination: Callable[[], Pattern | None],
                 clock: Clock, *, exposure_s: float | None = None) -> None:
        self.scope = scope
        self.illumination = illumination
        self.clock = clock
        self.exposure_s = scope.sensor.exposure_s if exposure_s is None else exposure_s
        self.dead = False  # fault switch: no frame ever arrives
        self.replays_old_frames = False  # fault switch: hands out its last frame again
        self._sequence = 0
        self._last: Frame | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.scope.frame_shape

    def capture(self, *, not_before: float | None = None, timeout_s: float = 2.0) -> Frame:
        if self.dead:
            self.clock.sleep(timeout_s)
            raise CameraTimeout(f"virtual camera: no frame within {timeout_s} s")
        if self.replays_old_frames and self._last is not None:
            return self._last
        start = max(self.clock.now(), not_before if not_before is not None else -math.inf)
        self.clock.sleep(start - self.clock.now())
        image = self.scope.render(self.illumination())
        # Rendering is the simulation's own cost, not the camera's: on a real clock the frame is
        # stamped as exposed once it has been computed, so it is as fresh as a real one.
        start = max(start, self.clock.now())
        self.clock.sleep(self.exposure_s)
        self._sequence += 1
        self._last = Frame(image, exposure_start=start, exposure_s=self.exposure_s,
                           sequence=self._sequence)
        return self._last


class VirtualFocusDrive(FocusDrive):
    """A stepper on the focus knob: whole steps, backlash, finite speed, ring-down time.

    ``position_um`` is what the motor's step count says; ``mechanism_um`` is where the focus
    really is (they differ by the backlash after a reversal). The drive refuses moves beyond its
    travel limits, as the board does.
    """

    def __init__(self, clock: Clock, *, start_um: float = 0.0, steps_per_um: float = 10.0,
                 travel_um: tuple[float, float] = (-500.0, 500.0), backlash_um: float = 0.0,
                 speed_um_s: float = 500.0, settle_s: float = 0.05) -> None:
        self.clock = clock
        self.steps_per_um = steps_per_um
        self._travel = travel_um
        self.backlash_um = backlash_um
        self.speed_um_s = speed_um_s
        self.settle_s = settle_s
        self._steps = round(start_um * steps_per_um)
        self._mechanism = self._steps / steps_per_um
        self._settled_at = clock.now()
        self.refuses_moves = False  # fault switch: every move fails (a stalled motor, a fault)
        self.moves = 0

    def position_um(self) -> float:
        return self._steps / self.steps_per_um

    def mechanism_um(self) -> float:
        return self._mechanism

    def move_by(self, delta_um: float) -> float:
        return self.move_to(self.position_um() + delta_um)

    def move_to(self, z_um: float) -> float:
        if self.refuses_moves:
            raise DriveFault("virtual drive: motor fault, move refused")
        low, high = self._travel
        if not (math.isfinite(z_um) and low <= z_um <= high):
            raise DriveFault(f"virtual drive: {z_um:.2f} µm is outside the travel limits "
                             f"[{low}, {high}] µm")
        target = round(z_um * self.steps_per_um)
        distance = abs(target - self._steps) / self.steps_per_um
        self._steps = target
        motor = target / self.steps_per_um
        half_play = self.backlash_um / 2
        self._mechanism = min(max(self._mechanism, motor - half_play), motor + half_play)
        self.clock.sleep(distance / self.speed_um_s + self.settle_s)
        self._settled_at = self.clock.now()
        self.moves += 1
        return self.position_um()

    def stop(self) -> None:
        """Moves block until done, so there is never one to stop."""

    @property
    def travel_um(self) -> tuple[float, float]:
        return self._travel

    @property
    def settled_at(self) -> float:
        return self._settled_at


def empty_sample_like(sample: Sample) -> Sample:
    """The same grid with nothing on it: what the camera sees when the sample leaves the view."""
    return Sample(np.zeros((1, *sample.shape), dtype=np.complex64), sample.pixel_um,
                  medium_index=sample.medium_index, kind="empty")
