"""How far the second parallax view lies from the first: windowed phase correlation per patch.

Physics (docs/parallax.md): the image under an LED of NA vector ν, defocused by D, is shifted by
``-D·ν/√(n²-|ν|²)`` against the focused one; two views under two LEDs shift against each other
in proportion to D, along the baseline (the NA vectors' difference), with its sign, whatever the
sample. Only part of the two images is the same picture shifted, though: the spatial frequencies
that both LEDs' pupil circles (centred at ±ν/λ, radius NA/λ, for each view) cover, a lens around
f = 0. Outside it each view holds what the other lacks (the phase-contrast halves that differ in
sign between the two sides), which pulls the correlation peak about; so the cross-power spectrum
is kept only inside that lens (soft edge), and whitened (phase correlation).

Per frame, in camera pixels: the patch grid of the features (``FeatureSpec.grid``), each patch
binned by (by, bx) pixels, as far as the lens still fits below the binned Nyquist frequency (the
cost falls with it; the lens is all the cue uses); per patch: mean-normalised, Hann window, real
FFT (pyFFTW plans cached per shape, like controller/features.py), cross-power, the lens, inverse
FFT; the peak searched along the baseline, refined by a parabola through its neighbours.

A colour frame (one raw Bayer mosaic, both LEDs lit) holds the views in the sites of their two
colours (controller/mosaic.py): half-resolution sub-images taken at different places of the 2x2
cell, so the second view's spectrum is phase-shifted back onto the first's sites before the
cross-power. The colour filters leak (a red site sees some blue light), which puts a copy of the
other view at zero shift into each: left alone it pulls every shift towards zero near focus.
The cue unmixes it: ``view1 - leak[0]·view2`` and ``view2 - leak[1]·view1`` (per frequency,
after the site alignment), with the leak fitted at calibration (controller/parallax.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controller.errors import FocuslockError
from controller.features import FeatureError, FeatureSpec, fft_lock, irfft_plan, rfft_plan
from controller.mosaic import site_of, sites
from controller.optics import Led, Optics, ParallaxViews

LENS_EDGE = 0.1  # the lens mask falls from 1 to 0 over this fraction of the pupil radius
MAX_BIN = 8  # camera (or colour-site) pixels binned along an axis, at most
MIN_WINDOW = 32  # binned pixels along each axis of a patch, at least
SEARCH_WIDTH = 1.5  # binned pixels either side of the baseline where the peak may lie
MAX_SHIFT_FRACTION = 0.375  # of the window along the baseline: farther peaks are not searched
MOSAIC_CONTRAST = 0.05
MOSAIC_SAMPLE = 8  # a colour frame's brightest site mean exceeds its dimmest by this, at least


class ParallaxError(FocuslockError, ValueError):
    """Frames, views or a calibration the parallax cue cannot use."""


def view_shift_px_per_um(led: Led, optics: Optics) -> np.ndarray:
    """(rows, cols) camera pixels the view under this LED moves per µm of the defocus its
    light sees: ``-ν/√(n²-|ν|²)`` over the pixel size at the sample."""
    n = optics.immersion_index
    nu = np.array([led.na_y, led.na_x])
    return -nu / math.sqrt(n * n - float(nu @ nu)) / optics.pixel_um


def baseline(views: ParallaxViews) -> np.ndarray:
    """Unit (rows, cols) vector of the second LED's NA vector minus the first's: shifts are
    reported along it."""
    d = np.array([views.second.na_y - views.first.na_y, views.second.na_x - views.first.na_x])
    return d / float(np.linalg.norm(d))


@dataclass(frozen=True)
class PatchShifts:
    """One reading's per-patch measurements."""

    shift_px: np.ndarray  # (patches,) second view against the first, camera px along the baseline
    height: np.ndarray  # (patches,) correlation peak, 1 for two identical shifted textures
    sharpness: np.ndarray  # (patches,) peak over the rms of the correlation around it


class ShiftMeter:
    """Measures the per-patch shift of the second view against the first in one reading's
    frames (one frame per pattern of ``views.patterns``, in order)."""

    def __init__(self, views: ParallaxViews, optics: Optics, *, patch: int = 512,
                 leak: tuple[float, float] = (0.0, 0.0)) -> None:
        if views.one_frame and optics.colour_filter == "mono":
            raise ParallaxError("one-frame parallax needs a colour camera (optics.colour_filter "
                                "names its Bayer layout), the optics have none")
        try:
            self.grid = FeatureSpec(patch=patch, bin_x=1).grid(optics.frame_shape)
        except FeatureError as exc:
            raise ParallaxError(f"parallax patches: {exc}") from exc
        if not all(math.isfinite(k) and abs(k) < 1 for k in leak):
            raise ParallaxError(f"parallax leak must be two numbers in (-1, 1), got {leak}")
        self.views, self.optics, self.patch, self.leak = views, optics, patch, leak
        self.site_px = 2 if views.one_frame else 1  # camera pixels per pixel of a view
        if views.one_frame:
            w1, w2 = views.first.wavelength_um, views.second.wavelength_um
            assert w1 is not None and w2 is not None  # ParallaxViews checks it
            a, b = site_of(optics.colour_filter, w1), site_of(optics.colour_filter, w2)
            if a == b:
                raise ParallaxError(f"the two LEDs ({w1} and {w2} µm) are read by the same "
                                    f"colour sites of the {optics.colour_filter} filter")
            self.site_delta = np.array([b[0] - a[0], b[1] - a[1]], dtype=float)
        else:
            self.site_delta = np.zeros(2)
        self.baseline = baseline(views)
        self.bins = self._bins()
        view_patch = patch // self.site_px
        self.window_shape = (view_patch // self.bins[0], view_patch // self.bins[1])
        self.mask = self._lens_mask()
        self._window = np.outer(np.hanning(self.window_shape[0]),
                                np.hanning(self.window_shape[1])).astype(np.float32)
        self._align = self._site_alignment()
        self._search = self._search_lags()

    @property
    def count(self) -> int:
        return self.grid[0] * self.grid[1]

    def _pupils(self) -> list[tuple[float, float, float]]:
        """(centre_y, centre_x, radius) in cycles/µm of the four pupil circles whose common
        part (the lens) both views share."""
        out = []
        for led in (self.views.first, self.views.second):
            lam = led.wavelength_um or self.optics.wavelength_um
            for s in (1.0, -1.0):
                out.append((s * led.na_y / lam, s * led.na_x / lam, self.optics.na / lam))
        return out

    def _bins(self) -> tuple[int, int]:
        """Pixels binned along each axis: the largest power of two whose Nyquist frequency still
        holds the lens along the baseline (where the shift is measured; across it the lens may
        be cut, which costs almost nothing: 0.539 against 0.502 µm RMSE within ±10 µm on sparse
        cells, paper-pair, 1024² frames), within MAX_BIN and MIN_WINDOW."""
        fine = np.linspace(-1.0, 1.0, 801) * max(r for _, _, r in self._pupils())
        fy, fx = np.meshgrid(fine, fine, indexing="ij")
        inside = np.ones(fy.shape, dtype=bool)
        for cy, cx, r in self._pupils():
            inside &= np.hypot(fy - cy, fx - cx) <= r
        if not inside.any():
            raise ParallaxError("the two views share no spatial frequency (their LEDs' pupil "
                                "circles do not overlap): the LEDs are too far apart in angle")
        along = float(np.abs(fy[inside] * self.baseline[0] + fx[inside] * self.baseline[1]).max())
        pixel = self.optics.pixel_um * self.site_px
        b = 1
        while (2 * b <= MAX_BIN and 0.5 / (2 * b * pixel) >= along
               and self.patch // self.site_px // (2 * b) >= MIN_WINDOW):
            b *= 2
        return b, b

    def _frequencies(self) -> tuple[np.ndarray, np.ndarray]:
        """(fy column, fx row) of the window's real FFT in cycles/µm."""
        h, w = self.window_shape
        pixel = self.optics.pixel_um * self.site_px
        return (np.fft.fftfreq(h, d=self.bins[0] * pixel)[:, None],
                np.fft.rfftfreq(w, d=self.bins[1] * pixel)[None, :])

    def _lens_mask(self) -> np.ndarray:
        fy, fx = self._frequencies()
        mask = np.ones(np.broadcast_shapes(fy.shape, fx.shape))
        for cy, cx, r in self._pupils():
            mask *= np.clip((r - np.hypot(fy - cy, fx - cx)) / (LENS_EDGE * r), 0.0, 1.0)
        mask[0, 0] = 0.0
        # normalised so that two identical textures correlate to a peak of 1
        return (mask / (mask.sum() * 2.0 / (self.window_shape[0] * self.window_shape[1]))
                ).astype(np.float32)

    def _site_alignment(self) -> np.ndarray | None:
        """Phase ramp moving the second view's sites onto the first's (colour frames)."""
        if not self.site_delta.any():
            return None
        fy, fx = self._frequencies()
        d = self.site_delta * self.optics.pixel_um  # µm
        return np.exp(-2j * np.pi * (fy * d[0] + fx * d[1])).astype(np.complex64)

    def _search_lags(self) -> np.ndarray:
        """Flat indices of the correlation lags near the baseline where the peak may lie."""
        h, w = self.window_shape
        ly = (np.arange(h) + h // 2) % h - h // 2
        lx = (np.arange(w) + w // 2) % w - w // 2
        uy, ux = self.baseline[0] / self.bins[0], self.baseline[1] / self.bins[1]
        norm = math.hypot(uy, ux)
        uy, ux = uy / norm, ux / norm
        along = ly[:, None] * uy + lx[None, :] * ux
        across = np.abs(ly[:, None] * ux - lx[None, :] * uy)
        reach = MAX_SHIFT_FRACTION * min(h / max(abs(uy), 1e-9), w / max(abs(ux), 1e-9))
        keep = (across <= SEARCH_WIDTH) & (np.abs(along) <= reach)
        return np.flatnonzero(keep)

    def check_frames(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The frames as 2-D arrays of the optics' shape, or a ParallaxError naming the fault."""
        expected = len(self.views.patterns)
        if isinstance(frames, np.ndarray) and frames.ndim == 2:
            frames = [frames]
        if len(frames) != expected:
            what = "one raw colour frame" if self.views.one_frame else "two frames"
            raise ParallaxError(f"a parallax reading takes {what} (one per pattern: "
                                f"{', '.join(p.name for p in self.views.patterns)}), got "
                                f"{len(frames)}")
        out = []
        for i, frame in enumerate(frames):
            array = np.asarray(frame)
            if array.ndim != 2:
                hint = (" (a demosaiced colour image? the cue reads the raw Bayer mosaic)"
                        if array.ndim == 3 and self.views.one_frame else "")
                raise ParallaxError(f"parallax frame {i}: expected a 2-D frame, got shape "
                                    f"{array.shape}{hint}")
            if not (np.issubdtype(array.dtype, np.integer)
                    or np.issubdtype(array.dtype, np.floating)):
                raise ParallaxError(f"parallax frame {i}: expected numbers, got {array.dtype}")
            if array.shape != tuple(self.optics.frame_shape):
                raise ParallaxError(f"parallax frame {i}: shape {array.shape} is not the "
                                    f"camera's {tuple(self.optics.frame_shape)}")
            out.append(array)
        if self.views.one_frame:
            check_mosaic(out[0], self.optics.colour_filter)
        return out

    def measure(self, frames: Sequence[np.ndarray]) -> PatchShifts:
        with fft_lock:
            first, second = self._spectra(frames)
            if any(self.leak):
                first, second = (first - np.float32(self.leak[0]) * second,
                                 second - np.float32(self.leak[1]) * first)
            cross, inverse = irfft_plan((self.count, *self.window_shape))
            np.multiply(second, np.conj(first), out=cross)
            magnitude = np.abs(cross)
            magnitude += np.float32(1e-20) + np.float32(1e-6) * magnitude.max()
            cross *= self.mask / magnitude
            return self._peaks(inverse())

    def _spectra(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The two views' patch spectra, the second's sites moved onto the first's; they live
        in the shared plan's output buffer, so the caller holds ``fft_lock``."""
        views = self._views(self.check_frames(frames))
        buffer, forward = rfft_plan((2 * self.count, *self.window_shape))
        for k, view in enumerate(views):
            self._fill(buffer[k * self.count:(k + 1) * self.count], view)
        spectra = forward()
        first, second = spectra[:self.count], spectra[self.count:]
        if self._align is not None:
            second *= self._align
        return first, second

    def _views(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        if not self.views.one_frame:
            return frames
        layout = self.optics.colour_filter
        return [sites(frames[0], layout, led.wavelength_um or self.optics.wavelength_um)
                for led in (self.views.first, self.views.second)]

    def _fill(self, out: np.ndarray, view: np.ndarray) -> None:
        """Binned, mean-normalised, windowed patches of one view into ``out`` (patches, h, w)."""
        rows, cols = self.grid
        (by, bx), (h, w) = self.bins, self.window_shape
        side = self.patch // self.site_px
        y0 = (view.shape[0] - rows * side) // 2
        x0 = (view.shape[1] - cols * side) // 2
        region = view[y0:y0 + rows * side, x0:x0 + cols * side]
        binned = region[0::by].astype(np.float32)
        for o in range(1, by):
            binned += region[o::by]
        summed = binned[:, 0::bx].copy()
        for o in range(1, bx):
            summed += binned[:, o::bx]
        patches = summed.reshape(rows, h, cols, w).transpose(0, 2, 1, 3)
        mean = patches.mean(axis=(2, 3)).reshape(-1, 1, 1)
        scale = np.divide(1.0, mean, out=np.zeros_like(mean), where=mean > 0)
        np.subtract(patches, mean.reshape(rows, cols, 1, 1), out=out.reshape(rows, cols, h, w))
        out *= self._window * scale

    def _peaks(self, surface: np.ndarray) -> PatchShifts:
        h, w = self.window_shape
        flat = surface.reshape(self.count, -1)
        best = self._search[np.argmax(flat[:, self._search], axis=1)]
        iy, ix = np.divmod(best, w)
        rows = np.arange(self.count)
        peak = flat[rows, best]
        dy = _vertex(surface[rows, (iy - 1) % h, ix], peak, surface[rows, (iy + 1) % h, ix])
        dx = _vertex(surface[rows, iy, (ix - 1) % w], peak, surface[rows, iy, (ix + 1) % w])
        lag_y = (iy + h // 2) % h - h // 2 + dy
        lag_x = (ix + w // 2) % w - w // 2 + dx
        shift = (lag_y * self.bins[0] * self.site_px * self.baseline[0]
                 + lag_x * self.bins[1] * self.site_px * self.baseline[1])
        rms = np.sqrt(np.mean(surface * surface, axis=(1, 2)))
        sharpness = np.divide(peak, rms, out=np.zeros_like(peak), where=rms > 0)
        return PatchShifts(shift.astype(np.float64), peak.astype(np.float64),
                           sharpness.astype(np.float64))


def _vertex(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sub-pixel offset of a parabola's vertex through three neighbours (0 where not a peak)."""
    curvature = left - 2.0 * centre + right
    safe = np.where(curvature < 0, curvature, -1.0)
    return np.where(curvature < 0, np.clip(0.5 * (left - right) / safe, -0.5, 0.5), 0.0)


def check_mosaic(frame: np.ndarray, colour_filter: str) -> None:
    """Refuse a frame that shows no colour mosaic (its four sites equally bright): a monochrome
    or demosaiced frame handed to the one-frame colour mode."""
    step = 2 * MOSAIC_SAMPLE  # every MOSAIC_SAMPLE-th cell is plenty to see a mosaic
    means = [float(frame[r::step, c::step].mean()) for r in (0, 1) for c in (0, 1)]
    top = max(means)
    if top <= 0 or (top - min(means)) < MOSAIC_CONTRAST * top:
        listed = ", ".join(f"{m:.0f}" for m in means)
        raise ParallaxError(f"the frame shows no {colour_filter} colour mosaic (its four 2x2 "
                            f"sites are equally bright, means {listed}): one-frame parallax "
                            f"reads the raw Bayer frame under two colour LEDs, not a monochrome "
                            f"or demosaiced one")
