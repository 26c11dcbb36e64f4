"""Strong, regular scatterers: ``diatoms`` (silica frustules with periodic pores, seen in valve
view as a thin projection) and ``beads`` (polystyrene, PMMA or silica spheres in water,
glycerol or oil, sliced)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from controller.sim.samples.drawing import Volume, axes, ball, patch
from controller.sim.samples.params import log_uniform, param, param_range, positive
from controller.sim.samples.placement import count_for, field_size, place
from controller.sim.samples.sample import Sample, SampleFamily
from controller.sim.samples.slide import SLIDE_PARAMS, Stain, on_slide

# Live diatoms hold chloroplasts (brownish, absorbing where they lie, not where the silica is);
# cleaned frustules absorb nothing.
PLASTIDS = Stain(relations=("uncorrelated",), ratio=(0.02, 0.3), unstained=0.5)
DYED_BEADS = Stain(relations=("positive",), ratio=(0.01, 0.2), unstained=0.6)
DIATOM_MOUNTS = (1.333, 1.70)  # live in water; cleaned in a high-index resin (Naphrax)
BEAD_MEDIA = (1.333, 1.47, 1.515)  # water, glycerol, immersion oil
BEAD_MATERIALS = (1.59, 1.49, 1.45)  # polystyrene, PMMA, silica
MIN_PERIOD_PX = 3.0  # pore patterns finer than this would alias on the grid


def _diatoms(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
             params: dict[str, Any]) -> Sample:
    """Diatom frustules (silica n 1.42–1.46) lying flat: pennate (lanceolate, transverse striae
    either side of a raphe) or centric (discs with a hexagonal array of areolae), the girdle
    seen edge-on as a bright rim. In a resin of n 1.70 they are negative phase objects."""
    medium = float(param(params, "medium_index",
                         lambda: DIATOM_MOUNTS[int(rng.integers(len(DIATOM_MOUNTS)))]))
    coverage = positive("coverage", param(params, "coverage",
                                          lambda: log_uniform(rng, 0.01, 0.3)))
    pennate = float(param(params, "pennate_fraction", lambda: rng.uniform(0.0, 1.0)))
    l_lo, l_hi = param_range(params, "length_um", (10.0, 30.0))
    s_lo, s_hi = param_range(params, "silica_index", (1.42, 1.46))
    valve = positive("valve_um", param(params, "valve_um", lambda: rng.uniform(0.2, 0.5)))
    finest = max(0.8, MIN_PERIOD_PX * pixel_um)
    period = positive("stria_um", param(params, "stria_um",
                                        lambda: rng.uniform(finest, max(2.0, finest))))
    pores = float(param(params, "pore_depth", lambda: rng.uniform(0.3, 0.9)))
    girdle = float(param(params, "girdle_um", lambda: rng.uniform(0.5, 2.0)))
    positive("length_um", l_lo)
    lengths = rng.uniform(l_lo, l_hi, count_for(coverage, shape, pixel_um,
                                                0.25 * ((l_lo + l_hi) / 2) ** 2))
    vol = Volume(1, shape, 1.0)
    for centre, length in zip(place(rng, lengths / 3, field_size(shape, pixel_um)), lengths,
                              strict=True):
        dn = complex(rng.uniform(s_lo, s_hi) - medium, 0.0)
        size, corner, offset = patch(centre, length / 2 + 1.0, pixel_um)
        u, v = axes(size, offset, rng.uniform(0, np.pi), pixel_um)
        k = 2 * np.pi / period
        if rng.random() < pennate:
            half_width = length * rng.uniform(0.08, 0.2)
            ends = rng.uniform(1.3, 2.5)  # pointed (small) to blunt (large) ends
            rho = (np.abs(2 * u / length) ** ends + (v / half_width) ** 2) ** (1 / 2)
            striae = 0.5 * (1 + np.cos(k * u)) * (np.abs(v) > 0.4) * (np.abs(u) > 0.08 * length)
            raphe = np.abs(v) < 0.15
            holes = pores * striae + 0.8 * raphe
            rim_um = min(0.5 * length, half_width)
        else:
            rho = np.hypot(u, v) / (length / 2)
            lattice = sum(np.cos(k * (u * math.cos(a) + v * math.sin(a)))
                          for a in (0.0, 2 * np.pi / 3, 4 * np.pi / 3))
            holes = pores * np.clip((lattice - 0.5) / 1.5, 0.0, 1.0)
            rim_um = length / 2
        edge = np.clip((1.0 - rho) * rim_um / 0.3, 0.0, 1.0)  # a 0.3 µm soft margin
        band = girdle * np.exp(-(((1.0 - rho) * rim_um / 0.4) ** 2)) * (rho < 1.0)
        thickness = 2 * valve * (1.0 - holes) * edge + band
        vol.add(0.0, thickness.astype(np.float32), dn, at=corner)
    params["objects"] = len(lengths)
    return on_slide(rng, vol, pixel_um, medium, params, PLASTIDS)


def _beads(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
           params: dict[str, Any]) -> Sample:
    """Microspheres of one nominal size (0.5–6 µm, a few % spread) settled on the glass: phase
    from a fraction of a radian (silica in oil: negative) to many radians (polystyrene in
    water, where a thin projection would be wrong, hence the slices)."""
    medium = float(param(params, "medium_index",
                         lambda: BEAD_MEDIA[int(rng.integers(len(BEAD_MEDIA)))]))
    bead = float(param(params, "bead_index",
                       lambda: BEAD_MATERIALS[int(rng.integers(len(BEAD_MATERIALS)))]))
    diameter = positive("diameter_um", param(params, "diameter_um",
                                             lambda: log_uniform(rng, 0.5, 6.0)))
    spread = float(param(params, "size_spread", lambda: rng.uniform(0.01, 0.08)))
    coverage = positive("coverage", param(params, "coverage",
                                          lambda: log_uniform(rng, 0.002, 0.3)))
    slice_um = positive("slice_um", param(params, "slice_um",
                                          lambda: min(0.5, max(0.125, diameter / 4))))
    radii = np.clip(diameter / 2 * (1 + spread * rng.normal(size=count_for(
        coverage, shape, pixel_um, np.pi * diameter**2 / 4))), 0.1, diameter)
    slices = max(2, math.ceil(2 * radii.max() / slice_um))
    vol = Volume(slices, shape, slices * slice_um)
    for centre, radius in zip(place(rng, radii, field_size(shape, pixel_um)), radii, strict=True):
        ball(vol, centre, radius, (radius, radius), complex(bead - medium, 0.0), pixel_um)
    params["objects"] = len(radii)
    return on_slide(rng, vol, pixel_um, medium, params, DYED_BEADS)


DIATOMS = SampleFamily(_diatoms, SLIDE_PARAMS | {
    "coverage", "pennate_fraction", "length_um", "silica_index", "valve_um", "stria_um",
    "pore_depth", "girdle_um"})
BEADS = SampleFamily(_beads, SLIDE_PARAMS | {
    "bead_index", "diameter_um", "size_spread", "coverage", "slice_um"})
