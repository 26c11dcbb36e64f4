"""Where a focal stack is in focus, read from its incoherent (half-annulus) channel.

Under incoherent illumination a thin sample's image holds the most high-frequency power at focus
and loses it symmetrically on both sides, with no coherent fringes to fool the measure: the
paper's ground truth. Per plane: power spectrum of a central crop (mean removed), radially
averaged, log; the sharpness is the mean log power over the upper half of the frequencies the
image holds (0.5 to 1.0 of Nyquist, or of the incoherent cutoff 2NA/λ where the camera samples
finer than the optics resolve, as the Pi HQ camera behind a 0.25 NA objective does: there the band
above the cutoff holds only noise, and the peak landed up to 20 µm off). The peak is refined
below the plane spacing by a least-squares parabola through the sharpest plane and three on each
side.

Measured on simulated 512² stacks (1 µm spacing; error against the simulator's focus): the paper's
cubic spline through the curve, argmax, had a median error of 0.29 µm on 24 stacks (the top of the
curve is flat over about a depth of field, and the spline follows the noise there); the parabola
0.09–0.14 µm. On 80 stacks, bands 0.25–0.6 / 0.5–1.0 / 0.7–1.0 of Nyquist and 5- or 7-plane fits
gave overall medians of 0.11–0.14 µm; 0.5–1.0 with 7 planes was best (0.11 µm; sparse cells
0.08 µm, dense cell layers 0.20 µm). Dense layers (2–5 µm thick) are sharpest about 0.18 µm from
their mid-plane, which the simulator calls focus, whatever the band: a bias of the definition,
not noise. Lower bands (0.1–0.3) fail (0.8–1.3 µm): defocused phase objects gain low-frequency
contrast.

A colour camera's frame is its raw Bayer mosaic, whose filter pattern would put every plane's
low frequencies into the high band: its sharpness is measured on the sites of the channel's
colour (controller/mosaic.py), a half-resolution image. Training uses this module for its labels;
the box uses it to calibrate the parallax cue (controller/parallax.py) and to finish focus now on
the sharpness peak (controller/sharpness_finish.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from controller.errors import FocuslockError
from controller.mosaic import sites
from controller.optics import PARALLAX_PATTERN, Optics, Pattern
from controller.stackio import AUTOFOCUS_CHANNEL, FocalStack

CROP = 1024  # the paper's crop; smaller frames are used whole
LOW_FRACTION = 0.5  # sharpness sums radii from this fraction of the top frequency ...
HIGH_FRACTION = 1.0  # ... to this one; the top is Nyquist, or the optics' cutoff if lower
FIT_HALF_WIDTH = 3  # planes on each side of the sharpest one in the parabola fit
MIN_PROMINENCE = 5.0  # the peak must rise this many times the plane-to-plane noise
# Everything the result depends on: feature caches are keyed by it.
METHOD = {"crop": CROP, "band": [LOW_FRACTION, HIGH_FRACTION], "band_of": "min(Nyquist, 2NA/λ)",
          "fit_half_width": FIT_HALF_WIDTH,
          "min_prominence": MIN_PROMINENCE}


class GroundTruthError(FocuslockError, ValueError):
    """A stack whose focal plane cannot be measured."""


@dataclass(frozen=True)
class GroundTruth:
    focus_z_um: float  # the refined focal plane, in the stack's z coordinates
    z_um: np.ndarray  # the planes' z
    sharpness: np.ndarray  # the per-plane measure the peak was found in


def ground_truth_channel(stack: FocalStack) -> int:
    """Index of the incoherent channel: a pattern of several LEDs that is neither the autofocus
    one nor the two LEDs of a colour parallax reading."""
    candidates = [i for i, c in enumerate(stack.channels)
                  if len(c.leds) > 1 and c.name not in (AUTOFOCUS_CHANNEL, PARALLAX_PATTERN)]
    if not candidates:
        described = ", ".join(f"{c.name!r} ({len(c.leds)} LED{'s' * (len(c.leds) != 1)})"
                              for c in stack.channels)
        raise GroundTruthError(f"stack has no incoherent ground-truth channel (a pattern of "
                               f"several LEDs, e.g. a half annulus); it has {described}")
    return candidates[0]


def sharpness(planes: np.ndarray, top: float = 1.0) -> np.ndarray:
    """Mean log radial power between LOW_FRACTION and HIGH_FRACTION of the top frequency, per
    plane; ``top`` is that frequency as a fraction of Nyquist (1: Nyquist itself)."""
    rows, cols = planes.shape[-2:]
    size = min(CROP, rows, cols)
    y0, x0 = (rows - size) // 2, (cols - size) // 2
    crop = planes[:, y0:y0 + size, x0:x0 + size].astype(np.float32)
    crop -= crop.mean(axis=(1, 2), keepdims=True)
    power = np.abs(scipy.fft.rfft2(crop, workers=1)) ** 2
    fy = np.fft.fftfreq(size)[:, np.newaxis]
    fx = np.fft.rfftfreq(size)[np.newaxis, :]
    radius = np.hypot(fy, fx) / 0.5  # fraction of Nyquist
    ring = np.minimum((radius * (size // 2)).astype(np.int64), size // 2)
    counts = np.bincount(ring.ravel(), minlength=size // 2 + 1)
    keep = np.arange(counts.size)
    half = top * (size // 2)
    keep = keep[(keep >= LOW_FRACTION * half) & (keep < HIGH_FRACTION * half)]
    out = np.empty(planes.shape[0])
    for i, p in enumerate(power):
        radial = np.bincount(ring.ravel(), weights=p.ravel(), minlength=counts.size) / counts
        out[i] = np.mean(np.log(radial[keep] + 1e-12))
    return out


def sharpness_curve(stack: FocalStack) -> tuple[np.ndarray, np.ndarray]:
    """The planes' z in increasing order and the sharpness of the incoherent channel at each,
    the curve ``find_focus`` finds the peak in."""
    h = FIT_HALF_WIDTH
    if stack.z_um.size < 2 * h + 1:
        raise GroundTruthError(f"stack has {stack.z_um.size} planes; ground truth needs at "
                               f"least {2 * h + 1} to find a peak")
    order = np.argsort(stack.z_um)
    z = stack.z_um[order]
    if np.any(np.diff(z) <= 0):
        raise GroundTruthError("stack has repeated z positions")
    channel = ground_truth_channel(stack)
    return z, pattern_sharpness(stack.images[channel][order], stack.optics,
                                stack.channels[channel])


def pattern_sharpness(planes: np.ndarray, optics: Optics, pattern: Pattern) -> np.ndarray:
    """``sharpness`` of frames taken through ``optics`` under the incoherent ``pattern``: a colour
    camera's on its sites of the pattern's colour, the band's top at the optics' incoherent
    cutoff where the camera samples finer than that."""
    light = pattern.leds[0].wavelength_um or optics.wavelength_um
    pixel_um = optics.pixel_um
    if optics.colour_filter != "mono":
        planes = sites(planes, optics.colour_filter, light)
        pixel_um *= 2
    cutoff = 2.0 * optics.na / light  # incoherent cutoff, cycles/µm
    return sharpness(planes, top=min(1.0, cutoff * 2.0 * pixel_um))


def find_focus(stack: FocalStack) -> GroundTruth:
    """The stack's focal plane from its incoherent channel, refined below the plane spacing."""
    h = FIT_HALF_WIDTH
    z, curve = sharpness_curve(stack)
    peak = int(np.argmax(curve))
    noise = float(np.median(np.abs(np.diff(curve))))
    if curve[peak] - np.min(curve) < MIN_PROMINENCE * noise:
        raise GroundTruthError("no sharpness peak stands out of the plane-to-plane noise: "
                               "an empty or featureless field?")
    if peak < h or peak > z.size - 1 - h:
        raise GroundTruthError(f"the sharpest plane (z = {z[peak]:g} µm) is at the stack's end: "
                               f"focus is not inside the stack's z range")
    near = slice(peak - h, peak + h + 1)
    a, b, _ = np.polyfit(z[near], curve[near], 2)
    if a >= 0:
        raise GroundTruthError(f"no sharpness peak near z = {z[peak]:g} µm (the curve is not "
                               f"convex there): is the stack in focus anywhere?")
    focus = float(np.clip(-b / (2 * a), z[peak - 1], z[peak + 1]))
    return GroundTruth(focus, z, curve)
