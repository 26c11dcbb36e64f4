"""A rig: the camera, focus drive and LEDs the loop runs on, and how to open them from config.

Backends (config ``camera.backend`` / ``board.backend``):

- ``virtual`` / ``virtual``: the virtual microscope in-process, in simulated time;
- ``virtual`` / ``firmware-sim``: the digital twin (controller/sim/twin.py): the virtual camera and
  optics, the real firmware under MicroPython behind a pty driving the focus, in real time;
- ``picamera2`` / ``serial``: the box: the Pi camera and the focus board on USB;
- ``picamera2`` / ``sangaboard``: the Pi camera, an OpenFlexure Sangaboard's z as the focus drive
  and the focus board's LEDs (docs/sangaboard.md); ``sangaboard-sim``: the virtual microscope
  focused by a fake Sangaboard on a pty.

``illuminator.backend = "illuminate"`` lights any of them with an illuminate LED array instead of
the board's LEDs (docs/illuminate.md): the real one on the box, a fake one behind a pty on the
simulated rigs.

On simulated hardware the rig also carries the scope, which knows the true defocus.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.clock import Clock
from controller.config import BoardBackend, Config, IlluminatorBackend
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


# illuminator.backend -> (on the box, on simulated rigs) "module:function" that lights the rig
# with that illuminator instead of the board's LEDs (and gives it that illuminator's geometry).
ILLUMINATORS: dict[IlluminatorBackend, tuple[str, str]] = {
    "illuminate": ("controller.hardware.illuminate:attach_illuminate",
                   "controller.sim.illuminate:attach_fake_illuminate"),
}


def open_rig(config: Config) -> Rig:
    """The rig the config asks for."""
    rig: Rig = _function(BACKENDS[config.board.backend])(config)
    if config.illuminator.backend in ILLUMINATORS:
        on_box, simulated = ILLUMINATORS[config.illuminator.backend]
        try:
            rig = _function(simulated if rig.scope is not None else on_box)(rig, config)
        except BaseException:
            rig.close()
            raise
    return rig


def _function(name: str) -> Callable[..., Rig]:
    """The function "module:function" names, its module imported only now."""
    module_name, _, function = name.partition(":")
    opener: Callable[..., Rig] = getattr(importlib.import_module(module_name), function)
    return opener
