"""A rig: the camera, focus drive and LEDs the loop runs on, and how to open them from config.

Backends (config ``camera.backend`` / ``board.backend``):

- ``virtual`` / ``virtual``: the virtual microscope in-process, in simulated time;
- ``virtual`` / ``firmware-sim``: the digital twin (controller/sim/twin.py): the virtual camera and
  optics, the real firmware under MicroPython behind a pty driving the focus, in real time;
- ``picamera2`` / ``serial``: the box: the Pi camera and the focus board on USB;
- ``picamera2`` / ``sangaboard``: the Pi camera, an OpenFlexure Sangaboard's z as the focus drive
  and the focus board's LEDs (docs/sangaboard.md); ``sangaboard-sim``: the virtual microscope
  focused by a fake Sangaboard on a pty.

On simulated hardware the rig also carries the scope, which knows the true defocus.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.clock import Clock
from controller.config import BoardBackend, Config
from controller.errors import FocuslockError
from controller.hardware.interfaces import Camera, FocusDrive, Illuminator
from controller.optics import Preset

if TYPE_CHECKING:
    from controller.sim.devices import VirtualScope


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


# board.backend -> "module:function" that opens that rig from the config. Imported only when
# chosen, so the box never loads the simulator; a new backend is one line here and its name in
# config.BoardBackend (a test holds the two equal).
BACKENDS: dict[BoardBackend, str] = {
    "virtual": "controller.sim.rigs:open_virtual",
    "firmware-sim": "controller.sim.rigs:open_firmware_sim",
    "serial": "controller.hardware.box:open_box",
    "sangaboard": "controller.hardware.box:open_sangaboard_box",
    "sangaboard-sim": "controller.sim.sangaboard_twin:open_sangaboard_sim",
}


def open_rig(config: Config) -> Rig:
    """The rig the config asks for."""
    module_name, _, function = BACKENDS[config.board.backend].partition(":")
    opener: Callable[[Config], Rig] = getattr(importlib.import_module(module_name), function)
    return opener(config)
