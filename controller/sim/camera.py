"""The camera sensor: relative intensity in, uint16 counts out, with the noise of a real sensor.

Electrons per pixel = intensity x flux x exposure x the sensor's fixed response pattern (pixel
gain scatter and vignetting) + dark current x exposure + stray light. Shot noise is Poisson in
those electrons; the well clips at full well; read noise (Gaussian, in electrons) is added before
the ADC, which divides by the gain (electrons per count), adds the black-level offset, rounds and
clips to the bit depth. Frames are uint16 whatever the bit depth (a 12-bit camera delivers
0..4095), as the camera drivers deliver them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from controller.sim.errors import SimError

# Poisson draws are slow; above this many electrons the normal approximation N(λ, λ) differs from
# Poisson by far less than one count, so only the dim pixels get exact Poisson draws.
_EXACT_POISSON_BELOW_E = 100.0


@dataclass(frozen=True)
class CameraModel:
    """An sCMOS-like sensor by default (the paper's class of camera)."""

    full_well_e: float = 30000.0
    e_per_adu: float = 0.46  # gain: electrons per count
    read_noise_e: float = 1.6  # rms
    offset_adu: float = 100.0  # black level
    dark_e_per_s: float = 0.5
    stray_e: float = 0.0  # stray light and glare, electrons per pixel per exposure
    flux_e_per_s: float = 1.2e6  # electrons per pixel per second at relative intensity 1
    exposure_s: float = 0.01
    bit_depth: int = 16
    prnu: float = 0.005  # rms pixel-to-pixel gain variation (photo-response non-uniformity)
    vignetting: float = 0.02  # signal lost in the frame's corners (smooth radial falloff)
    sensor_seed: int = 0  # the fixed pattern of this particular sensor

    def __post_init__(self) -> None:
        for name in ("full_well_e", "e_per_adu", "flux_e_per_s", "exposure_s"):
            if not getattr(self, name) > 0:
                raise SimError(f"camera: {name} must be positive, got {getattr(self, name)}")
        for name in ("read_noise_e", "offset_adu", "dark_e_per_s", "stray_e", "prnu"):
            if getattr(self, name) < 0:
                raise SimError(f"camera: {name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.vignetting < 1:
            raise SimError(f"camera: vignetting must be in [0, 1), got {self.vignetting}")
        if not 8 <= self.bit_depth <= 16:
            raise SimError(f"camera: bit_depth must be 8..16, got {self.bit_depth}")

    @property
    def max_adu(self) -> int:
        return (1 << self.bit_depth) - 1

    def mean_electrons(self, intensity: np.ndarray) -> np.ndarray:
        """Expected electrons per pixel before noise (float32), fixed pattern included."""
        rows, cols = intensity.shape
        gain = _fixed_pattern((rows, cols), self.prnu, self.vignetting, self.sensor_seed)
        signal = np.float32(self.flux_e_per_s * self.exposure_s) * intensity * gain
        return signal + np.float32(self.dark_e_per_s * self.exposure_s + self.stray_e)

    def expose(self, intensity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One frame (uint16, same shape) of a relative-intensity image."""
        if intensity.ndim != 2:
            raise SimError(f"camera: a frame is 2D, got shape {intensity.shape}")
        mean = np.maximum(self.mean_electrons(np.asarray(intensity, dtype=np.float32)), 0.0)
        # Shot and read noise of bright pixels in one normal draw (their variances add); the
        # read noise of a pixel clipped at full well is lost with the clip.
        electrons = rng.standard_normal(mean.shape, dtype=np.float32)
        electrons *= np.sqrt(mean + np.float32(self.read_noise_e**2))
        electrons += mean
        dim = mean < _EXACT_POISSON_BELOW_E
        if np.any(dim):
            exact = rng.poisson(mean[dim]).astype(np.float32)
            exact += np.float32(self.read_noise_e) * rng.standard_normal(exact.shape,
                                                                          dtype=np.float32)
            electrons[dim] = exact
        np.minimum(electrons, np.float32(self.full_well_e), out=electrons)
        electrons *= np.float32(1.0 / self.e_per_adu)
        electrons += np.float32(self.offset_adu)
        np.rint(electrons, out=electrons)
        np.clip(electrons, 0, self.max_adu, out=electrons)
        return electrons.astype(np.uint16)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_bit_depth(cls, bit_depth: int) -> CameraModel:
        """A sensor matched to the optics' bit depth: the default sCMOS for 16 bits, a small
        CMOS sensor (Raspberry Pi HQ class) for fewer."""
        if bit_depth >= 16:
            return cls()
        offset = float(1 << (bit_depth - 4))
        return cls(full_well_e=8000.0, e_per_adu=8000.0 / ((1 << bit_depth) - 1 - offset),
                   read_noise_e=3.0, offset_adu=offset, flux_e_per_s=4.0e5, exposure_s=0.01,
                   bit_depth=bit_depth)


@lru_cache(maxsize=4)
def _fixed_pattern(shape: tuple[int, int], prnu: float, vignetting: float,
                   seed: int) -> np.ndarray:
    """Relative response of each pixel: the same in every frame of one sensor."""
    rows, cols = shape
    y = np.linspace(-1.0, 1.0, rows, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, cols, dtype=np.float32)[None, :]
    gain = 1.0 - np.float32(vignetting / 2.0) * (y**2 + x**2)
    if prnu > 0:
        rng = np.random.default_rng([seed, rows, cols])
        gain = gain * (1.0 + np.float32(prnu) * rng.standard_normal(shape, dtype=np.float32))
    gain.flags.writeable = False
    return gain


CAMERA_PRESETS: dict[str, CameraModel] = {
    "scmos": CameraModel(),
    "cmos-12bit": CameraModel.for_bit_depth(12),
    "cmos-8bit": CameraModel.for_bit_depth(8),
}
"""Sensors an instrument may carry instead of its optics' own (``Instrument.camera``): the
paper's sCMOS, a Raspberry Pi HQ-class 12-bit CMOS sensor, and an 8-bit webcam-class one."""
