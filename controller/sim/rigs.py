"""Simulated rigs: the virtual microscope as the loop's hardware, in one place.

Both simulated backends see the same world: a sample drawn from the config's ``[sim]`` section,
a focal plane that drifts, and a scope that renders frames at the true defocus. They differ only
in what moves the focus: the in-process virtual drive (``virtual_rig``, simulated time) or the
real firmware behind a pty (``controller.sim.twin.open_twin``, real time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from controller.clock import Clock, SimulatedClock
from controller.config import Config, SimSettings
from controller.hardware.rig import Rig
from controller.optics import Preset, preset
from controller.sim.devices import (
    FocalPlane,
    VirtualCamera,
    VirtualFocusDrive,
    VirtualIlluminator,
    VirtualScope,
)
from controller.sim.instrument import Instrument
from controller.sim.samples import Sample, make_sample


@dataclass(frozen=True)
class SimulatedWorld:
    """What every simulated rig shares: the optics at the simulated frame, the sample, the
    drifting focal plane; ``scope(mechanism_z)`` couples them to whatever moves the focus."""

    system: Preset  # with the optics at the simulated camera's frame shape
    settings: SimSettings
    sample: Sample
    focal_plane: FocalPlane

    @classmethod
    def build(cls, system: Preset, settings: SimSettings, clock: Clock,
              frame_shape: tuple[int, int] | None = None) -> SimulatedWorld:
        shape = frame_shape or sim_frame_shape(system, settings)
        system = dataclasses.replace(system, optics=dataclasses.replace(system.optics,
                                                                        frame_shape=shape))
        sample = make_sample(settings.sample, shape, system.optics.pixel_um, settings.seed)
        focal_plane = FocalPlane(clock, settings.focus_z_um,
                                 drift_um_per_min=settings.drift_um_per_min,
                                 random_walk_um_per_sqrt_s=settings.random_walk_um_per_sqrt_s,
                                 seed=settings.seed)
        return cls(system, settings, sample, focal_plane)

    def scope(self, mechanism_z: Callable[[], float]) -> VirtualScope:
        shift = (self.settings.led_shift_na_x, self.settings.led_shift_na_y)
        instrument = None if shift == (0.0, 0.0) else Instrument(led_shift_na=shift)
        return VirtualScope(self.system, self.sample, self.focal_plane, mechanism_z,
                            instrument=instrument, seed=self.settings.seed)


def sim_frame_shape(system: Preset, settings: SimSettings) -> tuple[int, int]:
    """The simulated camera's frame: the preset's, or a smaller square one to save time."""
    size = settings.frame_size
    return (size, size) if size else system.optics.frame_shape


def virtual_rig(system: Preset, settings: SimSettings, *, clock: Clock | None = None,
                frame_shape: tuple[int, int] | None = None, steps_per_um: float = 10.0,
                travel_um: tuple[float, float] = (-500.0, 500.0)) -> Rig:
    """The virtual microscope in-process (simulated time unless a clock is given)."""
    clock = clock or SimulatedClock()
    world = SimulatedWorld.build(system, settings, clock, frame_shape)
    drive = VirtualFocusDrive(clock, start_um=settings.start_z_um, steps_per_um=steps_per_um,
                              travel_um=travel_um, backlash_um=settings.backlash_um,
                              settle_s=settings.settle_s)
    illuminator = VirtualIlluminator(world.system.leds)
    scope = world.scope(drive.mechanism_um)
    camera = VirtualCamera(scope, lambda: illuminator.pattern, clock)
    return Rig(camera, drive, illuminator, clock, world.system, scope.full_scale, scope)


def open_virtual(config: Config) -> Rig:
    """Backend ``virtual``: the in-process virtual microscope."""
    return virtual_rig(preset(config.optics.preset), config.sim,
                       steps_per_um=config.board.steps_per_um, travel_um=config_travel(config))


def open_firmware_sim(config: Config) -> Rig:
    """Backend ``firmware-sim``: the digital twin, the real firmware driving the focus (with a
    fault line for another process where the environment asks: controller/sim/fault_line.py)."""
    from controller.sim.fault_line import SOCKET_NAME, FaultLine, twin_dir_from_environ
    from controller.sim.twin import open_twin

    workdir = twin_dir_from_environ()
    twin = open_twin(preset(config.optics.preset), config.sim, workdir=workdir,
                     steps_per_um=config.board.steps_per_um, travel_um=config_travel(config))
    if workdir is not None:
        try:
            twin.rig.closers.append(FaultLine(twin, workdir / SOCKET_NAME).close)  # closed first
        except OSError:
            twin.close()
            raise
    return twin.rig


def config_travel(config: Config) -> tuple[float, float]:
    """The travel the config gives the focus drive: a simulated drive's limits, as a real
    board's soft limits, are the numbers every window is checked against."""
    return config.board.travel_min_um, config.board.travel_max_um
