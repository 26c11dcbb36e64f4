"""One task of a dataset build: one focal stack in, its features, labels and record out.

A task runs on a Dask worker: it renders a simulated stack (both channels, in memory) or reads an
acquired one, checks that it fits the dataset (optics, autofocus pattern, frame, planes), finds
its focal plane from the incoherent channel, and featurises its autofocus planes with the
controller's own function; the images are dropped there, only features (80-160 kB a stack)
travel back. A stack that cannot be used (a damaged file, no focus found, other optics) comes
back as ``skipped`` with the reason, never as an exception that would stop the build.

The record says whatever is known of the stack, the same for every sample kind: its kind and
seed, its z and labels, and the stack's own metadata (for simulated stacks the sample's
parameters, the camera with its exposure and noise, the noise seed and the imaging settings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.errors import FocuslockError
from controller.optics import Pattern, Preset, preset
from controller.sim.instrument import InstrumentVariation
from controller.stackio import FocalStack
from training.acquired import read_acquired
from training.datagen import simulated_stack, with_autofocus
from training.dataset import mismatch, sample_kind, stack_features
from training.store import Layout


@dataclass(frozen=True)
class SimulatedJob:
    """Stack ``slot`` of a simulated build (training/datagen.py draws it)."""

    slot: int
    name: str
    kind: str
    seed: int  # the sample's seed (also the camera noise's)
    size: int
    preset: str
    z_um: tuple[float, ...]
    focus_jitter_um: float
    keep: bool  # send the images back too, to be kept as an OME-TIFF
    variation: InstrumentVariation | None = None  # None: the preset's ideal instrument
    autofocus: Pattern | None = None  # None: the preset's autofocus pattern
    system: Preset | None = None  # None: the named preset's optical system

    def stack(self) -> FocalStack:
        return simulated_stack(self.kind, self.seed, self.size,
                               with_autofocus(self.system or preset(self.preset),
                                              self.autofocus),
                               np.array(self.z_um), self.focus_jitter_um, self.variation)


@dataclass(frozen=True)
class AcquiredJob:
    """Stack ``slot`` of a build from acquired stacks: the file at ``url``."""

    slot: int
    name: str
    url: str
    keep: bool = False  # acquired stacks are kept where they are

    def stack(self) -> FocalStack:
        return read_acquired(self.url)


Job = SimulatedJob | AcquiredJob


@dataclass
class StackResult:
    slot: int
    record: dict[str, Any]  # JSON-ready; "status" is "done" or "skipped"
    features: np.ndarray | None = None  # float32 (planes, patches, n_features)
    mirror_features: np.ndarray | None = None
    kept: FocalStack | None = None  # the images, when the job asked to keep them


def run_job(job: Job, layout: Layout) -> StackResult:
    """The task: the stack's features and record, or its reason to be skipped."""
    try:
        stack = job.stack()
    except FocuslockError as exc:  # damaged or missing file, a sample that cannot be drawn
        return StackResult(job.slot, {"name": job.name, "status": "skipped", "reason": str(exc)})
    described = _described(job, stack)
    problem = _unfit(stack, layout)
    if problem is None:
        try:
            features = stack_features(stack, job.name, layout.spec, layout.mirror)
        except FocuslockError as exc:  # no focus found, frames smaller than a patch ...
            problem = str(exc)
    kept = stack if job.keep else None  # a skipped stack too: to see why
    if problem is not None:
        return StackResult(job.slot, {**described, "status": "skipped", "reason": problem},
                           kept=kept)
    n = stack.z_um.size
    record = {**described, "status": "done",
              "z_um": stack.z_um.tolist(),
              "defocus_um": features.defocus_um[:n].tolist(),
              "true_defocus_um": [None if math.isnan(v) else v
                                  for v in features.true_defocus_um[:n].tolist()]}
    return StackResult(job.slot, record, features.features[:n],
                       features.features[n:] if layout.mirror else None, kept)


def _described(job: Job, stack: FocalStack) -> dict[str, Any]:
    sample = stack.metadata.get("sample")
    seed = sample.get("seed") if isinstance(sample, dict) else None
    return {"name": job.name, "kind": sample_kind(stack.metadata),
            "seed": seed if isinstance(seed, int) else None,
            "true_focus_z_um": stack.focus_z_um, "metadata": stack.metadata}


def _unfit(stack: FocalStack, layout: Layout) -> str | None:
    """Why a stack cannot join the dataset, if so."""
    problem = mismatch(stack.optics, stack.channels, layout.optics, layout.pattern)
    if problem is not None:
        return problem
    shape = tuple(stack.images.shape[-2:])
    if shape != tuple(layout.optics.frame_shape):
        rows, cols = layout.optics.frame_shape
        return f"frames of {shape[1]}x{shape[0]} pixels; the dataset's are {cols}x{rows}"
    if stack.z_um.size > layout.planes:
        return (f"{stack.z_um.size} planes; the dataset holds at most {layout.planes} per stack "
                f"(its first stack's)")
    return None
