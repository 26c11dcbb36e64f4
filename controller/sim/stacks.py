"""Simulated focal stacks with a known focal plane: the training data of the autofocus network
and the calibration data of the parallax cue (one channel per pattern of the preset)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from controller import __version__
from controller.optics import Pattern, Preset
from controller.optics import preset as named_preset
from controller.resources import require_memory
from controller.sim.bayer import BayerFilter, sensor_intensity
from controller.sim.camera import CameraModel
from controller.sim.errors import SimError
from controller.sim.imaging import Imager, ImagingSettings
from controller.sim.instrument import Instrument
from controller.sim.samples import Sample
from controller.stackio import FocalStack

Progress = Callable[[int, int], None]  # (planes done, planes in all)
MAX_PLANES = 100_000  # ±1000 µm of drive travel at 0.02 µm steps; more is a typo, not a stack
# Peak memory of rendering per pixel of the simulation grid (sample, fields, FFT buffers, pupils),
# measured: 1024x1024 frames under two patterns peak at 250 MB, 512x512 at 2x oversampling 160 MB.
SIM_BYTES_PER_PIXEL = 160


def require_render_memory(what: str, frame_shape: tuple[int, int], oversample: int,
                          n_channels: int, n_planes: float) -> None:
    """Refuse a render whose plane count is absurd or whose simulation grid and stack would not
    fit in memory, before the sample is made (``n_planes`` may be a float: inf, 1e30 ...)."""
    if not n_planes <= MAX_PLANES:
        raise SimError(f"{what}: the z range and step give {n_planes:.6g} planes; a stack has at "
                       f"most {MAX_PLANES}")
    rows, cols = frame_shape
    need = (SIM_BYTES_PER_PIXEL * rows * cols * oversample**2
            + np.dtype(np.uint16).itemsize * n_channels * int(n_planes) * rows * cols)
    require_memory(f"{what} ({n_channels} channel(s) x {int(n_planes)} planes of {cols}x{rows}"
                   f"{f', oversampled {oversample}x' if oversample > 1 else ''})", need)


def resolve_preset(preset: Preset | str) -> Preset:
    return named_preset(preset) if isinstance(preset, str) else preset


def resolve_patterns(preset: Preset,
                     patterns: Sequence[Pattern | str] | None) -> tuple[Pattern, ...]:
    """Patterns given as objects or by name (``Preset.pattern``); by default every pattern the
    preset names (``Preset.patterns``: autofocus, ground truth, then its parallax views)."""
    if patterns is None:
        return preset.patterns
    resolved = tuple(p if isinstance(p, Pattern) else preset.pattern(p) for p in patterns)
    if not resolved:
        raise SimError("stack: no illumination pattern given")
    return resolved


def render_stack(
    sample: Sample,
    z_um: Sequence[float] | np.ndarray,
    *,
    preset: Preset | str = "paper",
    patterns: Sequence[Pattern | str] | None = None,
    focus_z_um: float = 0.0,
    camera: CameraModel | None = None,
    settings: ImagingSettings | None = None,
    instrument: Instrument | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> FocalStack:
    """Image ``sample`` at each focus-drive position ``z_um`` under each pattern (one channel per
    pattern, named after it). The sample's focal plane is at ``focus_z_um``, so plane z has
    ``defocus_um = focus_z_um - z``. ``seed`` drives the camera noise only (the sample carries its
    own seed). Frames have the sample's shape divided by the oversampling factor; with a colour
    camera (``optics.colour_filter``) each frame is its raw Bayer mosaic. An ``instrument``
    (controller/sim/instrument.py) moves and dims the LEDs, tilts the sample, aberrates the
    objective and sets the camera's sensor, exposure and noise; it is recorded in the
    metadata."""
    system = resolve_preset(preset)
    channels = resolve_patterns(system, patterns)
    z = np.asarray(z_um, dtype=np.float64).ravel()
    if z.size == 0:
        raise SimError("stack: the list of z positions is empty")
    if not (np.all(np.isfinite(z)) and math.isfinite(focus_z_um)):
        raise SimError("stack: z positions and focus_z_um must be finite numbers")
    sensor = camera or CameraModel.for_bit_depth(system.optics.bit_depth)
    if instrument is not None:
        sensor = instrument.camera_model(sensor)
    imager = Imager(system.optics, sample, settings, instrument)
    colour_filter = BayerFilter.for_optics(system.optics)
    optics = dataclasses.replace(system.optics, frame_shape=imager.frame_shape,
                                 bit_depth=sensor.bit_depth)
    images = np.empty((len(channels), z.size, *imager.frame_shape), dtype=np.uint16)
    defocus = focus_z_um - z
    total = len(channels) * z.size
    for c, pattern in enumerate(channels):
        for p, d in enumerate(defocus):
            intensity = sensor_intensity(imager, pattern, float(d), colour_filter)
            # each plane its own noise stream: a last-bit difference in one plane's intensity
            # (FFTW picks its plans by timing, per process) changes how many draws its Poisson
            # sampler takes, which must not reach every later plane's noise
            images[c, p] = sensor.expose(intensity, np.random.default_rng([seed, c, p]))
            if progress is not None:
                progress(c * z.size + p + 1, total)
    metadata = {
        "source": f"focuslock {__version__} virtual microscope",
        "preset": system.name,
        "sample": imager.sample.describe(),  # as rendered: a tilted instrument slices it
        "imaging": imager.settings.to_dict(),
        "oversample": imager.oversample,
        "camera": sensor.to_dict(),
        **({} if instrument is None else {"instrument": instrument.to_dict()}),
        **({} if colour_filter is None else {"colour_filter": colour_filter.to_dict()}),
        "noise_seed": int(seed),
    }
    return FocalStack(images, z, channels, optics, float(focus_z_um), metadata)
