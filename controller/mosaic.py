"""Reading a colour camera's raw Bayer mosaic: which pixels sit behind which filter.

A colour frame stays the raw mosaic (docs/conventions.md): ``optics.colour_filter`` names the
filter of the top-left 2x2 cell (``RGGB`` ...), so ``frame[r::2, c::2]`` for one of a colour's
(row, column) offsets in that cell is a half-resolution sub-image of that colour's sites. The
light of an LED is read from the sites whose filter peaks nearest its wavelength; the parallax
cue and the ground truth of a colour stack read their views this way.
"""

from __future__ import annotations

import numpy as np

from controller.errors import FocuslockError
from controller.optics import COLOUR_FILTERS

FILTER_COLOURS = ("R", "G", "B")
# Where a Bayer sensor's filters pass most light (µm): an LED's light is read from the sites of
# the colour whose peak lies nearest its wavelength.
FILTER_PEAK_UM = {"B": 0.46, "G": 0.535, "R": 0.61}


class MosaicError(FocuslockError, ValueError):
    """A frame or colour filter that does not fit the mosaic asked of it."""


def filter_colour(wavelength_um: float) -> str:
    """R, G or B: the filter whose peak is nearest the wavelength."""
    return min(FILTER_COLOURS, key=lambda c: abs(FILTER_PEAK_UM[c] - wavelength_um))


def site_offsets(colour_filter: str, colour: str) -> tuple[tuple[int, int], ...]:
    """The (row, column) offsets inside the 2x2 cell of the pixels behind ``colour``'s filter:
    one for R and B, two for G."""
    if colour_filter not in COLOUR_FILTERS or colour_filter == "mono":
        raise MosaicError(f"colour filter must be one of {COLOUR_FILTERS[1:]}, got "
                          f"{colour_filter!r}")
    if colour not in FILTER_COLOURS:
        raise MosaicError(f"filter colour must be one of {FILTER_COLOURS}, got {colour!r}")
    return tuple(divmod(i, 2) for i, c in enumerate(colour_filter) if c == colour)


def sites(frames: np.ndarray, colour_filter: str, wavelength_um: float) -> np.ndarray:
    """The sub-image(s) of the sites that read light of this wavelength, from the first of its
    colour's sites: ``frames[..., r::2, c::2]`` (a view, no copy)."""
    r, c = site_offsets(colour_filter, filter_colour(wavelength_um))[0]
    return np.asarray(frames)[..., r::2, c::2]


def site_of(colour_filter: str, wavelength_um: float) -> tuple[int, int]:
    """The (row, column) offset in camera pixels of the site ``sites`` reads for the
    wavelength."""
    return site_offsets(colour_filter, filter_colour(wavelength_um))[0]
