"""A rig: the camera, focus drive and LEDs the loop runs on, and how to open them from config.

Backends (config ``camera.backend`` / ``board.backend``):

- ``virtual`` / ``virtual``: the virtual microscope in-process, in simulated time;
- ``virtual`` / ``firmware-sim``: the digital twin (controller/twin.py): the virtual camera and
  optics, the real firmware under MicroPython behind a pty driving the focus, in real time;
- ``picamera2`` / ``serial``: the box: the Pi camera and the focus board on USB.

On simulated hardware the rig also carries the scope, which knows the true defocus.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.clock import Clock, MonotonicClock, SimulatedClock
from controller.config import Config, TwinSettings
from controller.errors import FocuslockError
from controller.hardware.interfaces import Camera, FocusDrive, Illuminator
from controller.hardware.virtual import (
    FocalPlane,
    VirtualCamera,
    VirtualFocusDrive,
    VirtualIlluminator,
    VirtualScope,
)
from controller.optics import Preset, preset


@dataclass
class Rig:
    camera: Camera
    drive: FocusDrive
    illuminator: Illuminator
    clock: Clock
    preset: Preset  # with the optics as the camera delivers them (frame shape, bit depth)
    full_scale: int  # the largest pixel value
    scope: VirtualScope | None = None  # the truth, on simulated hardware only
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """LEDs off, devices released; a failing device does not keep the others open."""
        closed: list[object] = []
        for device in (self.illuminator, self.drive, self.camera):
            if any(device is other for other in closed):  # one board is drive and LEDs
                continue
            closed.append(device)
            with contextlib.suppress(FocuslockError):
                device.close()
        for closer in reversed(self.closers):
            closer()


def virtual_rig(system: Preset, settings: TwinSettings, *, clock: Clock | None = None,
                frame_shape: tuple[int, int] | None = None, steps_per_um: float = 10.0,
                travel_um: tuple[float, float] = (-500.0, 500.0)) -> Rig:
    """The virtual microscope in-process (simulated time unless a clock is given)."""
    from controller.sim import make_sample

    clock = clock or SimulatedClock()
    shape = frame_shape or twin_frame_shape(system, settings)
    system = dataclasses.replace(system, optics=dataclasses.replace(system.optics,
                                                                    frame_shape=shape))
    sample = make_sample(settings.sample, shape, system.optics.pixel_um, settings.seed)
    focal_plane = FocalPlane(clock, settings.focus_z_um,
                             drift_um_per_min=settings.drift_um_per_min,
                             random_walk_um_per_sqrt_s=settings.random_walk_um_per_sqrt_s,
                             seed=settings.seed)
    drive = VirtualFocusDrive(clock, start_um=settings.start_z_um, steps_per_um=steps_per_um,
                              travel_um=travel_um, backlash_um=settings.backlash_um,
                              settle_s=settings.settle_s)
    illuminator = VirtualIlluminator(system.leds)
    scope = VirtualScope(system, sample, focal_plane, drive.mechanism_um, seed=settings.seed)
    camera = VirtualCamera(scope, illuminator.lit, clock)
    return Rig(camera, drive, illuminator, clock, system, scope.full_scale, scope)


def twin_frame_shape(system: Preset, settings: TwinSettings) -> tuple[int, int]:
    """The simulated camera's frame: the preset's, or a smaller square one to save time."""
    size = settings.frame_size
    return (size, size) if size else system.optics.frame_shape


def open_rig(config: Config) -> Rig:
    """The rig the config asks for."""
    system = preset(config.optics.preset)
    if config.board.backend == "virtual":
        return virtual_rig(system, config.twin, steps_per_um=config.board.steps_per_um)
    if config.board.backend == "firmware-sim":
        from controller.twin import open_twin

        return open_twin(system, config.twin, steps_per_um=config.board.steps_per_um).rig
    return _box_rig(system, config)


def _box_rig(system: Preset, config: Config) -> Rig:
    from controller.hardware.board import BoardSettings, FocusBoard
    from controller.hardware.picamera import PiCamera

    camera = PiCamera(frame_shape=system.optics.frame_shape, exposure_us=config.camera.exposure_us,
                      analogue_gain=config.camera.analogue_gain, plane=config.camera.plane,
                      camera_index=config.camera.camera_index)
    board_config = config.board
    try:
        board = FocusBoard(BoardSettings(
            port=board_config.port or BoardSettings.port,
            serial_number=board_config.serial_number or None,
            steps_per_um=board_config.steps_per_um,
            travel_um=(board_config.travel_min_um, board_config.travel_max_um),
            heartbeat_s=board_config.heartbeat_s, leds=system.leds)).connect()
    except BaseException:
        camera.close()
        raise
    return Rig(camera, board, board, MonotonicClock(), system, (1 << system.optics.bit_depth) - 1)
