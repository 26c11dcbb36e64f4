"""Parallax views and stacks from the real virtual microscope, shared by the parallax tests and
the benchmark: two monochrome frames (preset ``paper-pair``) or one raw Bayer frame under a red
and a blue LED (``pi-hq-colour``).

Until the simulator renders colour LEDs itself, a colour frame is made here from its parts: each
LED's view rendered at its own wavelength and chromatic defocus by the monochrome ``Imager``, and
the two mixed into the sites of the RGGB mosaic by a filter response with cross-talk (a red site
sees some blue light and the reverse), then exposed by the ``CameraModel``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from controller.mosaic import FILTER_COLOURS, filter_colour, site_offsets
from controller.optics import Led, Optics, Pattern, Preset, preset
from controller.sim import CameraModel, Imager, Sample, make_sample
from controller.stackio import FocalStack

# Site responses to the two WS2812 colours (R, G, B sites; the shape of an IMX477's curves).
RESPONSE = {0.625: {"R": 0.84, "G": 0.105, "B": 0.03},
            0.465: {"R": 0.03, "G": 0.22, "B": 0.765}}


def sample_of(kind: str, seed: int, size: int, pixel_um: float) -> Sample:
    """A seeded sample of any kind; ``image`` gets a seeded smooth random picture, and sparse
    cells a density that puts several cells into a small field."""
    params: dict[str, object] = {}
    if kind == "image":
        picture = gaussian_filter(np.random.default_rng(seed).random((size, size)), 3.0)
        params["image"] = picture
    if kind == "sparse-cells" and size <= 512:
        params["density_per_mm2"] = 1500.0
    return make_sample(kind, (size, size), pixel_um, seed, **params)


def _mono_planes(imager: Imager, pattern: Pattern, defocus: Sequence[float]) -> list[np.ndarray]:
    return list(imager.planes(pattern, defocus))


def colour_planes(sample: Sample, system: Preset, defocus: Sequence[float]) -> list[np.ndarray]:
    """Noise-free relative intensity of the raw mosaic under both parallax LEDs, per defocus."""
    views = system.parallax
    assert views is not None and views.one_frame
    optics = system.optics
    mosaic = [np.zeros(sample.shape, np.float32) for _ in defocus]
    for led in (views.first, views.second):
        assert led.wavelength_um is not None
        shifted = [d + optics.focal_shift_um(led.wavelength_um) for d in defocus]
        imager = Imager(dataclasses.replace(optics, wavelength_um=led.wavelength_um), sample)
        single = Pattern("one", (Led(led.na_x, led.na_y, led.brightness),))
        for out, plane in zip(mosaic, _mono_planes(imager, single, shifted), strict=True):
            for colour in FILTER_COLOURS:
                for r, c in site_offsets(optics.colour_filter, colour):
                    out[r::2, c::2] += RESPONSE[led.wavelength_um][colour] * plane[r::2, c::2]
    return mosaic


def reading_frames(kind: str, seed: int, defocus: Sequence[float], *, preset_name: str,
                   size: int = 512, noise_seed: int = 0) -> list[list[np.ndarray]]:
    """Per defocus, the frames of one parallax reading (one per pattern of the views)."""
    system = preset(preset_name)
    views = system.parallax
    assert views is not None
    sample = sample_of(kind, seed, size, system.optics.pixel_um)
    camera = CameraModel.for_bit_depth(system.optics.bit_depth)
    rng = np.random.default_rng(noise_seed)
    if views.one_frame:
        return [[camera.expose(plane, rng)] for plane in colour_planes(sample, system, defocus)]
    imager = Imager(system.optics, sample)
    per_view = [_mono_planes(imager, p, defocus) for p in views.patterns]
    return [[camera.expose(view[i], rng) for view in per_view] for i in range(len(defocus))]


def parallax_stack(kind: str, seed: int, z_um: Sequence[float] | np.ndarray, *, preset_name: str,
                   size: int = 512, focus_z_um: float = 0.0) -> FocalStack:
    """A focal stack with the channels ``focuslock collect`` writes for the preset (autofocus,
    ground truth, parallax views; a colour camera's frames are raw mosaics)."""
    system = preset(preset_name)
    views = system.parallax
    assert views is not None
    z = np.asarray(z_um, dtype=float)
    defocus = focus_z_um - z
    rng = np.random.default_rng(seed + 7)
    sample = sample_of(kind, seed, size, system.optics.pixel_um)
    camera = CameraModel.for_bit_depth(system.optics.bit_depth)
    imager = Imager(system.optics, sample)
    extra = [p for p in (system.autofocus, system.ground_truth) if p not in views.patterns]
    channels = [np.stack([camera.expose(_as_mosaic(plane, system.optics), rng)
                          for plane in imager.planes(_monochrome(pattern), defocus)])
                for pattern in extra]
    readings = reading_frames(kind, seed, list(defocus), preset_name=preset_name, size=size,
                              noise_seed=seed + 11)
    for k in range(len(views.patterns)):
        channels.append(np.stack([frames[k] for frames in readings]))
    optics = dataclasses.replace(system.optics, frame_shape=(size, size))
    return FocalStack(np.stack(channels), z, (*extra, *views.patterns), optics, focus_z_um,
                      {"sample": {"kind": kind, "seed": seed}})


def _monochrome(pattern: Pattern) -> Pattern:
    """The pattern's LEDs at the optics' own wavelength (the monochrome Imager renders one)."""
    return Pattern(pattern.name, tuple(dataclasses.replace(led, wavelength_um=None)
                                       for led in pattern.leds))


def _as_mosaic(plane: np.ndarray, optics: Optics) -> np.ndarray:
    """Green ground-truth light through the colour filter: each site's response to it."""
    if optics.colour_filter == "mono":
        return plane
    out = plane.copy()
    green = {"R": 0.055, "G": 0.98, "B": 0.17}
    for colour in FILTER_COLOURS:
        for r, c in site_offsets(optics.colour_filter, colour):
            out[r::2, c::2] *= green[colour]
    assert filter_colour(optics.wavelength_um) == "G"
    return out
