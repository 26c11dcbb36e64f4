"""The virtual microscope: LED-array transmitted-light microscope simulated with scalar wave optics.

API summary (details in docs/simulator.md):

- ``make_sample(kind, shape, pixel_um, seed, **params) -> Sample``: kinds ``sparse-cells``,
  ``dense-cells``, ``tissue`` (multi-slice, 5 µm), ``image`` (``image=PATH or ARRAY``); unset
  parameters are drawn from realistic ranges with the seed and recorded in ``sample.params``.
- ``render_stack(sample, z_um, preset="paper", patterns=None, focus_z_um=0.0, camera=None,
  settings=None, seed=0, progress=None) -> controller.stackio.FocalStack``: one channel per
  pattern (default: the preset's autofocus and ground-truth patterns), ``defocus_um =
  focus_z_um - z``; write it with ``controller.stackio.write_stack``.
- ``Imager(optics, sample, settings).planes(pattern, defocus_um)``: noise-free intensities.
- ``CameraModel``: full well, gain, read/shot noise, offset, bit depth; ``expose(I, rng)``.
- ``ImagingSettings``: spectral bandwidth and finite LED size (off by default).

A sample's grid is the camera pixel at the sample (``optics.pixel_um``) or a whole-number
fraction of it (then pixels integrate the finer samples).
"""

from controller.sim.camera import CameraModel
from controller.sim.errors import SimError
from controller.sim.imaging import Imager, ImagingSettings, propagate
from controller.sim.samples import SAMPLE_KINDS, Sample, make_sample
from controller.sim.stacks import render_stack

__all__ = [
    "SAMPLE_KINDS",
    "CameraModel",
    "Imager",
    "ImagingSettings",
    "Sample",
    "SimError",
    "make_sample",
    "propagate",
    "render_stack",
]
