"""``tissue``: a stained tissue section, thick enough that it is always simulated in slices."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from controller.sim.samples.drawing import Volume, dome, ellipse, random_field
from controller.sim.samples.params import param, positive
from controller.sim.samples.sample import Sample, SampleFamily


def _tissue(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
            params: dict[str, Any]) -> Sample:
    """A stained tissue section (~5 µm): fibrous phase and absorption texture through its depth,
    absorbing nuclei, and empty lumina; always multi-slice."""
    medium = float(param(params, "medium_index", lambda: 1.45))
    thickness = positive("thickness_um", param(params, "thickness_um", lambda: 5.0))
    slice_um = positive("slice_um", param(params, "slice_um", lambda: 0.5))
    slices = max(1, round(thickness / slice_um))
    fill = float(param(params, "fill", lambda: rng.uniform(0.4, 0.8)))
    dn_tissue = float(param(params, "index_contrast", lambda: rng.uniform(0.01, 0.04)))
    kappa_stroma = float(param(params, "kappa_stroma", lambda: rng.uniform(5e-4, 3e-3)))
    kappa_nuclei = float(param(params, "kappa_nuclei", lambda: rng.uniform(2e-3, 1e-2)))
    nuclei_per_mm2 = float(param(params, "nuclei_per_mm2", lambda: rng.uniform(2e3, 1.2e4)))
    dz = thickness / slices
    texture = random_field(rng, (slices, *shape), pixel_um, corr_um=rng.uniform(0.6, 2.0),
                           corr_z_px=1.0 / dz)
    lumen = random_field(rng, shape, pixel_um, corr_um=rng.uniform(8.0, 20.0))
    threshold = float(np.quantile(texture.ravel()[::7], 1.0 - fill))  # a subsample suffices
    density = np.float32(1.0) / (np.float32(1.0) + np.exp((threshold - texture) / np.float32(0.3)))
    del texture
    density *= (lumen > rng.uniform(-2.0, -0.5))[None]
    vol = Volume(slices, shape, thickness)
    vol.path.real = density * np.float32(dz * dn_tissue)
    vol.path.imag = density * np.float32(dz * kappa_stroma)
    del density
    add_nuclei(rng, vol, pixel_um, nuclei_per_mm2, lambda dn: complex(dn, kappa_nuclei))
    return Sample(vol.path, pixel_um, dz, medium, params=params)


def add_nuclei(rng: np.random.Generator, vol: Volume, pixel_um: float, per_mm2: float,
               stained: Callable[[float], complex]) -> int:
    """Nuclei at random depths through a section: ellipsoids 4–8 µm across (up to 1.6 times
    longer one way) of index contrast 0.01–0.03, absorbing as ``stained`` makes that contrast
    complex. Returns how many."""
    shape = vol.shape
    thickness = vol.slices * vol.dz
    area_mm2 = shape[0] * shape[1] * pixel_um**2 / 1e6
    count = int(rng.poisson(per_mm2 * area_mm2))
    for _ in range(count):
        radius = rng.uniform(2.0, 4.0)
        size = 2 * math.ceil(1.6 * radius / pixel_um) + 3
        rho2 = ellipse(size, (0.0, 0.0), (radius * rng.uniform(1.0, 1.6), radius),
                       rng.uniform(0, np.pi), pixel_um)
        depth = rng.uniform(0.0, thickness)
        half = dome(rho2, radius)
        corner = (int(rng.integers(shape[0])), int(rng.integers(shape[1])))
        vol.add(depth - half, depth + half, stained(rng.uniform(0.01, 0.03)), at=corner)
    return count


TISSUE = SampleFamily(_tissue, frozenset({
    "medium_index", "thickness_um", "slice_um", "fill", "index_contrast", "kappa_stroma",
    "kappa_nuclei", "nuclei_per_mm2"}))
