"""``bacteria``: rods and cocci (single, in pairs and chains) on a coverglass, scattered or
gathered in micro-colonies, unstained, Gram-stained or negatively stained."""

from __future__ import annotations

from typing import Any

import numpy as np

from controller.sim.samples.drawing import Volume, capsule, patch
from controller.sim.samples.params import log_uniform, param, param_range, positive, slices_of
from controller.sim.samples.placement import colonies, count_for, field_size
from controller.sim.samples.sample import Sample, SampleFamily
from controller.sim.samples.slide import RELATIONS, SLIDE_PARAMS, Stain, on_slide

# Unstained (a wet mount), Gram-stained (crystal violet absorbs green strongly: positive) or a
# negative stain (nigrosin or India ink darkens the background around clear cells: negative).
BACTERIA_STAIN = Stain(relations=RELATIONS, ratio=(0.02, 0.5), unstained=0.4)


def _bacteria(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
              params: dict[str, Any]) -> Sample:
    """Bacteria (n ≈ 1.38–1.40 in water): rods 1.5–5 µm long, cocci in chains of 1–8, 0.5–1 µm
    thick, overlapping where crowded; ``clustering`` of them in colonies."""
    medium = float(param(params, "medium_index", lambda: 1.333))
    coverage = positive("coverage", param(params, "coverage",
                                          lambda: log_uniform(rng, 0.005, 0.4)))
    rods = float(param(params, "rod_fraction", lambda: rng.uniform(0.0, 1.0)))
    l_lo, l_hi = param_range(params, "length_um", (1.5, 5.0))
    w_lo, w_hi = param_range(params, "width_um", (0.5, 1.0))
    dn_lo, dn_hi = param_range(params, "index_contrast", (0.03, 0.06))
    clustering = float(param(params, "clustering", lambda: rng.uniform(0.0, 1.0)))
    slices = slices_of(params, 1)
    positive("width_um", w_lo)
    mean_area = (w_lo + w_hi) / 2 * (rods * (l_lo + l_hi) / 2 + (1 - rods) * 3 * w_hi)
    count = count_for(coverage, shape, pixel_um, mean_area)
    size_um = field_size(shape, pixel_um)
    vol = Volume(slices, shape, 2 * w_hi + 1.0)
    for centre in colonies(rng, count, size_um, clustering, rng.uniform(3.0, 12.0)):
        width = rng.uniform(w_lo, w_hi)
        angle = rng.uniform(0, np.pi)
        dn = complex(rng.uniform(dn_lo, dn_hi), 0.0)
        if rng.random() < rods:
            half = max(rng.uniform(l_lo, l_hi) - width, 0.0) / 2
            size, corner, offset = patch(centre, half + width, pixel_um)
            vol.add(0.0, capsule(size, offset, half, width / 2, angle, pixel_um), dn, at=corner)
            continue
        radius = width / 2 * rng.uniform(1.0, 1.3)
        spot = np.array(centre)
        for _ in range(int(rng.integers(1, 9))):  # a chain turning slowly
            size, corner, offset = patch((float(spot[0]), float(spot[1])), radius, pixel_um)
            vol.add(0.0, capsule(size, offset, 0.0, radius, 0.0, pixel_um), dn, at=corner)
            angle += rng.normal(0.0, 0.3)
            spot = spot + 1.9 * radius * np.array([np.sin(angle), np.cos(angle)])
    params["objects"] = count
    return on_slide(rng, vol, pixel_um, medium, params, BACTERIA_STAIN)


BACTERIA = SampleFamily(_bacteria, SLIDE_PARAMS | {
    "slices", "coverage", "rod_fraction", "length_um", "width_um", "index_contrast",
    "clustering"})
