"""Where a family's objects go on the periodic field: how many a coverage asks for, spots clear
of each other while there is room (overlapping once the field is fuller than random packing
allows, as real cells pile up), and colonies around a few centres."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TRIES = 20  # spots tried for an object before it is allowed to overlap


def count_for(coverage: float, shape: tuple[int, int], pixel_um: float,
              object_area_um2: float) -> int:
    """Objects of the given mean area (projected, µm²) that cover ``coverage`` of the field."""
    field_um2 = shape[0] * shape[1] * pixel_um**2
    return max(1, round(coverage * field_um2 / object_area_um2))


def field_size(shape: tuple[int, int], pixel_um: float) -> tuple[float, float]:
    return (shape[0] * pixel_um, shape[1] * pixel_um)


def place(rng: np.random.Generator, radii: Sequence[float] | np.ndarray,
          size_um: tuple[float, float]) -> list[tuple[float, float]]:
    """Centres (µm) for objects of the given radii, each at the first of ``TRIES`` random spots
    that keeps it clear of those placed (centres at least 0.9 of the radii's sum apart), else
    at the last spot tried. Placed objects are kept in buckets of the largest diameter, so a
    spot is checked against its neighbours only."""
    if len(radii) == 0:
        return []
    bucket_um = 2 * float(max(radii))
    buckets = (max(1, int(size_um[0] // bucket_um)), max(1, int(size_um[1] // bucket_um)))
    placed: dict[tuple[int, int], list[tuple[float, float, float]]] = {}
    centres = []
    for radius in radii:
        for _ in range(TRIES):
            y, x = rng.uniform(0, size_um[0]), rng.uniform(0, size_um[1])
            by, bx = int(y / size_um[0] * buckets[0]), int(x / size_um[1] * buckets[1])
            near = [other for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                    for other in placed.get(((by + dy) % buckets[0], (bx + dx) % buckets[1]), ())]
            if all(periodic_distance((y, x), (oy, ox), size_um) > 0.9 * (radius + r)
                   for oy, ox, r in near):
                break
        placed.setdefault((by, bx), []).append((y, x, float(radius)))
        centres.append((float(y), float(x)))
    return centres


def periodic_distance(a: tuple[float, float], b: tuple[float, float],
                      size: tuple[float, float]) -> float:
    """Distance between two points of the periodic field (the shorter way round)."""
    dy = abs(a[0] - b[0]) % size[0]
    dx = abs(a[1] - b[1]) % size[1]
    return math.hypot(min(dy, size[0] - dy), min(dx, size[1] - dx))


def colonies(rng: np.random.Generator, count: int, size_um: tuple[float, float],
             clustering: float, spread_um: float) -> list[tuple[float, float]]:
    """``count`` centres (µm): a fraction ``clustering`` of them gathered around a few colony
    centres (one per ~20 cells, Gaussian spread ``spread_um``), the rest spread evenly."""
    size = np.asarray(size_um)
    gathered = int(rng.binomial(count, min(max(clustering, 0.0), 1.0)))
    hubs = rng.uniform(0, 1, (max(1, math.ceil(gathered / 20)), 2)) * size
    around = hubs[rng.integers(len(hubs), size=gathered)] + \
        rng.normal(0.0, spread_um, (gathered, 2))
    loose = rng.uniform(0, 1, (count - gathered, 2)) * size
    return [(float(y), float(x)) for y, x in np.vstack([around, loose]) % size]
