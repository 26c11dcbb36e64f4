"""Cultured cells on a coverglass: ``spread-cells`` (flat, irregular, a raised body over the
nucleus), ``elongated-cells`` (spindles, often aligned) and ``cell-clusters`` (islands of packed
cells, up to a confluent layer)."""

from __future__ import annotations

from typing import Any

import numpy as np

from controller.sim.errors import SimError
from controller.sim.samples.cells import cell_layer
from controller.sim.samples.drawing import Volume, axes, dome, ellipse, patch, random_field
from controller.sim.samples.params import log_uniform, param, param_range, positive, slices_of
from controller.sim.samples.placement import count_for, field_size, place
from controller.sim.samples.sample import Sample, SampleFamily
from controller.sim.samples.slide import RELATIONS, SLIDE_PARAMS, Stain, on_slide

# Live cells barely absorb (~0.01 µm per µm of path); fixed and stained ones up to a third; a
# dyed medium or a negative stain absorbs around them instead.
CELL_STAIN = Stain(relations=RELATIONS, ratio=(0.005, 0.3), unstained=0.25)
CELL_PARAMS = SLIDE_PARAMS | {"slices", "coverage", "height_um", "index_contrast"}


def _spread_cells(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
                  params: dict[str, Any]) -> Sample:
    """Spread cells (fibroblast or epithelial look): a thin lamella with a ragged outline, a
    raised body over an off-centre nucleus with nucleoli, and organelle grain."""
    medium = float(param(params, "medium_index", lambda: 1.335))
    coverage = positive("coverage", param(params, "coverage",
                                          lambda: log_uniform(rng, 0.03, 0.8)))
    d_lo, d_hi = param_range(params, "diameter_um", (18.0, 30.0))
    lamella = positive("lamella_um", param(params, "lamella_um", lambda: rng.uniform(0.15, 0.5)))
    h_lo, h_hi = param_range(params, "height_um", (2.0, 5.0))
    dn_lo, dn_hi = param_range(params, "index_contrast", (0.015, 0.035))
    grain = float(param(params, "granularity", lambda: rng.uniform(0.0, 0.01)))
    slices = slices_of(params, 1)
    positive("diameter_um", d_lo)
    mean_radius = (d_lo + d_hi) / 4
    radii = rng.uniform(d_lo, d_hi, count_for(coverage, shape, pixel_um,
                                              0.8 * np.pi * mean_radius**2)) / 2
    vol = Volume(slices, shape, h_hi + 1.0)
    for centre, radius in zip(place(rng, radii, field_size(shape, pixel_um)), radii, strict=True):
        size, corner, offset = patch(centre, 1.35 * radius, pixel_um)
        u, v = axes(size, offset, 0.0, pixel_um)
        phi = np.arctan2(v, u)
        outline = np.full(u.shape, radius, dtype=np.float32)
        for k in range(2, 7):
            outline *= 1.0 + rng.uniform(0.0, 0.3 / k) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
        rho = np.hypot(u, v) / np.minimum(outline, 1.35 * radius)
        flat = lamella * np.clip((1.0 - rho) / 0.1, 0.0, 1.0)
        height = rng.uniform(h_lo, h_hi)
        nucleus_at = rng.uniform(-0.3, 0.3, 2) * radius  # (y, x) µm from the centre
        at_px = (offset[0] + nucleus_at[0] / pixel_um, offset[1] + nucleus_at[1] / pixel_um)
        body = dome(ellipse(size, at_px, (0.55 * radius, 0.55 * radius), 0.0, pixel_um), height)
        thickness = np.maximum(flat, body) * (rho < 1.0)
        vol.add(0.0, thickness, complex(rng.uniform(dn_lo, dn_hi), 0.0), at=corner)
        nucleus = dome(ellipse(size, at_px, (0.3 * radius, 0.3 * radius * rng.uniform(0.7, 1.0)),
                               rng.uniform(0, np.pi), pixel_um), 0.7 * height)
        vol.add(height / 2 - nucleus / 2, height / 2 + nucleus / 2,
                complex(rng.uniform(0.005, 0.015), 0.0), at=corner)
        for _ in range(int(rng.integers(1, 4))):
            spot = (at_px[0] + rng.normal(0, 0.1 * radius / pixel_um),
                    at_px[1] + rng.normal(0, 0.1 * radius / pixel_um))
            nucleolus = dome(ellipse(size, spot, (rng.uniform(0.5, 1.0),) * 2, 0.0, pixel_um), 1.0)
            vol.add(height / 2 - nucleolus / 2, height / 2 + nucleolus / 2,
                    complex(rng.uniform(0.02, 0.03), 0.0), at=corner)
        if grain > 0:
            grains = random_field(rng, (size, size), pixel_um, corr_um=0.3)
            vol.add(0.0, thickness, grain * grains, at=corner)
    params["objects"] = len(radii)
    return on_slide(rng, vol, pixel_um, medium, params, CELL_STAIN)


def _elongated_cells(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
                     params: dict[str, Any]) -> Sample:
    """Spindle-shaped cells (fibroblasts, myoblasts, smooth muscle): tapered, slightly bent,
    a long nucleus in the middle; ``alignment`` of them share one direction, as in a dense
    culture."""
    medium = float(param(params, "medium_index", lambda: 1.335))
    coverage = positive("coverage", param(params, "coverage",
                                          lambda: log_uniform(rng, 0.03, 0.8)))
    l_lo, l_hi = param_range(params, "length_um", (15.0, 30.0))
    w_lo, w_hi = param_range(params, "width_um", (3.0, 8.0))
    h_lo, h_hi = param_range(params, "height_um", (1.5, 4.0))
    dn_lo, dn_hi = param_range(params, "index_contrast", (0.02, 0.04))
    alignment = float(param(params, "alignment", lambda: rng.uniform(0.0, 1.0)))
    bend = float(param(params, "bend", lambda: rng.uniform(0.0, 0.3)))
    slices = slices_of(params, 1)
    positive("length_um", l_lo)
    positive("width_um", w_lo)
    count = count_for(coverage, shape, pixel_um, 0.6 * (l_lo + l_hi) * (w_lo + w_hi) / 4)
    common = rng.uniform(0, np.pi)
    size_um = field_size(shape, pixel_um)
    vol = Volume(slices, shape, h_hi + 1.0)
    for _ in range(count):
        length, width, height = rng.uniform(l_lo, l_hi), rng.uniform(w_lo, w_hi), \
            rng.uniform(h_lo, h_hi)
        angle = common + rng.normal(0, 0.15) if rng.random() < alignment else \
            rng.uniform(0, np.pi)
        centre = (rng.uniform(0, size_um[0]), rng.uniform(0, size_um[1]))
        size, corner, offset = patch(centre, length / 2 + width, pixel_um)
        u, v = axes(size, offset, angle, pixel_um)
        v = v - rng.uniform(-bend, bend) / length * u**2
        taper = np.clip(1.0 - (2.0 * u / length) ** 2, 0.0, 1.0)
        across = np.abs(v) / np.maximum(width / 2 * taper**0.6, 1e-3)
        thickness = height * np.sqrt(np.clip(1.0 - across**2, 0.0, None)) * np.sqrt(taper)
        vol.add(0.0, thickness.astype(np.float32), complex(rng.uniform(dn_lo, dn_hi), 0.0),
                at=corner)
        along = rng.normal(0.0, 0.05) * length
        rho2 = ((u - along) / (rng.uniform(0.12, 0.18) * length)) ** 2 + (v / (0.3 * width)) ** 2
        nucleus = dome(rho2.astype(np.float32), 0.7 * height)
        vol.add(height / 2 - nucleus / 2, height / 2 + nucleus / 2,
                complex(rng.uniform(0.005, 0.015), 0.0), at=corner)
    params["objects"] = count
    return on_slide(rng, vol, pixel_um, medium, params, CELL_STAIN)


def _cell_clusters(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
                   params: dict[str, Any]) -> Sample:
    """Islands of packed cells (colonies, epithelial clusters) whose extent grows with
    ``coverage`` into one confluent layer at 1."""
    medium = float(param(params, "medium_index", lambda: 1.335))
    coverage = float(param(params, "coverage", lambda: rng.uniform(0.1, 1.0)))
    cell_um = positive("cell_size_um", param(params, "cell_size_um",
                                               lambda: rng.uniform(8.0, 20.0)))
    height = positive("height_um", param(params, "height_um", lambda: rng.uniform(2.0, 7.0)))
    contrast = param_range(params, "index_contrast", (0.015, 0.04))
    island_um = positive("island_um", param(params, "island_um", lambda: rng.uniform(30.0, 150.0)))
    texture = float(param(params, "texture_opd_um", lambda: rng.uniform(0.0, 0.02)))
    slices = slices_of(params, 1)
    if not 0 < coverage <= 1:
        raise SimError(f"sample: coverage must be in (0, 1], got {coverage}")
    size_um = np.array(field_size(shape, pixel_um))
    seeds = rng.uniform(0, 1, (max(2, round(size_um.prod() / cell_um**2)), 2)) * size_um
    islands = random_field(rng, shape, pixel_um, corr_um=island_um / 4)
    at_seed = islands[(seeds[:, 0] / pixel_um).astype(int) % shape[0],
                      (seeds[:, 1] / pixel_um).astype(int) % shape[1]]
    keep = at_seed >= np.quantile(at_seed, 1.0 - coverage)
    vol = Volume(slices, shape, height * 1.3 + 1.0)
    params["objects"] = cell_layer(rng, vol, pixel_um, seeds, cell_um, height, contrast, 0.0,
                                   texture, keep)
    return on_slide(rng, vol, pixel_um, medium, params, CELL_STAIN)


SPREAD_CELLS = SampleFamily(_spread_cells, CELL_PARAMS | {"diameter_um", "lamella_um",
                                                          "granularity"})
ELONGATED_CELLS = SampleFamily(_elongated_cells, CELL_PARAMS | {"length_um", "width_um",
                                                                "alignment", "bend"})
CELL_CLUSTERS = SampleFamily(_cell_clusters, CELL_PARAMS | {"cell_size_um", "island_um",
                                                            "texture_opd_um"})
