"""What the slide adds around a family's objects, shared by the families beyond the first four:
how the objects absorb light (the absorption-to-phase relation), the coverglass background and
in-plane debris (``drawing.background``), uneven absorption across the field, and dust on the
coverslip's far side, a layer of its own ~170 µm from the sample.

The relation decides the sign of the spectrum magnitude's asymmetry about focus, the cue a
magnitude-only network reads the sign of defocus from (docs/families.md):

- ``positive``: absorption where the optical path is longest (stained or pigmented material,
  haemoglobin): ``imag = a·(path − its minimum)``;
- ``negative``: absorption where it is shortest (a dyed medium the objects exclude, a negative
  stain): ``imag = a·(its maximum − path)``;
- ``uncorrelated``: a stain texture of its own, unrelated to the path, holding as much
  absorption over the field as the positive relation would;

with ``a`` the family's ``absorption`` (µm of absorption path per µm of optical path; 0: none).
Over several slices the extremes are of the projected path, spread evenly over the slices.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from controller.sim.errors import SimError
from controller.sim.samples.drawing import (
    Volume,
    background,
    capsule,
    dome,
    ellipse,
    patch,
    random_field,
)
from controller.sim.samples.params import choice, log_uniform, param, positive
from controller.sim.samples.sample import COVERSLIP_INDEX, Sample

SLIDE_PARAMS = frozenset({"medium_index", "absorption", "absorption_relation",
                          "background_opd_um", "debris_per_mm2", "uneven_absorption_um",
                          "dust_per_mm2", "coverslip_um"})
"""The parameters ``on_slide`` draws, which every family that uses it accepts."""

RELATIONS = ("positive", "negative", "uncorrelated")
DUST_FREE_CHANCE = 0.4  # a clean coverslip
DUST_PER_MM2 = (20.0, 400.0)
COVERSLIP_UM = (160.0, 190.0)  # No. 1.5 coverslips: 170 µm nominal, ±~15 µm


class Stain(NamedTuple):
    """How a family's objects may absorb: the relations drawn from, the range of the
    absorption ratio (drawn log-uniformly) and the chance that they do not absorb at all."""

    relations: tuple[str, ...]
    ratio: tuple[float, float]
    unstained: float


def on_slide(rng: np.random.Generator, vol: Volume, pixel_um: float, medium: float,
             params: dict[str, Any], stain: Stain) -> Sample:
    """The finished sample: the objects drawn in ``vol`` (optical path only) absorbing as the
    family's ``stain`` draws, the background and debris, uneven absorption and far-side dust."""
    absorb(rng, vol, pixel_um, params, stain)
    background(rng, vol, pixel_um, params)
    level = float(param(params, "uneven_absorption_um", lambda: rng.uniform(0.0, 0.01)))
    if level > 0:  # 0.01 µm dims the intensity by up to a fifth at 0.53 µm
        field = random_field(rng, vol.shape, pixel_um, corr_um=rng.uniform(30.0, 100.0))
        vol.path[vol.slices // 2].imag += level * _unit_range(field)
    dust = far_dust(rng, vol.shape, pixel_um, params)
    return Sample(vol.path, pixel_um, vol.dz if vol.slices > 1 else 0.0, medium, params=params,
                  far_path_um=dust, far_distance_um=params["coverslip_um"] if dust is not None
                  else 0.0, far_index=COVERSLIP_INDEX)


def absorb(rng: np.random.Generator, vol: Volume, pixel_um: float, params: dict[str, Any],
           stain: Stain) -> None:
    """Give the objects' optical path its absorption, by the drawn relation and ratio."""
    ratio = float(param(params, "absorption", lambda: 0.0 if rng.random() < stain.unstained
                        else log_uniform(rng, *stain.ratio)))
    if not (math.isfinite(ratio) and ratio >= 0):
        raise SimError(f"sample: absorption must be >= 0, got {ratio}")
    relation = choice(params, "absorption_relation", stain.relations, rng)
    if relation not in RELATIONS:
        raise SimError(f"sample: absorption_relation {relation!r} is not one of {RELATIONS}")
    if ratio == 0:
        return
    real = vol.path.real
    projected = real.sum(axis=0)
    share = np.float32(1.0 / vol.slices)
    if relation == "positive":
        vol.path.imag += ratio * (real - projected.min() * share)
    elif relation == "negative":
        vol.path.imag += ratio * (projected.max() * share - real)
    else:  # as much absorption in all as the positive relation would give, spread at random
        texture = _unit_range(random_field(rng, vol.shape, pixel_um,
                                           corr_um=rng.uniform(0.5, 5.0)))
        total = float((projected - projected.min()).mean()) / max(float(texture.mean()), 1e-6)
        vol.path.imag += (ratio * total * share) * texture[None]


def far_dust(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
             params: dict[str, Any]) -> np.ndarray | None:
    """Dust on the coverslip's far side (``coverslip_um`` from the sample): absorbing grains of
    1–8 µm and fibres up to 60 µm long, as complex optical path; None when there is none."""
    per_mm2 = float(param(params, "dust_per_mm2", lambda: 0.0 if rng.random() < DUST_FREE_CHANCE
                          else rng.uniform(*DUST_PER_MM2)))
    positive("coverslip_um", param(params, "coverslip_um", lambda: rng.uniform(*COVERSLIP_UM)))
    area_mm2 = shape[0] * shape[1] * pixel_um**2 / 1e6
    count = int(rng.poisson(per_mm2 * area_mm2)) if per_mm2 > 0 else 0
    if count == 0:
        return None
    layer = Volume(1, shape, 1.0)
    size_um = (shape[0] * pixel_um, shape[1] * pixel_um)
    for _ in range(count):
        centre = (rng.uniform(0, size_um[0]), rng.uniform(0, size_um[1]))
        angle = rng.uniform(0, np.pi)
        if rng.random() < 0.3:
            half, radius = rng.uniform(5.0, 30.0), rng.uniform(0.5, 1.5)
            size, corner, offset = patch(centre, half + radius, pixel_um)
            thickness = capsule(size, offset, half, radius, angle, pixel_um)
        else:
            radius = rng.uniform(1.0, 8.0)
            size, corner, offset = patch(centre, radius, pixel_um)
            rho2 = ellipse(size, offset, (radius, radius * rng.uniform(0.4, 1.0)), angle,
                           pixel_um)
            thickness = dome(rho2, radius * rng.uniform(0.3, 1.0))
        layer.add(0.0, thickness, complex(rng.uniform(0.05, 0.5), rng.uniform(0.02, 0.3)),
                  at=corner)
    return layer.path[0]


def _unit_range(field: np.ndarray) -> np.ndarray:
    """The field scaled to run from 0 to 1."""
    low, high = float(field.min()), float(field.max())
    return np.asarray((field - low) / (high - low) if high > low else field * 0, np.float32)
