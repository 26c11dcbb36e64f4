"""Parallax readings and stacks from the virtual microscope, shared by the parallax tests and the
benchmark: two monochrome frames (preset ``paper-pair``) or one raw Bayer frame under a red and a
blue LED (``pi-hq-colour``), all rendered by the simulator's own ``render_stack``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from controller.optics import preset
from controller.sim import Sample, make_sample
from controller.sim.stacks import render_stack
from controller.stackio import FocalStack


def sample_of(kind: str, seed: int, size: int, pixel_um: float) -> Sample:
    """A seeded sample of any kind; ``image`` gets a seeded smooth random picture, and sparse
    cells a density that puts several cells into a small field."""
    params: dict[str, object] = {}
    if kind == "image":
        params["image"] = gaussian_filter(np.random.default_rng(seed).random((size, size)), 3.0)
    if kind == "sparse-cells" and size <= 512:
        params["density_per_mm2"] = 1500.0
    return make_sample(kind, (size, size), pixel_um, seed, **params)


def reading_frames(kind: str, seed: int, defocus: Sequence[float], *, preset_name: str,
                   size: int = 512, noise_seed: int = 0) -> list[list[np.ndarray]]:
    """Per defocus, the frames of one parallax reading (one per pattern of the views)."""
    system = preset(preset_name)
    assert system.parallax is not None
    sample = sample_of(kind, seed, size, system.optics.pixel_um)
    z = -np.asarray(defocus, dtype=float)  # focus at z = 0
    stack = render_stack(sample, z, preset=system, patterns=list(system.parallax.patterns),
                         seed=noise_seed)
    return [list(stack.images[:, i]) for i in range(z.size)]


def parallax_stack(kind: str, seed: int, z_um: Sequence[float] | np.ndarray, *, preset_name: str,
                   size: int = 512, focus_z_um: float = 0.0) -> FocalStack:
    """A focal stack with the channels ``focuslock collect`` writes for the preset (autofocus,
    ground truth, parallax views; a colour camera's frames are raw mosaics)."""
    system = preset(preset_name)
    sample = sample_of(kind, seed, size, system.optics.pixel_um)
    return render_stack(sample, z_um, preset=system, focus_z_um=focus_z_um, seed=seed + 7)
