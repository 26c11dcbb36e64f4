"""The virtual microscope with a fake Sangaboard's z as its focus drive (``sangaboard-sim``).

The fake board (controller/sim/sangaboard.py) runs behind a pty and the real driver
(controller/hardware/sangaboard.py) opens it by path, so every move goes through the Sangaboard's
text protocol; the fake's z mechanism (its motor, through the play of ``[sim] backlash_um``) is
where the virtual camera sees the sample from. The LEDs and camera are the virtual ones: a
Sangaboard has no LED array. Time is real.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.clock import MonotonicClock
from controller.config import Config
from controller.hardware.rig import Rig
from controller.hardware.sangaboard import open_sangaboard, settings_from_config
from controller.optics import preset
from controller.sim.devices import VirtualCamera, VirtualIlluminator
from controller.sim.rigs import SimulatedWorld
from controller.sim.sangaboard import FakeSangaboard, Firmware

SPEED_UM_S = 500.0  # as the in-process virtual drive


@dataclass
class SangaboardTwin:
    """The rig (for the loop) and the fake board (for fault injection)."""

    rig: Rig
    board: FakeSangaboard

    def close(self) -> None:
        self.rig.close()


def open_sangaboard_twin(config: Config, firmware: Firmware = "1.0",
                         frame_shape: tuple[int, int] | None = None) -> SangaboardTwin:
    """Start the fake board, connect the driver to it, and couple both to a virtual scope."""
    clock = MonotonicClock()
    world = SimulatedWorld.build(preset(config.optics.preset), config.sim, clock, frame_shape)
    steps_per_um = config.board.steps_per_um
    fake = FakeSangaboard(firmware, z_steps=round(config.sim.start_z_um * steps_per_um),
                          step_delay_us=max(1, round(1e6 / (SPEED_UM_S * steps_per_um))),
                          backlash_steps=config.sim.backlash_um * steps_per_um).start()
    try:
        drive = open_sangaboard(fake.port, settings_from_config(config.board, config.sim.settle_s))
    except BaseException:
        fake.close()
        raise
    illuminator = VirtualIlluminator(world.system.leds)
    scope = world.scope(lambda: fake.motion.mechanism_steps() / steps_per_um)
    camera = VirtualCamera(scope, lambda: illuminator.pattern, clock)
    rig = Rig(camera, drive, illuminator, clock, world.system, scope.full_scale, scope,
              [fake.close])
    return SangaboardTwin(rig, fake)


def open_sangaboard_sim(config: Config) -> Rig:
    """Backend ``sangaboard-sim``: the virtual microscope, focused by a fake Sangaboard."""
    return open_sangaboard_twin(config).rig
