"""The virtual microscope: LED-array transmitted-light microscope simulated with scalar wave optics.

API summary (model, approximations and figures in docs/simulator.md):

- ``make_sample(kind, shape, pixel_um, seed, **params) -> Sample``: kinds (``SAMPLE_KINDS``)
  ``sparse-cells``, ``dense-cells``, ``tissue`` (5 µm, multi-slice) and ``image``
  (``image=PATH or ARRAY``). Unset parameters are drawn from realistic ranges with the seed and
  recorded in ``sample.params``. A ``Sample`` is complex optical path per slice;
  ``sample.focus_depth_um`` is where in a thick sample the focal plane lies.
- ``render_stack(sample, z_um, *, preset="paper", patterns=None, focus_z_um=0.0, camera=None,
  settings=None, seed=0, progress=None) -> controller.stackio.FocalStack``: one channel per
  pattern (default: every pattern the preset names, ``Preset.patterns``, named after them),
  plane z has ``defocus_um = focus_z_um - z``; ``seed`` drives the camera noise; a colour
  camera's frames are its raw Bayer mosaic. Write it with ``controller.stackio.write_stack``
  (docs/stack-format.md).
- ``Imager(optics, sample, settings).planes(pattern, defocus_um)``: noise-free intensities
  (1 = the pattern's unobstructed brightfield), one float32 frame per defocus, every colour
  summed; ``.colour_planes(pattern, defocus_um) -> {wavelength_um: plane}`` the same per
  wavelength of light (colour LEDs each see the objective's chromatic focal shift).
- ``BayerFilter(layout, response=IMX477_RESPONSE).mosaic(colour_planes)``: the relative
  intensity behind a colour filter array (``BayerFilter.for_optics(optics)``, None for mono);
  ``site_offsets(layout, colour)`` where a colour's sites sit in the 2x2 cell
  (``controller/sim/bayer.py``).
- ``CameraModel(...).expose(intensity, rng) -> uint16``: full well, gain, read and shot noise,
  black level, fixed pattern, bit depth; ``CameraModel.for_bit_depth(bits)``.
- ``ImagingSettings``: spectral bandwidth and finite LED size (off by default).
- ``propagate(field, distance_um, pixel_um, wavelength_um, index)``: angular-spectrum step.

A sample's grid is the camera pixel at the sample (``optics.pixel_um``) or a whole-number
fraction of it (then each camera pixel integrates the finer points). The loop's virtual camera,
focus drive and focal-plane drift (``controller/sim/devices.py``) are built on ``Imager``
and ``CameraModel``.
"""

from controller.sim.bayer import BayerFilter, site_offsets
from controller.sim.camera import CameraModel
from controller.sim.errors import SimError
from controller.sim.imaging import Imager, ImagingSettings, propagate
from controller.sim.samples import SAMPLE_KINDS, Sample, make_sample
from controller.sim.stacks import render_stack

__all__ = [
    "SAMPLE_KINDS",
    "BayerFilter",
    "CameraModel",
    "Imager",
    "ImagingSettings",
    "Sample",
    "SimError",
    "make_sample",
    "propagate",
    "render_stack",
    "site_offsets",
]
