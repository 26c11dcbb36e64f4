"""Image formation: tilted plane waves through the sample, the objective pupil, defocus, intensity.

Scalar wave optics on the sample's periodic grid (docs/simulator.md has the full model):

- each LED (and each sub-source of a finite LED die, each wavelength of its spectrum) is a tilted
  plane wave ``exp(2πi k_led·r)`` with ``k_led = (na_x, na_y)/λ``, snapped to the FFT grid so the
  tilt stays periodic; the LEDs of a pattern are mutually incoherent, so intensities add; a
  colour LED shines at its own wavelength (``Led.wavelength_um``, None: the optics' own);
- a thin sample multiplies the wave by its transmittance, so the exit spectrum is the sample's
  spectrum shifted by ``k_led`` and one FFT of the sample serves every LED and every plane;
  a thick sample is propagated slice by slice (beam propagation) once per LED;
- the objective passes spatial frequencies ``|k| <= NA/λ`` (darkfield appears by itself when an
  LED's NA exceeds the objective's: its undiffracted light misses the pupil);
- defocus: the image at ``defocus_um = D`` is the field at the focal plane propagated by ``-D``
  along the direction of travel, ``H = exp(2πi k_z (-D))``, ``k_z = sqrt((n/λ)² - |k|²)`` in the
  immersion index n (docs/conventions.md); a thick sample's focal plane is its optical
  centre of detail (``Sample.focus_depth_um``: the middle of a uniform section); light of
  wavelength λ sees ``D + optics.focal_shift_um(λ)``, the objective's chromatic focal shift;
- the camera sees ``Σ brightness·|field|²`` integrated over each pixel's square aperture, on
  the camera's grid or on one an integer factor finer (``PixelAperture``); a colour camera sees
  it per wavelength (``Imager.colour_planes``) through its filters (controller/sim/bayer.py).

Speed: the pupil keeps only a box of the spectrum, so each LED's box is gathered once per pattern,
each plane costs one propagator, and each (LED, plane) one inverse FFT through a reused FFTW plan.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyfftw

from controller.optics import Led, Optics, Pattern
from controller.sim.errors import SimError
from controller.sim.samples import Sample


@dataclass(frozen=True)
class ImagingSettings:
    """Optional physics beyond one wavelength and point-like LEDs (each multiplies the cost)."""

    bandwidth_um: float = 0.0  # FWHM of the LED's emission spectrum; 0 = monochromatic
    wavelengths: int = 3  # samples across the spectrum when bandwidth_um > 0
    led_radius_na: float = 0.0  # angular radius of an LED die seen from the sample, in NA
    led_points: int = 7  # sub-sources across the die when led_radius_na > 0 (centre + ring)

    def __post_init__(self) -> None:
        if self.bandwidth_um < 0 or self.led_radius_na < 0:
            raise SimError("imaging: bandwidth_um and led_radius_na must be >= 0")
        if self.wavelengths < 1 or self.led_points < 1:
            raise SimError("imaging: wavelengths and led_points must be >= 1")

    def spectrum(self, centre_um: float) -> list[tuple[float, float]]:
        """(wavelength, weight) samples of a Gaussian spectrum of the given FWHM."""
        if self.bandwidth_um == 0 or self.wavelengths == 1:
            return [(centre_um, 1.0)]
        offsets = np.linspace(-1.0, 1.0, self.wavelengths) * self.bandwidth_um
        weights = np.exp(-4.0 * math.log(2.0) * (offsets / self.bandwidth_um) ** 2)
        weights /= weights.sum()
        return [(centre_um + float(o), float(w)) for o, w in zip(offsets, weights, strict=True)]

    def die(self) -> list[tuple[float, float, float]]:
        """(Δna_x, Δna_y, weight) sub-sources of a uniform disk-shaped die: the centre and a ring
        whose radius keeps the disk's second moment."""
        n = self.led_points
        if self.led_radius_na == 0 or n == 1:
            return [(0.0, 0.0, 1.0)]
        ring = self.led_radius_na * math.sqrt(n / (2.0 * (n - 1)))
        points = [(0.0, 0.0, 1.0 / n)]
        for k in range(n - 1):
            phi = 2 * math.pi * k / (n - 1)
            points.append((ring * math.cos(phi), ring * math.sin(phi), 1.0 / n))
        return points

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Fft2:
    """Forward and inverse 2D complex FFTs of one shape through FFTW plans made once (one
    thread). Both read ``input`` and write ``output``; neither normalises."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.input = pyfftw.zeros_aligned(shape, dtype=np.complex64)
        self.output = pyfftw.zeros_aligned(shape, dtype=np.complex64)
        # Measuring costs ~0.3 s (1024²) to 1.5 s (2048²) once per shape and process, and makes
        # each transform ~4x faster than an estimated plan at 2048².
        flags = ("FFTW_MEASURE",)
        self._forward = pyfftw.FFTW(self.input, self.output, axes=(0, 1),
                                    direction="FFTW_FORWARD", flags=flags, threads=1)
        self._inverse = pyfftw.FFTW(self.input, self.output, axes=(0, 1),
                                    direction="FFTW_BACKWARD", flags=flags, threads=1)
        self.input[:] = 0

    def forward(self) -> np.ndarray:
        self._forward()
        return self.output

    def inverse(self) -> np.ndarray:
        self._inverse(normalise_idft=False)
        return self.output


_per_thread = threading.local()


def _fft(shape: tuple[int, int]) -> _Fft2:
    """This thread's plans for the shape (buffers are shared by every Imager of the thread, so
    threads must not share them); the four most recent shapes are kept."""
    plans: OrderedDict[tuple[int, int], _Fft2] = _per_thread.__dict__.setdefault(
        "plans", OrderedDict())
    if shape not in plans:
        plans[shape] = _Fft2(shape)
        while len(plans) > 4:
            plans.popitem(last=False)
    plans.move_to_end(shape)
    return plans[shape]


def _kz(k2: np.ndarray, index: float, wavelength_um: float) -> np.ndarray:
    """k_z - n/λ (the constant piston removed: it changes no intensity), NaN where evanescent."""
    k0 = index / wavelength_um
    with np.errstate(invalid="ignore"):
        return np.sqrt(k0**2 - k2) - k0


def propagator(k2: np.ndarray, distance_um: float, index: float,
               wavelength_um: float) -> np.ndarray:
    """Angular-spectrum transfer function for ``distance_um`` along the direction of travel in a
    medium of the given index. Evanescent waves decay forwards and are dropped backwards (they
    cannot be back-propagated stably)."""
    kz = _kz(k2, index, wavelength_um)
    k0 = index / wavelength_um
    decay = np.sqrt(np.clip(k2 - k0**2, 0.0, None))
    out = np.where(np.isnan(kz), 0.0, np.exp(2j * np.pi * np.nan_to_num(kz) * distance_um))
    if distance_um > 0:
        out = np.where(np.isnan(kz), np.exp(-2.0 * np.pi * decay * distance_um), out)
    return out.astype(np.complex64)


def spatial_frequencies(shape: tuple[int, int], pixel_um: float) -> tuple[np.ndarray, np.ndarray]:
    """(ky column, kx row) in cycles/µm, FFT order."""
    return (np.fft.fftfreq(shape[0], d=pixel_um)[:, None],
            np.fft.fftfreq(shape[1], d=pixel_um)[None, :])


def propagate(field: np.ndarray, distance_um: float, pixel_um: float, wavelength_um: float,
              index: float = 1.0) -> np.ndarray:
    """A complex field propagated by ``distance_um`` along the direction of travel."""
    ky, kx = spatial_frequencies(field.shape[-2:], pixel_um)
    h = propagator(ky**2 + kx**2, distance_um, index, wavelength_um)
    return np.fft.ifft2(np.fft.fft2(field) * h).astype(np.complex64)


PATTERNS_CACHED = 4  # a parallax reading alternates autofocus, parallax-first and -second


@dataclass
class _Band:
    """One wavelength of a pattern: its pupil box and the spectrum in it of every sub-source of
    the LEDs that shine at it."""

    wavelength_um: float
    focal_shift_um: float  # the objective's chromatic focal shift at this wavelength
    kz_box: np.ndarray  # float32 (by, bx): k_z - n/λ in the immersion medium, 0 outside the pupil
    fields: list[np.ndarray]  # complex64 (by, bx): normalised spectra inside the pupil


class Imager:
    """Renders noise-free camera intensities of one sample under given patterns and defoci.

    The sample grid must equal the camera's pixel at the sample or be an integer factor finer;
    either way each camera pixel integrates the intensity over its area. Intensities are
    relative: 1 is the unobstructed brightfield of the pattern (its LEDs' brightness summed),
    whatever their colours. One Imager
    belongs to one thread (its caches are not locked); FFT buffers are per thread.
    """

    def __init__(self, optics: Optics, sample: Sample,
                 settings: ImagingSettings | None = None) -> None:
        self.optics = optics
        self.sample = sample
        self.settings = settings or ImagingSettings()
        ratio = optics.pixel_um / sample.pixel_um
        self.oversample = round(ratio)
        if self.oversample < 1 or abs(ratio - self.oversample) > 1e-6 * ratio:
            raise SimError(
                f"sample pixel {sample.pixel_um:.4g} µm must be the camera pixel at the sample "
                f"({optics.pixel_um:.4g} µm) divided by a whole number")
        rows, cols = sample.shape
        if rows % self.oversample or cols % self.oversample:
            raise SimError(f"sample shape {sample.shape} is not a multiple of the oversampling "
                           f"factor {self.oversample}")
        self.frame_shape = (rows // self.oversample, cols // self.oversample)
        self._pixels = PixelAperture(sample.shape, sample.pixel_um, self.oversample)
        self._spectra: dict[float, np.ndarray] = {}  # thin: the sample's spectrum
        self._thick: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._bands: OrderedDict[Pattern, list[_Band]] = OrderedDict()

    def planes(self, pattern: Pattern,
               defocus_um: Sequence[float] | np.ndarray) -> Iterator[np.ndarray]:
        """float32 (rows, cols) camera-grid intensity for each defocus, in order: every colour of
        the pattern summed, as a monochrome camera sees it."""
        bands = self._bands_of(pattern)
        total = sum(b.brightness for b in pattern.leds)
        for defocus in defocus_um:
            acc = np.zeros(self.sample.shape, dtype=np.float32)
            if total > 0:
                self._accumulate(bands, float(defocus), dict.fromkeys(self._colours(bands), acc))
                acc /= np.float32(total)
            yield self._pixels(acc)

    def colour_planes(self, pattern: Pattern, defocus_um: float) -> dict[float, np.ndarray]:
        """float32 (rows, cols) camera-grid intensity per wavelength of light (µm: each LED's
        colour, or the optics' wavelength for an LED without one; with a bandwidth, each sample
        of its spectrum) at one defocus, what a colour camera's filters weigh. Normalised like
        ``planes``: the planes add up to its frame (1 = the whole pattern's brightfield)."""
        bands = self._bands_of(pattern)
        total = sum(b.brightness for b in pattern.leds)
        accs = {wavelength: np.zeros(self.sample.shape, dtype=np.float32)
                for wavelength in self._colours(bands)}
        if total > 0:
            self._accumulate(bands, float(defocus_um), accs)
        return {wavelength: self._pixels(acc / np.float32(total) if total > 0 else acc)
                for wavelength, acc in accs.items()}

    @staticmethod
    def _colours(bands: list[_Band]) -> list[float]:
        return list(dict.fromkeys(band.wavelength_um for band in bands))

    def _accumulate(self, bands: list[_Band], defocus_um: float,
                    accs: Mapping[float, np.ndarray]) -> None:
        """Add every sub-source's |field|² at the defocus to its wavelength's accumulator."""
        fft = _fft(self.sample.shape)
        magnitude = np.empty(self.sample.shape, dtype=np.float32)
        fft.input[:] = 0
        for band in bands:
            acc = accs[band.wavelength_um]
            by, bx = band.kz_box.shape
            # Propagate by -D, D the defocus this wavelength sees (docs/conventions.md).
            seen = defocus_um + band.focal_shift_um
            phase = band.kz_box * np.float32(2.0 * np.pi * -seen)
            h = np.empty(phase.shape, dtype=np.complex64)
            h.real = np.cos(phase)
            h.imag = np.sin(phase)
            for spectrum in band.fields:
                np.multiply(spectrum, h, out=fft.input[:by, :bx])
                out = fft.inverse()
                np.abs(out, out=magnitude)
                magnitude *= magnitude
                acc += magnitude

    def _bands_of(self, pattern: Pattern) -> list[_Band]:
        """Per-wavelength pupil boxes of the pattern's sources, one set per LED colour, kept for
        the last few patterns (a live microscope alternates between few patterns)."""
        if pattern in self._bands:
            self._bands.move_to_end(pattern)
            return self._bands[pattern]
        bands = []
        for colour in pattern.wavelengths:
            leds = [led for led in pattern.leds if led.wavelength_um == colour]
            centre = self.optics.wavelength_um if colour is None else colour
            bands += [self._band(leds, wavelength, weight)
                      for wavelength, weight in self.settings.spectrum(centre)]
        self._bands[pattern] = bands
        while len(self._bands) > PATTERNS_CACHED:
            self._bands.popitem(last=False)
        return bands

    def _band(self, leds: Sequence[Led], wavelength: float, weight: float) -> _Band:
        rows, cols = self.sample.shape
        pixel = self.sample.pixel_um
        cutoff = self.optics.na / wavelength
        dky, dkx = 1.0 / (rows * pixel), 1.0 / (cols * pixel)
        by = min(math.floor(cutoff / dky), (rows - 1) // 2)
        bx = min(math.floor(cutoff / dkx), (cols - 1) // 2)
        iy, ix = np.arange(-by, by + 1), np.arange(-bx, bx + 1)
        k2 = (iy[:, None] * dky) ** 2 + (ix[None, :] * dkx) ** 2
        pupil = k2 <= cutoff**2
        kz = _kz(k2, self.optics.immersion_index, wavelength)
        kz_box = np.where(pupil, kz, 0.0).astype(np.float32)
        back = self._focus_shift(k2, wavelength) * pupil
        norm = 1.0 / (rows * cols)
        fields = []
        for led in leds:
            for dnx, dny, w_die in self.settings.die():
                w = led.brightness * weight * w_die
                if w == 0:
                    continue
                shift = (round((led.na_y + dny) / wavelength / dky),
                         round((led.na_x + dnx) / wavelength / dkx))
                spectrum = self._exit_spectrum(wavelength, shift)
                box = _gather(spectrum, iy - shift[0], ix - shift[1])
                fields.append((box * back * (math.sqrt(w) * norm)).astype(np.complex64))
        return _Band(wavelength, self.optics.focal_shift_um(wavelength), kz_box, fields)

    def _focus_shift(self, k2: np.ndarray, wavelength: float) -> np.ndarray:
        """Back-propagation from the last slice, where beam propagation ends, to the sample's
        focal plane (its centre of detail, ``Sample.focus_depth_um``); 1 for a thin sample."""
        sample = self.sample
        distance = sample.focus_depth_um - (sample.slices - 0.5) * sample.slice_um
        if sample.slices == 1 or distance == 0:
            return np.ones(k2.shape, dtype=np.complex64)
        return propagator(k2, distance, sample.medium_index, wavelength)

    def _exit_spectrum(self, wavelength: float, shift: tuple[int, int]) -> np.ndarray:
        """Unnormalised spectrum of the field leaving the sample, in the frame that moves with
        the tilt (thin: the same for every LED; thick: one beam propagation per LED)."""
        if self.sample.slices == 1:
            if wavelength not in self._spectra:
                fft = _fft(self.sample.shape)
                fft.input[:] = self.sample.transmittance(wavelength)[0]
                self._spectra[wavelength] = fft.forward().copy()
            return self._spectra[wavelength]
        return self._beam_propagation(wavelength, shift)

    def _beam_propagation(self, wavelength: float, shift: tuple[int, int]) -> np.ndarray:
        """Multi-slice: multiply by a slice, propagate to the next, ..., for one tilted wave.
        Returns the exit spectrum shifted back by the tilt, so it gathers like a thin one."""
        sample = self.sample
        rows, cols = sample.shape
        if abs(shift[0]) >= rows // 2 or abs(shift[1]) >= cols // 2:
            raise SimError(f"an LED at this angle is beyond the sample grid's Nyquist limit "
                           f"(λ/(2·{sample.pixel_um:.3g} µm) in NA); a thick sample needs finer "
                           f"pixels for it")
        first, rest, step = self._thick_optics(wavelength)
        fft = _fft(sample.shape)
        ramp = (np.exp(2j * np.pi * shift[0] * np.arange(rows) / rows)[:, None]
                * np.exp(2j * np.pi * shift[1] * np.arange(cols) / cols)[None, :])
        np.multiply(ramp, first, out=fft.input)
        for transmittance in rest:
            np.multiply(fft.forward(), step, out=fft.input)
            np.multiply(fft.inverse(), transmittance, out=fft.input)
        return np.roll(fft.forward(), (-shift[0], -shift[1]), axis=(0, 1))

    def _thick_optics(self, wavelength: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first slice's transmittance, the others' (with the inverse FFT's 1/N folded in)
        and the slice-to-slice propagator: computed once per wavelength, shared by all LEDs."""
        if wavelength not in self._thick:
            sample = self.sample
            transmittance = sample.transmittance(wavelength)
            transmittance[1:] *= np.complex64(1.0 / (sample.shape[0] * sample.shape[1]))
            ky, kx = spatial_frequencies(sample.shape, sample.pixel_um)
            step = propagator(ky**2 + kx**2, sample.slice_um, sample.medium_index, wavelength)
            self._thick[wavelength] = (transmittance[0], transmittance[1:], step)
        return self._thick[wavelength]


class PixelAperture:
    """Camera pixels as the square apertures they are: the intensity on the simulation grid is
    convolved with a box of one camera pixel (a sinc in frequency) and sampled at the pixel
    centres. Exact where the grid holds the intensity without aliasing; on the camera's own grid
    the part of the spectrum between its Nyquist frequency and 2NA/λ is folded first, as a
    camera folds it, but then weighted by the aperture at its folded frequency."""

    def __init__(self, shape: tuple[int, int], grid_pixel_um: float, factor: int) -> None:
        self.factor = factor
        pixel = grid_pixel_um * factor
        offset = (factor - 1) / 2.0 * grid_pixel_um  # a pixel's centre, from its first point
        ky = np.fft.fftfreq(shape[0], d=grid_pixel_um)[:, None]
        kx = np.fft.rfftfreq(shape[1], d=grid_pixel_um)[None, :]
        transfer = np.sinc(ky * pixel) * np.sinc(kx * pixel) * np.exp(
            2j * np.pi * (ky + kx) * offset) / (shape[0] * shape[1])
        self.transfer = transfer.astype(np.complex64)
        self._image = pyfftw.empty_aligned(shape, dtype=np.float32)
        self._spectrum = pyfftw.empty_aligned(self.transfer.shape, dtype=np.complex64)
        self._forward = pyfftw.FFTW(self._image, self._spectrum, axes=(0, 1),
                                    flags=("FFTW_MEASURE",), threads=1)
        self._inverse = pyfftw.FFTW(self._spectrum, self._image, axes=(0, 1),
                                    direction="FFTW_BACKWARD",
                                    flags=("FFTW_MEASURE", "FFTW_DESTROY_INPUT"), threads=1)

    def __call__(self, intensity: np.ndarray) -> np.ndarray:
        self._image[:] = intensity
        self._forward()
        self._spectrum *= self.transfer  # the 1/N of the inverse transform included
        self._inverse(normalise_idft=False)
        k = self.factor
        return np.array(self._image[::k, ::k], dtype=np.float32)


def _gather(spectrum: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    """spectrum[iy, ix] for signed frequency indices; zero where an index lies outside the grid's
    band (the sample holds no detail finer than its grid)."""
    rows, cols = spectrum.shape
    valid_y = (iy >= -(rows // 2)) & (iy <= (rows - 1) // 2)
    valid_x = (ix >= -(cols // 2)) & (ix <= (cols - 1) // 2)
    box = spectrum[np.ix_(iy % rows, ix % cols)]
    return np.asarray(box * (valid_y[:, None] & valid_x[None, :]))
