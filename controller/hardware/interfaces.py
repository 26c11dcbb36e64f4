"""The three small device interfaces the focus loop talks to.

Real backends (picamera2, the focus board) and simulated ones (the virtual microscope) implement
these, and one shared test suite runs against each, so the loop never knows which it has.
Units follow docs/conventions.md: µm and seconds; ``time.monotonic()`` for timestamps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from controller.errors import FocuslockError
from controller.optics import Pattern


class HardwareError(FocuslockError):
    """A device did not do what it was asked; the loop stops moving and reports it."""


class CameraTimeout(HardwareError):
    """No frame arrived in time (a dead or unplugged camera)."""


class DriveFault(HardwareError):
    """The focus drive refused or aborted a move (limit, fault state, lost link)."""


class PositionUnknown(DriveFault):
    """The drive cannot vouch for its position (after a board reset) until it is re-referenced."""


@dataclass(frozen=True)
class Frame:
    """One camera frame and when it was exposed, so the loop can refuse stale frames."""

    image: np.ndarray  # 2D uint16, image[y, x] as the camera delivers it
    exposure_start: float  # time.monotonic() when the exposure began
    exposure_s: float
    sequence: int  # increases by one per frame delivered by this camera


class Camera(ABC):
    """A monochrome camera with fixed exposure and gain."""

    @abstractmethod
    def capture(self, *, not_before: float | None = None, timeout_s: float = 2.0) -> Frame:
        """Return a frame whose exposure began at or after ``not_before`` (monotonic time);
        raise CameraTimeout when none arrives within ``timeout_s``."""

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the frames."""

    def close(self) -> None:  # noqa: B027 - most backends have nothing to release
        """Release the device."""


class FocusDrive(ABC):
    """The focus axis in µm; positive moves increase the objective-sample distance."""

    @abstractmethod
    def position_um(self) -> float:
        """Where the drive believes it is (raise PositionUnknown if it cannot say)."""

    @abstractmethod
    def move_by(self, delta_um: float) -> float:
        """Move relative, block until the move ended and the mechanics settled; return the new
        position. Raise DriveFault if the move was refused or aborted."""

    @abstractmethod
    def move_to(self, z_um: float) -> float:
        """Move absolute, like ``move_by``."""

    @abstractmethod
    def stop(self) -> None:
        """Stop at once (decelerating if the hardware can); never raises for an idle drive."""

    @property
    @abstractmethod
    def travel_um(self) -> tuple[float, float]:
        """Soft travel limits (min, max) enforced by the drive itself."""

    @property
    @abstractmethod
    def settled_at(self) -> float:
        """time.monotonic() at which the last move finished settling."""

    def close(self) -> None:  # noqa: B027
        """Release the device (leaving the motor safe)."""


class Illuminator(ABC):
    """The LED board: shows an illumination pattern given as LED NA vectors."""

    @abstractmethod
    def show(self, pattern: Pattern) -> None:
        """Light exactly the pattern's LEDs (raise HardwareError if an LED does not exist)."""

    @abstractmethod
    def off(self) -> None:
        """All LEDs off."""

    def close(self) -> None:  # noqa: B027
        """Release the device (LEDs off)."""
