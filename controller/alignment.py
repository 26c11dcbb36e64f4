"""The alignment check: where the autofocus LED really is, read from the frames' spectrum.

Under one coherent off-axis LED of NA vector ``a`` the image's spectrum is the unscattered beam
interfering with the scattered light: the sample's spectrum seen through two copies of the
objective's pupil, discs of radius NA/λ centred at ±a/λ (controller/frame_views.py draws the
ones the bundle expects). Defocus and the sample change what fills the discs, not where they
end, so the discs' outline fixes ``a``.

The fit: the power spectra of Hann-windowed tiles of every frame are averaged (Welch), and
their log compared ring by ring (rings about the zero frequency, which absorbs the sample
spectrum's fall-off with frequency) with a two-level model, bright inside the union of the two
discs, dark outside, the discs drawn on the frame's periodic frequency grid (the camera folds
what lies beyond its Nyquist frequency, and so do the corner arcs that fix the discs' height).
The LED vector and the discs' apparent radius (the window's blur widens them by about a bin)
that explain most of the rings' variance win: a coarse grid search, then Nelder-Mead.

Measured on the paper preset's 512² virtual frames (sparse and dense cells, three defoci each):
see docs/retrofit.md for the figures and the command that made them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft
import scipy.ndimage
import scipy.optimize

from controller.errors import FocuslockError
from controller.frame_views import na_per_bin, windowed_spectrum
from controller.optics import Led, Optics, Pattern, Preset

TILE = 512  # pixels a side of the tiles whose spectra are averaged (a frame's side if smaller)
MIN_TILE = 64
SEARCH_NA = 0.1  # the LED is looked for this far (in NA) from where the bundle expects it
COARSE_STEP_BINS = 2.0  # the grid search's step, in frequency bins of the tile
# What tells the circles apart from no circles, measured on 512² virtual frames: the log-power
# step into the fitted discs is 0.97-1.6 under the autofocus LED (one frame or three, sparse or
# dense cells), 0.47 under the ground-truth half annulus, 0.1 under an on-axis LED, 0 on an empty
# field; the variance the discs explain is 0.13-0.4 (a single frame's periodogram is speckled)
# against 0.11 and below.
MIN_EXPLAINED = 0.05
MIN_CONTRAST = 0.8
ALIGNED_NA = 0.01  # within this the LED is aligned (the pattern match tolerance, Pattern.is_close)
MEASURED_ACCURACY_NA = 0.006  # docs/retrofit.md: the worst error measured (one frame; 3: 0.003)


class AlignmentError(FocuslockError, ValueError):
    """The frames cannot say where the LED is (no pupil circles, or a pattern the check cannot
    read)."""


@dataclass(frozen=True)
class Alignment:
    """Where the autofocus LED is against where the bundle expects it."""

    expected_na: tuple[float, float]
    measured_na: tuple[float, float]
    radius_na: float  # the discs' apparent radius (the objective's NA, widened by the window)
    explained: float  # fraction of the rings' variance the two discs explain
    contrast: float  # log power step from outside to inside the discs (median over rings)
    led_distance_mm: float
    frames: int

    @property
    def offset_na(self) -> tuple[float, float]:
        """Measured minus expected NA vector."""
        return (self.measured_na[0] - self.expected_na[0],
                self.measured_na[1] - self.expected_na[1])

    @property
    def move_mm(self) -> tuple[float, float]:
        """How far to move the LED in its plane (x along image columns, y along image rows) to
        put it where the bundle expects it."""
        want = led_position_mm(self.expected_na, self.led_distance_mm)
        have = led_position_mm(self.measured_na, self.led_distance_mm)
        return (want[0] - have[0], want[1] - have[1])

    @property
    def aligned(self) -> bool:
        return math.hypot(*self.offset_na) <= ALIGNED_NA

    @property
    def advice(self) -> str:
        """The plain sentence a person acts on."""
        if self.aligned:
            return (f"the LED is aligned: {math.hypot(*self.offset_na):.3f} NA from where the "
                    f"bundle expects it (within {ALIGNED_NA} NA)")
        dx, dy = self.move_mm
        parts = []
        if abs(dx) >= 0.05:
            parts.append(f"{abs(dx):.1f} mm toward the camera's "
                         f"{'right' if dx > 0 else 'left'} edge")
        if abs(dy) >= 0.05:
            parts.append(f"{abs(dy):.1f} mm toward the camera's "
                         f"{'bottom' if dy > 0 else 'top'} edge")
        return "move the LED " + " and ".join(parts or ["less than 0.1 mm"])

    def to_json(self) -> dict[str, Any]:
        return {
            "expected_na": list(self.expected_na),
            "measured_na": [round(v, 4) for v in self.measured_na],
            "offset_na": [round(v, 4) for v in self.offset_na],
            "offset_na_norm": round(math.hypot(*self.offset_na), 4),
            "move_mm": [round(v, 2) for v in self.move_mm],
            "led_distance_mm": self.led_distance_mm,
            "aligned": self.aligned,
            "aligned_within_na": ALIGNED_NA,
            "accuracy_na": MEASURED_ACCURACY_NA,
            "advice": self.advice,
            "radius_na": round(self.radius_na, 4),
            "explained": round(self.explained, 3),
            "contrast": round(self.contrast, 2),
            "frames": self.frames,
        }


def led_position_mm(na: tuple[float, float], distance_mm: float) -> tuple[float, float]:
    """Where in a plane ``distance_mm`` below the sample an LED sits whose light has this NA
    vector (in air; it travels from the LED to the sample, so the position is opposite the NA,
    controller/optics.py LedArray)."""
    scale = -distance_mm / math.sqrt(max(1.0 - na[0] ** 2 - na[1] ** 2, 1e-9))
    return (na[0] * scale, na[1] * scale)


def led_distance_mm(configured_mm: float, system: Preset) -> float:
    """The autofocus LED's distance below the sample: the config's ``[optics] led_distance_mm``,
    or (0) that of the preset's array LED nearest the autofocus LED."""
    if configured_mm > 0:
        return configured_mm
    led = system.autofocus.leds[0]
    return system.leds.positions_mm[system.leds.nearest(led.na_x, led.na_y)][2]


def check_alignment(frames: Sequence[np.ndarray], optics: Optics, pattern: Pattern,
                    led_distance_mm: float) -> Alignment:
    """Fit the pupil circles of ``frames`` (2D, any dtype, taken under ``pattern``) and say
    where the LED is; AlignmentError when they are not to be seen."""
    led = _single_led(pattern, optics)
    if not frames:
        raise AlignmentError("no frames to check the alignment on")
    log_power = _log_power(frames)
    side = log_power.shape[0]
    step = na_per_bin(optics, side, led.wavelength_um)
    radius = optics.na / step
    rings = _Rings(log_power, radius, math.hypot(led.na_x, led.na_y) / step)
    expected = np.array([led.na_x, led.na_y]) / step
    reach = SEARCH_NA / step
    coarse = int(reach / COARSE_STEP_BINS)
    grid = [expected + COARSE_STEP_BINS * np.array([i, j])
            for i in range(-coarse, coarse + 1) for j in range(-coarse, coarse + 1)]
    sub = rings.subsampled()
    start = max(grid, key=lambda c: sub.explained(c[0], c[1], radius))
    simplex = np.array([[*start, radius], [start[0] + 1, start[1], radius],
                        [start[0], start[1] + 1, radius], [*start, radius + 1]])
    best = scipy.optimize.minimize(
        lambda p: -rings.explained(p[0], p[1], p[2]), simplex[0], method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 0.05, "fatol": 1e-5})
    cx, cy, fitted_radius = (float(v) for v in best.x)
    explained = rings.explained(cx, cy, fitted_radius)
    contrast = rings.contrast(cx, cy, fitted_radius)
    if (explained < MIN_EXPLAINED or contrast < MIN_CONTRAST
            or math.hypot(cx - expected[0], cy - expected[1]) > reach
            or abs(fitted_radius - radius) > 0.1 * radius):
        raise AlignmentError(
            f"cannot see the pupil circles: the two discs of radius NA/λ the autofocus LED "
            f"should light explain {explained:.0%} of the spectrum (at least "
            f"{MIN_EXPLAINED:.0%} needed) at a contrast of {contrast:.2f} (log power; at "
            f"least {MIN_CONTRAST}); check that the field holds a sample, is exposed well, and "
            f"that the autofocus LED alone is lit within {SEARCH_NA} NA of where it should be")
    return Alignment((led.na_x, led.na_y), (cx * step, cy * step), fitted_radius * step,
                     explained, contrast, led_distance_mm, len(frames))


def _single_led(pattern: Pattern, optics: Optics) -> Led:
    if optics.colour_filter != "mono":
        raise AlignmentError("the alignment check reads monochrome frames; this camera "
                             "delivers a colour mosaic")
    if len(pattern.leds) != 1:
        raise AlignmentError(f"the alignment check needs one LED lit; pattern "
                             f"{pattern.name!r} lights {len(pattern.leds)}")
    led = pattern.leds[0]
    if not 0 < led.na < optics.na:
        raise AlignmentError(f"the alignment check needs an off-axis brightfield LED (NA "
                             f"between 0 and the objective's {optics.na}); pattern "
                             f"{pattern.name!r} has {led.na:.3f}")
    return led


def _log_power(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Log of the centred power spectrum averaged over Hann-windowed tiles of every frame."""
    shapes = {np.shape(f) for f in frames}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise AlignmentError(f"frames must be 2D and all of one shape, got {sorted(shapes)}")
    rows, cols = next(iter(shapes))
    side = min(TILE, rows, cols) // 2 * 2
    if side < MIN_TILE:
        raise AlignmentError(f"frames of {rows}x{cols} pixels are too small for the alignment "
                             f"check (at least {MIN_TILE} a side)")
    total = np.zeros((side, side), dtype=np.float64)
    count = 0
    for frame in frames:
        for y0 in range(0, rows - side + 1, side):
            for x0 in range(0, cols - side + 1, side):
                tile = np.asarray(frame[y0:y0 + side, x0:x0 + side])
                total += np.abs(windowed_spectrum(tile)) ** 2
                count += 1
    power = scipy.fft.fftshift(total / count)
    floor = max(float(power.max()) * 1e-12, 1e-30)
    return scipy.ndimage.uniform_filter(np.log(power + floor), 3, mode="wrap")


class _Rings:
    """The log spectrum's pixels beyond the discs' common lens, grouped in rings about the zero
    frequency, and how well two discs explain them."""

    def __init__(self, log_power: np.ndarray, radius: float, centre: float,
                 every: int = 1) -> None:
        side = log_power.shape[0]
        yy, xx = np.mgrid[:side:every, :side:every] - side // 2
        r = np.hypot(yy, xx)
        keep = r > max(radius - centre, 0.0) + 2.0  # inside the lens both discs cover all
        self.side = side
        self.x = xx[keep].astype(np.float32)
        self.y = yy[keep].astype(np.float32)
        self.values = log_power[::every, ::every][keep]
        self.ring = np.round(r[keep] / every).astype(np.intp)
        self.bins = int(self.ring.max()) + 1
        self.count = np.bincount(self.ring, minlength=self.bins).astype(np.float64)
        sums = np.bincount(self.ring, self.values, self.bins)
        self.sums = sums
        squares = np.bincount(self.ring, self.values**2, self.bins)
        used = self.count > 0
        self.variance = float(np.sum(squares[used] - sums[used] ** 2 / self.count[used]))
        self._args = (log_power, radius, centre)

    def subsampled(self) -> _Rings:
        """Every second pixel each way: a quarter of the cost, for the grid search."""
        return _Rings(*self._args, every=2)

    def _mask(self, cx: float, cy: float, radius: float) -> np.ndarray:
        """How much of each pixel lies inside either disc (a one-bin soft edge), on the
        periodic frequency grid."""
        half = self.side / 2.0
        nearest = None
        for sign in (1.0, -1.0):
            dx = (self.x - sign * cx + half) % self.side - half
            dy = (self.y - sign * cy + half) % self.side - half
            distance = np.hypot(dx, dy)
            nearest = distance if nearest is None else np.minimum(nearest, distance)
        assert nearest is not None
        return np.clip(0.5 + radius - nearest, 0.0, 1.0)

    def _fit(self, cx: float, cy: float, radius: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mask = self._mask(cx, cy, radius)
        m = np.bincount(self.ring, mask, self.bins)
        mm = np.bincount(self.ring, mask * mask, self.bins)
        mv = np.bincount(self.ring, mask * self.values, self.bins)
        used = self.count > 0
        cov = mv[used] - m[used] * self.sums[used] / self.count[used]
        var = mm[used] - m[used] ** 2 / self.count[used]
        return cov, var, var > 1e-6

    def explained(self, cx: float, cy: float, radius: float) -> float:
        """Fraction of the rings' variance a per-ring level inside and outside the discs
        explains (a per-ring regression on the mask)."""
        cov, var, ok = self._fit(cx, cy, radius)
        return float(np.sum(cov[ok] ** 2 / var[ok])) / max(self.variance, 1e-30)

    def contrast(self, cx: float, cy: float, radius: float) -> float:
        """The median over rings of the log-power step from outside to inside the discs."""
        cov, var, ok = self._fit(cx, cy, radius)
        return float(np.median(cov[ok] / var[ok])) if np.any(ok) else 0.0
