"""Objects thicker than the depth of field, always simulated in slices: ``thick-cells`` (rounded
cells 10–30 µm tall with nuclei, lipid droplets and vacuoles) and ``pollen`` (grains with a
dense, ornamented wall)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from controller.sim.samples.drawing import Volume, ball
from controller.sim.samples.params import choice, log_uniform, param, param_range, positive
from controller.sim.samples.placement import count_for, field_size, place
from controller.sim.samples.sample import Sample, SampleFamily
from controller.sim.samples.slide import RELATIONS, SLIDE_PARAMS, Stain, on_slide

THICK_CELL_STAIN = Stain(relations=RELATIONS, ratio=(0.005, 0.2), unstained=0.3)
# Pollen walls are yellowish (little absorption in green) unless stained (basic fuchsin or
# safranin, which absorb green strongly); a stain that binds the wall is a positive relation.
POLLEN_STAIN = Stain(relations=("positive", "uncorrelated"), ratio=(0.01, 0.2), unstained=0.3)
ORNAMENTS = ("echinate", "verrucate", "psilate")  # spines, warts, smooth
MOUNTS = (1.333, 1.47)  # water, glycerine jelly


def _volume(params: dict[str, Any], shape: tuple[int, int], height_um: float) -> Volume:
    """Slices of ``slice_um`` (default 1 µm, half the paper's depth of field) up to height_um."""
    slice_um = positive("slice_um", param(params, "slice_um", lambda: 1.0))
    slices = max(2, math.ceil(height_um / slice_um))
    return Volume(slices, shape, slices * slice_um)


def _random_direction(rng: np.random.Generator) -> np.ndarray:
    """A unit vector (z, y, x) uniform over the sphere."""
    v = rng.normal(size=3)
    return np.asarray(v / np.linalg.norm(v))


def _thick_cells(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
                 params: dict[str, Any]) -> Sample:
    """Rounded cells resting on the glass (suspension or mitotic cells, oocyte-like blobs):
    flattened ellipsoids of Δn 0.005–0.012 with a nucleus and nucleoli, strongly refracting lipid
    droplets (Δn ≈ 0.1) and watery vacuoles."""
    medium = float(param(params, "medium_index", lambda: 1.335))
    coverage = positive("coverage", param(params, "coverage",
                                          lambda: log_uniform(rng, 0.02, 0.4)))
    d_lo, d_hi = param_range(params, "diameter_um", (10.0, 30.0))
    f_lo, f_hi = param_range(params, "flatness", (0.5, 1.0))
    dn_lo, dn_hi = param_range(params, "index_contrast", (0.005, 0.012))
    droplets = float(param(params, "droplets_per_cell", lambda: rng.uniform(0.0, 10.0)))
    positive("diameter_um", d_lo)
    vol = _volume(params, shape, d_hi * f_hi + 1.0)
    radii = rng.uniform(d_lo, d_hi, count_for(coverage, shape, pixel_um,
                                              np.pi * ((d_lo + d_hi) / 4) ** 2)) / 2
    for centre, radius in zip(place(rng, radii, field_size(shape, pixel_um)), radii, strict=True):
        half = radius * rng.uniform(f_lo, f_hi)
        dn = rng.uniform(dn_lo, dn_hi)
        ball(vol, centre, half, (radius, half), complex(dn, 0.0), pixel_um)
        inside = (centre[0] + rng.normal(0, 0.1 * radius), centre[1] + rng.normal(0, 0.1 * radius))
        nucleus = radius * rng.uniform(0.3, 0.45)
        ball(vol, inside, half, (nucleus, min(nucleus, 0.8 * half)),
             complex(rng.uniform(0.005, 0.012), 0.0), pixel_um)
        for _ in range(int(rng.integers(1, 4))):
            ball(vol, (inside[0] + rng.normal(0, 0.3 * nucleus),
                       inside[1] + rng.normal(0, 0.3 * nucleus)), half,
                 (rng.uniform(0.6, 1.2),) * 2, complex(rng.uniform(0.01, 0.02), 0.0), pixel_um)
        for dn_inner, low, high, n in ((rng.uniform(0.08, 0.15), 0.3, 1.0, rng.poisson(droplets)),
                                       (-dn * 0.8, 1.0, 3.0, rng.poisson(1.0))):
            for _ in range(int(n)):
                r = rng.uniform(low, high) * min(1.0, radius / 10.0)
                where = _random_direction(rng) * rng.uniform(0.0, 0.7)
                ball(vol, (centre[0] + where[1] * radius, centre[1] + where[2] * radius),
                     half + where[0] * half, (r, r), complex(dn_inner, 0.0), pixel_um)
    params["objects"] = len(radii)
    return on_slide(rng, vol, pixel_um, medium, params, THICK_CELL_STAIN)


def _pollen(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
            params: dict[str, Any]) -> Sample:
    """Pollen grains 15–30 µm: a wall (exine, sporopollenin n ≈ 1.48–1.52, 1–2.5 µm) with
    spines or warts or smooth, around contents of n 1.36–1.40 (in water they stand out as
    strong scatterers; in glycerine jelly mostly their wall does)."""
    medium = float(param(params, "medium_index",
                         lambda: MOUNTS[int(rng.integers(len(MOUNTS)))]))
    coverage = positive("coverage", param(params, "coverage",
                                          lambda: log_uniform(rng, 0.01, 0.3)))
    d_lo, d_hi = param_range(params, "diameter_um", (15.0, 30.0))
    wall = positive("exine_um", param(params, "exine_um", lambda: rng.uniform(1.0, 2.5)))
    w_lo, w_hi = param_range(params, "exine_index", (1.48, 1.52))
    c_lo, c_hi = param_range(params, "content_index", (1.36, 1.40))
    ornament = choice(params, "ornament", ORNAMENTS, rng)
    positive("diameter_um", d_lo)
    vol = _volume(params, shape, d_hi + 4.0)
    radii = rng.uniform(d_lo, d_hi, count_for(coverage, shape, pixel_um,
                                              np.pi * ((d_lo + d_hi) / 4) ** 2)) / 2
    for centre, radius in zip(place(rng, radii, field_size(shape, pixel_um)), radii, strict=True):
        z = radius + 1.0  # resting on its ornaments
        exine = complex(rng.uniform(w_lo, w_hi) - medium, 0.0)
        ball(vol, centre, z, (radius, radius), exine, pixel_um)
        inner = radius - wall * rng.uniform(0.8, 1.2)
        ball(vol, centre, z, (inner, inner), complex(rng.uniform(c_lo, c_hi) - medium, 0.0)
             - exine, pixel_um)
        if ornament == "psilate":
            continue
        spines = ornament == "echinate"
        for _ in range(int(rng.integers(30, 100) if spines else rng.integers(20, 60))):
            size = rng.uniform(0.4, 0.8) if spines else rng.uniform(0.8, 1.8)
            where = _random_direction(rng) * (radius + (size / 2 if spines else 0.0))
            ball(vol, (centre[0] + where[1], centre[1] + where[2]), z + where[0],
                 (size, size * (1.5 if spines else 0.7)), exine, pixel_um)
    params["objects"] = len(radii)
    return on_slide(rng, vol, pixel_um, medium, params, POLLEN_STAIN)


THICK_CELLS = SampleFamily(_thick_cells, SLIDE_PARAMS | {
    "coverage", "diameter_um", "flatness", "index_contrast", "droplets_per_cell", "slice_um"})
POLLEN = SampleFamily(_pollen, SLIDE_PARAMS | {
    "coverage", "diameter_um", "exine_um", "exine_index", "content_index", "ornament",
    "slice_um"})
