"""A colour camera: the raw Bayer mosaic of an IMX477-class sensor (the Raspberry Pi HQ camera).

Every pixel sits behind one filter of the colour filter array (``optics.colour_filter`` names the
top-left 2x2 cell, e.g. ``RGGB``) and collects the light of each wavelength weighted by its
filter's spectral response, cross-talk included (a red filter passes a little blue light). The
frame stays the raw mosaic, as picamera2 delivers it unpacked: no demosaicing, no white balance
(docs/conventions.md). The sensor model (controller/sim/camera.py: shot and read noise, full
well, fixed pattern, ADC) then turns the relative intensity into counts, as for a monochrome
camera. A monochrome camera (``colour_filter = "mono"``) has no filter: it sees every colour
with response 1 (``Imager.planes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.mosaic import FILTER_COLOURS, site_offsets
from controller.optics import Optics, Pattern
from controller.sim.errors import SimError
from controller.sim.imaging import Imager


@dataclass(frozen=True)
class SpectralResponse:
    """Relative response of the sensor's R, G and B sites (the green peak is 1) against the
    wavelength of the light, tabulated and interpolated linearly; 0 outside the table."""

    wavelengths_um: tuple[float, ...]
    red: tuple[float, ...]
    green: tuple[float, ...]
    blue: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.wavelengths_um)
        if n < 2 or any(b <= a for a, b in zip(self.wavelengths_um, self.wavelengths_um[1:],
                                                 strict=False)):
            raise SimError("spectral response: wavelengths must be at least two, increasing")
        for colour in ("red", "green", "blue"):
            values = getattr(self, colour)
            if len(values) != n or not all(0.0 <= v <= 1.5 for v in values):
                raise SimError(f"spectral response: {colour} needs {n} values in 0..1.5")

    def __call__(self, colour: str, wavelength_um: float) -> float:
        """The response of the ``colour`` sites (R, G or B) to light of this wavelength."""
        curve = {"R": self.red, "G": self.green, "B": self.blue}.get(colour)
        if curve is None:
            raise SimError(f"spectral response: colour must be one of {FILTER_COLOURS}, "
                           f"got {colour!r}")
        return float(np.interp(wavelength_um, self.wavelengths_um, curve, left=0.0, right=0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"wavelengths_um": list(self.wavelengths_um), "red": list(self.red),
                "green": list(self.green), "blue": list(self.blue)}


def _nm(*values: float) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


# Representative curves of a Sony back-illuminated IMX sensor (the IMX477 of the Pi HQ camera)
# behind the camera's IR-cut filter (cut-off near 650 nm), in the shape such datasheets show:
# not a measurement of one sensor; a measured table replaces it without other change.
# 400..700 nm in 10 nm steps. At the WS2812 LEDs' peaks (docs/simulator.md has the table):
# blue 465 nm -> B 0.765, G 0.22, R 0.03; green 525 nm -> G 0.98, B 0.17, R 0.055;
# red 625 nm -> R 0.84, G 0.105, B 0.03.
IMX477_RESPONSE = SpectralResponse(
    wavelengths_um=tuple(round(0.40 + 0.01 * i, 2) for i in range(31)),
    red=_nm(0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.035, 0.04, 0.045, 0.05,
            0.06, 0.08, 0.12, 0.18, 0.32, 0.55, 0.74, 0.84, 0.87, 0.86, 0.82, 0.76, 0.62, 0.40,
            0.20, 0.08, 0.03, 0.0),
    green=_nm(0.04, 0.05, 0.06, 0.08, 0.10, 0.13, 0.18, 0.26, 0.38, 0.55, 0.72, 0.86, 0.96,
              1.00, 1.00, 0.95, 0.86, 0.73, 0.58, 0.42, 0.26, 0.17, 0.12, 0.09, 0.07, 0.05,
              0.04, 0.03, 0.02, 0.01, 0.0),
    blue=_nm(0.30, 0.42, 0.55, 0.65, 0.72, 0.77, 0.78, 0.75, 0.66, 0.55, 0.42, 0.30, 0.20, 0.14,
             0.10, 0.08, 0.06, 0.05, 0.04, 0.035, 0.03, 0.03, 0.03, 0.03, 0.03, 0.025, 0.02,
             0.015, 0.01, 0.005, 0.0),
)


@dataclass(frozen=True)
class BayerFilter:
    """The colour filter array over the sensor: its layout and its filters' spectral response."""

    layout: str  # RGGB, BGGR, GRBG or GBRG: the top-left 2x2 cell
    response: SpectralResponse = IMX477_RESPONSE

    def __post_init__(self) -> None:
        site_offsets(self.layout, "G")  # names a bad layout

    @classmethod
    def for_optics(cls, optics: Optics) -> BayerFilter | None:
        """The optics' colour filter with the IMX477 response; None for a monochrome camera."""
        return None if optics.colour_filter == "mono" else cls(optics.colour_filter)

    def mosaic(self, planes: Mapping[float, np.ndarray]) -> np.ndarray:
        """float32 relative intensity at every pixel: each site weighs the per-wavelength planes
        (``Imager.colour_planes``) by its filter's response at their wavelengths."""
        if not planes:
            raise SimError("colour camera: no light planes to weigh")
        shape = next(iter(planes.values())).shape
        out = np.zeros(shape, dtype=np.float32)
        for colour in FILTER_COLOURS:
            for r, c in site_offsets(self.layout, colour):
                site = out[r::2, c::2]
                for wavelength, plane in planes.items():
                    site += np.float32(self.response(colour, wavelength)) * plane[r::2, c::2]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "response": self.response.to_dict()}


def sensor_intensity(imager: Imager, pattern: Pattern, defocus_um: float,
                     colour_filter: BayerFilter | None) -> np.ndarray:
    """The relative intensity the sensor's pixels receive at one defocus: the pattern's light
    through a colour camera's filters (its raw mosaic), or all of it on a monochrome sensor."""
    if colour_filter is None:
        return next(imager.planes(pattern, [defocus_um]))
    return colour_filter.mosaic(imager.colour_planes(pattern, defocus_um))
