"""What the box sees, for a person setting it up: the frame, its spectrum, its histogram.

Someone bolting LEDs onto a microscope checks three things by eye: that the field holds a sample
and is well exposed (the frame and its histogram, against the gates' limits), and that the
autofocus LED sits where the model expects it (the spectrum: under one off-axis LED the image's
spectrum magnitude is bright inside two circles of radius NA/λ centred at ±NA_led/λ,
controller/features.py; the expected circles are drawn over it, with the crop the features
read).

Cheap by design, since the dashboard fetches these about once a step: the frame is shown
block-averaged to at most ``MAX_SIDE`` pixels, the spectrum is that of the frame's central
square of at most ``MAX_SIDE`` pixels (it keeps the whole frequency range, at a coarser step).
PNG encoding is Pillow's (a box dependency already, for the montages).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft
from PIL import Image, ImageDraw

from controller.config import GateSettings
from controller.features import FeatureSpec
from controller.gates import SATURATION_LEVEL, frame_stats
from controller.optics import Optics, Pattern

MAX_SIDE = 512  # pixels of the PNGs, at most, along either side
HISTOGRAM_BINS = 64
STRETCH_PERCENTILES = (0.5, 99.5)  # contrast stretch: these percentiles become black and white
CIRCLE_COLOUR = (255, 64, 64)  # the expected pupil circles
CROP_COLOUR = (255, 220, 0)  # the features' crop


@dataclass(frozen=True)
class Sighting:
    """The latest autofocus frame and what the bundle expects of it."""

    image: np.ndarray  # 2D, as the camera delivered it
    full_scale: int
    optics: Optics  # of the frames as the camera delivers them
    pattern: Pattern  # the autofocus pattern lit for the frame
    spec: FeatureSpec | None  # the bundle's features (None: no network reads the frame)


def png(pixels: np.ndarray) -> bytes:
    """8-bit grey (rows, cols) or RGB (rows, cols, 3) pixels as PNG bytes."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def stretched(values: np.ndarray) -> np.ndarray:
    """``values`` as uint8, its low and high percentiles black and white."""
    low, high = np.percentile(values, STRETCH_PERCENTILES)
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.clip((values - low) * scale, 0, 255).astype(np.uint8)


def shrunk(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """The image block-averaged by the smallest integer factor that fits ``max_side``."""
    factor = -(-max(image.shape) // max_side)
    rows, cols = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    blocks = image[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def frame_png(image: np.ndarray) -> bytes:
    """The frame, at most ``MAX_SIDE`` pixels a side, contrast-stretched, 8-bit grey."""
    return png(stretched(shrunk(image)))


def central_square(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """The frame's central square of at most ``max_side`` pixels (an even side)."""
    side = min(max_side, *image.shape) // 2 * 2
    y0, x0 = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[y0:y0 + side, x0:x0 + side]


def windowed_spectrum(square: np.ndarray) -> np.ndarray:
    """The spectrum (DC at ``[0, 0]``) of a square frame, mean removed and Hann-windowed so the
    frame's edges draw no cross through it."""
    values = square.astype(np.float32)
    values -= values.mean()
    window = np.hanning(values.shape[0]).astype(np.float32)
    values *= window[:, None] * window[None, :]
    return scipy.fft.fft2(values, workers=1)


def log_spectrum(square: np.ndarray) -> np.ndarray:
    """Log magnitude of a square frame's centred spectrum (DC at ``[n // 2, n // 2]``)."""
    spectrum = scipy.fft.fftshift(windowed_spectrum(square))
    return np.log(np.abs(spectrum) + np.float32(1e-3))


def na_per_bin(optics: Optics, side: int, wavelength_um: float | None = None) -> float:
    """One frequency bin of a ``side``-pixel square's spectrum, in NA at this wavelength."""
    return (wavelength_um or optics.wavelength_um) / (side * optics.pixel_um)


def spectrum_png(sighting: Sighting) -> bytes:
    """The log spectrum of the frame's central square, with the features' crop (yellow box:
    |f_y| < crop_y, 0 <= f_x < crop_x of the sampling frequency) and the two pupil circles of
    each LED of the pattern the bundle expects (red) drawn over it."""
    square = central_square(sighting.image)
    side = square.shape[0]
    picture = Image.fromarray(stretched(log_spectrum(square))).convert("RGB")
    draw = ImageDraw.Draw(picture)
    centre = side // 2
    optics = sighting.optics
    for led in sighting.pattern.leds:
        step = na_per_bin(optics, side, led.wavelength_um)
        radius = optics.na / step
        for sign in (1, -1):
            x, y = centre + sign * led.na_x / step, centre + sign * led.na_y / step
            draw.ellipse((x - radius, y - radius, x + radius, y + radius),
                         outline=CIRCLE_COLOUR)
    spec = sighting.spec
    if spec is not None:
        half_rows = spec.crop_y * side
        draw.rectangle((centre, centre - half_rows, centre + spec.crop_x * side,
                        centre + half_rows), outline=CROP_COLOUR)
    return png(np.asarray(picture))


def histogram(image: np.ndarray, full_scale: int, gates: GateSettings) -> dict[str, Any]:
    """The frame's histogram over [0, full scale] and where it stands against the frame gates
    (controller/gates.py): the saturated fraction and the mean, with their limits."""
    counts, _ = np.histogram(image, bins=HISTOGRAM_BINS, range=(0, full_scale + 1))
    stats = frame_stats(image, full_scale)
    return {
        "full_scale": full_scale,
        "bin_width": (full_scale + 1) / HISTOGRAM_BINS,
        "counts": counts.tolist(),
        "saturation_level": SATURATION_LEVEL * full_scale,
        "saturated_fraction": stats.saturated_fraction,
        "saturated_limit": gates.saturated_fraction,
        "saturated": stats.saturated_fraction > gates.saturated_fraction,
        "mean_fraction": stats.mean_fraction,
        "dark_limit": gates.dark_fraction,
        "dark": stats.mean_fraction < gates.dark_fraction,
    }
