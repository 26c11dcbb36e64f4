"""``red-cells``: erythrocytes settled on a coverglass, biconcave discs and round spherocytes."""

from __future__ import annotations

from typing import Any

import numpy as np

from controller.sim.samples.drawing import Volume, dome, ellipse, patch
from controller.sim.samples.params import log_uniform, param, param_range, positive, slices_of
from controller.sim.samples.placement import count_for, field_size, place
from controller.sim.samples.sample import Sample, SampleFamily
from controller.sim.samples.slide import SLIDE_PARAMS, Stain, on_slide

# Haemoglobin is what makes the phase and what absorbs: at 0.53 µm about 0.02 µm of absorption
# path per µm of optical path (5 mM haemoglobin, ε ≈ 3·10⁴ /M/cm); nothing else absorbs.
HAEMOGLOBIN = Stain(relations=("positive",), ratio=(0.01, 0.04), unstained=0.0)
EVANS_FUNG_UM = (0.81, 7.83, -4.39)  # thickness polynomial of a 7.82 µm cell (Evans & Fung 1972)
EVANS_FUNG_DIAMETER_UM = 7.82


def _red_cells(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
               params: dict[str, Any]) -> Sample:
    """Red blood cells in plasma: haemoglobin-dense discs (Δn 0.055–0.075), biconcave (thin in
    the middle, ~2.6 µm at the rim) or round, a few to a crowded monolayer."""
    medium = float(param(params, "medium_index", lambda: 1.335))
    coverage = positive("coverage", param(params, "coverage",
                                          lambda: log_uniform(rng, 0.02, 0.6)))
    d_lo, d_hi = param_range(params, "diameter_um", (6.5, 8.5))
    n_lo, n_hi = param_range(params, "cell_index", (1.39, 1.41))
    biconcave = float(param(params, "biconcave_fraction", lambda: rng.uniform(0.0, 1.0)))
    slices = slices_of(params, 1)
    positive("diameter_um", d_lo)
    mean_radius = (d_lo + d_hi) / 4
    count = count_for(coverage, shape, pixel_um, np.pi * mean_radius**2)
    radii = rng.uniform(d_lo, d_hi, count) / 2
    vol = Volume(slices, shape, 1.3 * d_hi / 2 + 1.0)
    for centre, radius in zip(place(rng, radii, field_size(shape, pixel_um)), radii, strict=True):
        size, corner, offset = patch(centre, radius, pixel_um)
        aspect = rng.uniform(0.9, 1.1)
        rho2 = ellipse(size, offset, (radius * aspect, radius / aspect), rng.uniform(0, np.pi),
                       pixel_um)
        if rng.random() < biconcave:
            c0, c2, c4 = EVANS_FUNG_UM
            scale = 2 * radius / EVANS_FUNG_DIAMETER_UM * rng.uniform(0.85, 1.15)
            inside = np.clip(rho2, 0.0, 1.0)
            thickness = (scale * np.sqrt(1.0 - inside) * (c0 + c2 * inside + c4 * inside**2)
                         ).astype(np.float32)
        else:  # a spherocyte: smaller, rounder, thicker
            thickness = dome(rho2 / 0.8**2, rng.uniform(0.35, 0.5) * 2 * radius)
        vol.add(0.0, thickness, complex(rng.uniform(n_lo, n_hi) - medium, 0.0), at=corner)
    params["objects"] = count
    return on_slide(rng, vol, pixel_um, medium, params, HAEMOGLOBIN)


RED_CELLS = SampleFamily(_red_cells, SLIDE_PARAMS | {
    "slices", "coverage", "diameter_um", "cell_index", "biconcave_fraction"})
