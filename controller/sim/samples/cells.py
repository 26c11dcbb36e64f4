"""Cells on a coverglass: ``sparse-cells`` (white blood cells settled apart) and ``dense-cells``
(a confluent layer)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from controller.sim.samples.drawing import (
    COVERGLASS_PARAMS,
    Volume,
    background,
    dome,
    ellipse,
    patch,
    random_field,
    voronoi,
)
from controller.sim.samples.params import param, param_range, positive, slices_of
from controller.sim.samples.placement import periodic_distance
from controller.sim.samples.sample import Sample, SampleFamily


def _sparse_cells(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
                  params: dict[str, Any]) -> Sample:
    """White blood cells settled on a coverglass: phase objects with nuclei and granules."""
    medium = float(param(params, "medium_index", lambda: 1.33))
    per_mm2 = positive("density_per_mm2",
                       param(params, "density_per_mm2", lambda: rng.uniform(150.0, 1500.0)))
    d_lo, d_hi = param_range(params, "diameter_um", (8.0, 12.0))
    h_lo, h_hi = param_range(params, "height_um", (3.0, 6.0))
    n_lo, n_hi = param_range(params, "cell_index", (1.36, 1.39))
    absorb = float(param(params, "kappa", lambda: rng.uniform(2e-4, 1.5e-3)))
    granularity = float(param(params, "granularity", lambda: rng.uniform(0.0, 0.01)))
    slices = slices_of(params, 1)
    positive("diameter_um", d_lo)
    positive("height_um", h_lo)
    thickness = h_hi + 1.0
    vol = Volume(slices, shape, thickness)
    area_mm2 = shape[0] * shape[1] * pixel_um**2 / 1e6
    count = rng.poisson(per_mm2 * area_mm2)
    placed: list[tuple[float, float, float]] = []
    size_um = (shape[0] * pixel_um, shape[1] * pixel_um)
    for _ in range(count):
        radius = rng.uniform(d_lo, d_hi) / 2.0
        for _attempt in range(20):  # sparse: cells do not pile up on each other
            cy, cx = rng.uniform(0, size_um[0]), rng.uniform(0, size_um[1])
            if all(periodic_distance((cy, cx), (py, px), size_um) > 0.9 * (radius + pr)
                   for py, px, pr in placed):
                break
        else:
            continue
        placed.append((cy, cx, radius))
        _white_cell(rng, vol, pixel_um, (cy, cx), radius, rng.uniform(h_lo, h_hi),
                    complex(rng.uniform(n_lo, n_hi) - medium, absorb), granularity)
    background(rng, vol, pixel_um, params)
    params["cells"] = len(placed)
    return Sample(vol.path, pixel_um, vol.dz if slices > 1 else 0.0, medium, params=params)


def _white_cell(rng: np.random.Generator, vol: Volume, pixel_um: float,
                centre_um: tuple[float, float], radius: float, height: float, dn: complex,
                granularity: float) -> None:
    """One leukocyte: a dome with a lobed nucleus (lymphocyte, neutrophil or monocyte look)."""
    size, corner, offset = patch(centre_um, 1.1 * radius, pixel_um)
    aspect = rng.uniform(0.85, 1.15)
    angle = rng.uniform(0, np.pi)
    body = dome(ellipse(size, offset, (radius * aspect, radius / aspect), angle, pixel_um),
                height)
    vol.add(0.0, body, dn, at=corner)
    if granularity > 0:
        grains = random_field(rng, (size, size), pixel_um, corr_um=0.25)
        vol.add(0.0, body, granularity * grains, at=corner)
    lobes = int(rng.choice([1, 1, 2, 3, 4]))
    lobe_radius = radius * (0.7 if lobes == 1 else rng.uniform(0.3, 0.4))
    nucleus_dn = complex(rng.uniform(0.01, 0.03), abs(dn.imag) * rng.uniform(1.0, 3.0))
    for k in range(lobes):
        phi = angle + 2 * np.pi * k / lobes
        spread = 0.0 if lobes == 1 else 0.45 * radius
        lobe_offset = (offset[0] + spread * math.sin(phi) / pixel_um,
                       offset[1] + spread * math.cos(phi) / pixel_um)
        rho2 = ellipse(size, lobe_offset, (lobe_radius, lobe_radius * rng.uniform(0.7, 1.0)),
                       rng.uniform(0, np.pi), pixel_um)
        thick = dome(rho2, 0.6 * height)
        vol.add(height / 2 - thick / 2, height / 2 + thick / 2, nucleus_dn, at=corner)


def _dense_cells(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
                 params: dict[str, Any]) -> Sample:
    """A confluent layer: Voronoi cells, each a low dome with a nucleus and nucleoli."""
    medium = float(param(params, "medium_index", lambda: 1.33))
    cell_um = positive("cell_size_um", param(params, "cell_size_um",
                                               lambda: rng.uniform(12.0, 22.0)))
    height = positive("height_um", param(params, "height_um", lambda: rng.uniform(2.0, 5.0)))
    dn_lo, dn_hi = param_range(params, "index_contrast", (0.015, 0.045))
    absorb = float(param(params, "kappa", lambda: rng.uniform(2e-4, 1.5e-3)))
    texture = float(param(params, "texture_opd_um", lambda: rng.uniform(0.0, 0.03)))
    slices = slices_of(params, 1)
    size_um = np.array([shape[0] * pixel_um, shape[1] * pixel_um])
    seeds_n = max(2, round(size_um.prod() / cell_um**2))
    seeds = rng.uniform(0, 1, (seeds_n, 2)) * size_um
    vol = Volume(slices, shape, height * 1.3 + 1.0)
    cells = cell_layer(rng, vol, pixel_um, seeds, cell_um, height, (dn_lo, dn_hi), absorb,
                       texture)
    background(rng, vol, pixel_um, params)
    params["cells"] = cells
    return Sample(vol.path, pixel_um, vol.dz if slices > 1 else 0.0, medium, params=params)


def cell_layer(rng: np.random.Generator, vol: Volume, pixel_um: float, seeds: np.ndarray,
               cell_um: float, height: float, contrast: tuple[float, float], absorb: float,
               texture: float, keep: np.ndarray | None = None) -> int:
    """Cells packed edge to edge (the Voronoi cells of ``seeds``, µm), each a low dome with a
    nucleus and nucleoli; ``keep`` (bool per seed) leaves the others' places empty, so the kept
    ones form islands. Returns the number of cells drawn."""
    shape = vol.shape
    seeds_n = len(seeds)
    d_own, edge, owner = voronoi(seeds, shape, pixel_um)
    rise = np.clip(edge / (0.3 * cell_um), 0.0, 1.0)
    cell_height = (height * rng.uniform(0.7, 1.3, seeds_n))[owner].astype(np.float32)
    if keep is not None:
        cell_height *= keep[owner]
    thick = cell_height * np.sqrt(1.0 - (1.0 - rise) ** 2)
    dn_lo, dn_hi = contrast
    dn = (rng.uniform(dn_lo, dn_hi, seeds_n) + 1j * absorb)[owner]
    vol.add(0.0, thick, dn)
    nucleus_r = (cell_um * rng.uniform(0.2, 0.3, seeds_n))[owner]
    nucleus = dome((d_own / nucleus_r) ** 2, 1.0) * 0.6 * cell_height
    base = cell_height / 2
    vol.add(base - nucleus / 2, base + nucleus / 2,
            (rng.uniform(0.01, 0.025, seeds_n) + 2j * absorb)[owner])
    if texture > 0:
        grains = random_field(rng, shape, pixel_um, corr_um=rng.uniform(0.3, 1.0))
        vol.path[vol.slices // 2] += (texture * grains * (thick > 0)).astype(np.complex64)
    return int(seeds_n if keep is None else keep.sum())


SPARSE_CELLS = SampleFamily(_sparse_cells, COVERGLASS_PARAMS | {
    "density_per_mm2", "diameter_um", "height_um", "cell_index", "kappa", "granularity"})
DENSE_CELLS = SampleFamily(_dense_cells, COVERGLASS_PARAMS | {
    "cell_size_um", "height_um", "index_contrast", "kappa", "texture_opd_um"})
