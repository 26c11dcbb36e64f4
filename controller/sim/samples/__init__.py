"""Seeded virtual samples: what the light passes through, as complex optical path per slice.

A sample is a stack of slices on the simulation grid. Each slice holds the *complex optical path
difference* against the surrounding medium, ``path = Δn·t + i·κ·t`` (µm), so its transmittance at
any wavelength is ``exp(2πi·path/λ)``: the phase and the absorption follow from the same physical
description for every wavelength of a broadband LED. One slice is a thin sample; several are a
thick sample propagated slice by slice (``slice_um`` apart, in ``medium_index``).

The field of view is periodic (objects that cross one edge continue at the other), which is what
the FFT-based optics assume; nothing is cut off at an edge to diffract.

``make_sample(kind, shape, pixel_um, seed, **params)`` is the one factory. Every parameter a kind
does not receive is drawn from a realistic range with the seed, so many seeds give varied training
data; the values used end up in ``Sample.params`` (and in a stack's metadata).

To add a family, write a module here (``cells.py``, ``tissue.py`` and ``picture.py`` are the
examples) with a generator ``(rng, shape, pixel_um, params) -> Sample`` that reads each parameter
through ``params.param`` / ``params.param_range`` (the given value or a draw from ``rng``,
recorded), builds its slices with the helpers of ``drawing.py`` (``Volume``, ``ellipse``,
``dome``, ``random_field``, ``background``), and exposes a ``SampleFamily(generator, the
parameter names it accepts)``; then register that under its kind name in ``SAMPLE_KINDS`` below.
Each kind's ``rng`` is seeded with the seed and the kind's name, so a new family leaves every
other kind's samples as they were; drawing only from it keeps the new family's reproducible.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from controller.sim.errors import SimError
from controller.sim.samples.adherent import CELL_CLUSTERS, ELONGATED_CELLS, SPREAD_CELLS
from controller.sim.samples.blood import RED_CELLS
from controller.sim.samples.cells import DENSE_CELLS, SPARSE_CELLS
from controller.sim.samples.microbes import BACTERIA
from controller.sim.samples.picture import IMAGE, PICTURES
from controller.sim.samples.sample import Sample, SampleFamily
from controller.sim.samples.scatterers import BEADS, DIATOMS
from controller.sim.samples.sections import TISSUE_SECTION
from controller.sim.samples.thick import POLLEN, THICK_CELLS
from controller.sim.samples.tissue import TISSUE

__all__ = ["SAMPLE_KINDS", "Sample", "SampleFamily", "make_sample"]

SAMPLE_KINDS: dict[str, SampleFamily] = {
    "sparse-cells": SPARSE_CELLS,
    "dense-cells": DENSE_CELLS,
    "tissue": TISSUE,
    "image": IMAGE,
    "red-cells": RED_CELLS,
    "spread-cells": SPREAD_CELLS,
    "elongated-cells": ELONGATED_CELLS,
    "cell-clusters": CELL_CLUSTERS,
    "bacteria": BACTERIA,
    "thick-cells": THICK_CELLS,
    "pollen": POLLEN,
    "diatoms": DIATOMS,
    "beads": BEADS,
    "tissue-section": TISSUE_SECTION,
    "pictures": PICTURES,
}


def make_sample(kind: str, shape: tuple[int, int], pixel_um: float, seed: int,
                **params: Any) -> Sample:
    """A reproducible sample of the named kind; unknown kinds and parameters are errors."""
    if kind not in SAMPLE_KINDS:
        raise SimError(f"unknown sample kind {kind!r}; known: {sorted(SAMPLE_KINDS)}")
    rows, cols = (int(s) for s in shape)
    if rows < 8 or cols < 8:
        raise SimError(f"sample: shape must be at least 8x8 pixels, got {shape}")
    if not (isinstance(pixel_um, int | float) and math.isfinite(pixel_um) and pixel_um > 0):
        raise SimError(f"sample: pixel_um must be a positive number, got {pixel_um!r}")
    if int(seed) < 0:
        raise SimError(f"sample: seed must be >= 0, got {seed}")
    maker, known = SAMPLE_KINDS[kind]
    unknown = set(params) - known
    if unknown:
        raise SimError(f"sample {kind!r}: unknown parameters {sorted(unknown)}; "
                       f"known: {sorted(known)}")
    rng = np.random.default_rng([int(seed), _stable_hash(kind)])
    sample = maker(rng, (rows, cols), float(pixel_um), dict(params))
    return dataclasses.replace(sample, kind=kind, seed=int(seed))


def _stable_hash(text: str) -> int:
    """The kind's part of the rng seed: the same on every run (``hash`` of a str is salted)."""
    return sum((i + 1) * ord(ch) for i, ch in enumerate(text))
