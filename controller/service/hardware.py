"""What the service runs the loop on: the rig and the model bundle the config asks for, the
drive commands a headless box needs to recover, and LEDs that can say what they show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from controller.config import Config
from controller.hardware.interfaces import Camera, Frame, Illuminator
from controller.optics import Pattern
from controller.sensing import FocusSensor, ParallaxSensor

if TYPE_CHECKING:
    from controller.hardware.rig import Rig


@dataclass(frozen=True)
class ModelInfo:
    """Which model bundle reads the frames (and whether the parallax cue does), as the status
    shows it."""

    id: str  # the bundle's folder name and the start of its weights' checksum
    path: str | None = None

    def to_json(self) -> dict[str, str]:
        return {"id": self.id} if self.path is None else {"id": self.id, "path": self.path}


@dataclass(frozen=True)
class Hardware:
    """What the worker runs the loop on."""

    rig: Rig
    sensor: FocusSensor
    model: ModelInfo


def open_hardware(config: Config) -> Hardware:
    """The rig and the sensor the config asks for (the box's, or a simulated one)."""
    from controller.hardware.rig import open_rig

    rig = open_rig(config)
    try:
        return read_by_model(config, rig)
    except BaseException:
        rig.close()
        raise


def read_by_model(config: Config, rig: Rig) -> Hardware:
    """``rig`` with the sensor of the model bundle the config names now: at start, and again on
    the open rig when the service reloads the model (``POST /api/model/reload``)."""
    from controller.installed_models import bundle_id
    from controller.sensing import open_sensor

    sensor, model = open_sensor(config, rig.preset)
    if model is None:
        return Hardware(rig, sensor, ModelInfo("none (parallax only)"))
    cue = " + parallax" if isinstance(sensor, ParallaxSensor) else ""
    return Hardware(rig, sensor, ModelInfo(f"{bundle_id(model.path, model.record)}{cue}",
                                           str(model.path)))


@runtime_checkable
class ReferencedDrive(Protocol):
    """A drive that can lose its reference (the focus board after a reset) and be given it back:
    the service offers these so a headless box recovers without anyone freeing the port."""

    def home(self) -> float: ...

    def set_position_um(self, z_um: float) -> None: ...

    def clear_fault(self) -> None: ...


class TrackedIlluminator(Illuminator):
    """Passes every call to the LED board and remembers what it was last told successfully,
    so the status can say whether the LEDs are on."""

    def __init__(self, inner: Illuminator) -> None:
        self.inner = inner
        self.showing = "off"  # a pattern's name, "off", or "unknown" after a failed call

    def show(self, pattern: Pattern) -> None:
        self.showing = "unknown"
        self.inner.show(pattern)
        self.showing = pattern.name

    def off(self) -> None:
        self.showing = "unknown"
        self.inner.off()
        self.showing = "off"


class KeepingCamera(Camera):
    """Passes every capture through and keeps the latest frame taken while the autofocus
    pattern was lit (a reference: no copy), for the live views (controller/frame_views.py).
    Written by the worker, read by any thread: one reference, replaced whole."""

    def __init__(self, inner: Camera, leds: TrackedIlluminator, autofocus: str) -> None:
        self.inner = inner
        self.leds = leds
        self.autofocus = autofocus
        self.latest: Frame | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.inner.shape

    def capture(self, *, not_before: float | None = None, timeout_s: float = 2.0) -> Frame:
        frame = self.inner.capture(not_before=not_before, timeout_s=timeout_s)
        if self.leds.showing == self.autofocus:
            self.latest = frame
        return frame

    def close(self) -> None:
        self.inner.close()
