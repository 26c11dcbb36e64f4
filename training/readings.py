"""What the box would answer for every frame of a dataset, and how those answers fare by sample
family: the measure of generalisation (docs/training.md, "Leave one family out").

``frame_readings`` runs the controller's own FocusModel on each frame (patches combined by the
median, the fine network near focus, the bundle's calibrated limits) and keeps what the loop
would act on: the signed reading, the distance, whether the sign is ambiguous, the features'
unfamiliarity, whether the gates pass it and the error it states. ``family_table`` sums them up
per sample family. TensorFlow is not needed here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from controller.gates import check_prediction
from controller.model import FocusModel
from training.batches import blocks
from training.dataset import Dataset
from training.report import SIGN_MARGIN_UM

READINGS_FILE = "readings.npz"  # every frame's reading, where a report keeps them
NEAR_UM = 5.0  # "within ±5 µm": where a lock works, reported on its own


@dataclass
class Readings:
    """One entry per frame (a plane of a stack, its patches combined)."""

    label: np.ndarray  # the ground truth's defocus (µm)
    truth: np.ndarray  # the simulator's, NaN where unknown
    stack: np.ndarray  # the stack's name
    kind: np.ndarray  # its sample family
    predicted: np.ndarray  # the signed reading (µm)
    distance: np.ndarray  # the sign-free head's (NaN: a one-headed bundle)
    ambiguity: np.ndarray  # the sign's ambiguity, 0..1 (NaN: a one-headed bundle)
    sign_ambiguous: np.ndarray  # bool: beyond the bundle's limit, the loop would probe the sign
    unfamiliarity: np.ndarray  # NaN: a bundle without a familiarity subspace
    confidence: np.ndarray
    trusted: np.ndarray  # bool: confident and in the trained range (the limits aside)
    passed: np.ndarray  # bool: every prediction gate passes it (confidence, range, unfamiliar)
    expected_error: np.ndarray  # the stated 95 % error bound (NaN: not calibrated)

    @property
    def acted_error(self) -> np.ndarray:
        """|error| of what the loop acts on: the signed reading, or where the sign is ambiguous
        the distance (its sign is then found by a probe move, not taken from the network)."""
        magnitude = np.abs(self.distance - np.abs(self.label))
        return np.where(self.sign_ambiguous, magnitude, np.abs(self.predicted - self.label))

    def where(self, keep: np.ndarray) -> Readings:
        return Readings(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    def save(self, path: Path) -> None:
        np.savez_compressed(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> Readings:
        with np.load(path, allow_pickle=False) as z:
            return cls(**{f.name: z[f.name] for f in fields(cls)})

    @classmethod
    def concatenate(cls, parts: list[Readings]) -> Readings:
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                      for f in fields(cls)})


def frame_readings(dataset: Dataset, model: FocusModel) -> Readings:
    """The model's reading of every frame of ``dataset``, read a block of whole stacks at a time
    (a frame lies in one stack), in plane order."""
    answers: dict[int, Any] = {}
    for positions in blocks(dataset):
        x = dataset.features_of(positions)
        planes = dataset.plane[positions]
        order = np.argsort(planes, kind="stable")
        ids, starts = np.unique(planes[order], return_index=True)
        for plane, group in zip(ids, np.split(order, starts[1:]), strict=True):
            answers[int(plane)] = model.predict_patches(x[group])
    groups = frame_groups(dataset)
    firsts = [g[0] for g in groups]
    predictions = [answers[int(dataset.plane[i])] for i in firsts]
    # A frame of one patch has no agreement to judge (confidence 0): there the confidence gate
    # is left out, as the box's frames (16 patches) would be judged and these cannot be.
    min_confidence = [model.min_confidence if g.size > 1 else 0.0 for g in groups]

    def column(get: Any, dtype: Any = np.float64) -> np.ndarray:
        return np.array([get(p) for p in predictions], dtype)

    def optional(value: float | None) -> float:
        return np.nan if value is None else value

    return Readings(
        label=dataset.defocus_um[firsts].astype(np.float64),
        truth=dataset.true_defocus_um[firsts].astype(np.float64),
        stack=np.array([dataset.names[dataset.stack[i]] for i in firsts]),
        kind=np.array([dataset.samples[dataset.stack[i]] for i in firsts]),
        predicted=column(lambda p: p.defocus_um),
        distance=column(lambda p: optional(p.distance_um)),
        ambiguity=column(lambda p: optional(p.sign_ambiguity)),
        sign_ambiguous=column(lambda p: p.sign_ambiguous, bool),
        unfamiliarity=column(lambda p: optional(p.unfamiliarity)),
        confidence=column(lambda p: p.confidence),
        trusted=np.array([p.confidence >= c and p.in_range
                          for p, c in zip(predictions, min_confidence, strict=True)], bool),
        passed=np.array([not check_prediction(p, c)
                         for p, c in zip(predictions, min_confidence, strict=True)], bool),
        expected_error=column(lambda p: optional(p.expected_error_um)),
    )


def frame_groups(dataset: Dataset) -> list[np.ndarray]:
    """Row positions of each frame (plane), in plane order."""
    order = np.argsort(dataset.plane, kind="stable")
    _, starts = np.unique(dataset.plane[order], return_index=True)
    return np.split(order, starts[1:])


def summary(r: Readings) -> dict[str, Any]:
    """The figures of issue 12's goals for a set of readings."""
    error = r.predicted - r.label
    near = np.abs(r.label) <= NEAR_UM
    far = np.abs(r.label) > SIGN_MARGIN_UM
    decided = r.passed & ~r.sign_ambiguous & far  # the network's own sign is acted on
    wrong = np.sign(r.predicted[decided]) != np.sign(r.label[decided])
    bounded = r.passed & np.isfinite(r.expected_error)
    within = r.acted_error[bounded] <= r.expected_error[bounded]
    return {
        "frames": int(r.label.size),
        "rmse_um": _rms(error),
        "rmse_within_5um": _rms(error[near]),
        "distance_rmse_um": _rms(r.distance - np.abs(r.label)),
        "wrong_sign_beyond_2um": _mean(np.sign(r.predicted[far]) != np.sign(r.label[far])),
        "wrong_sign_passed_unambiguous": _mean(wrong),
        "rejected": _mean(~r.passed),
        "sign_ambiguous": _mean(r.passed & r.sign_ambiguous),
        "acted_rmse_passed_um": _rms(r.acted_error[r.passed]),
        "within_stated_error": _mean(within),
    }


def family_table(r: Readings) -> dict[str, dict[str, Any]]:
    """``summary`` of each sample family's frames, and of all of them (key ``all``)."""
    table = {str(kind): summary(r.where(r.kind == kind)) for kind in sorted(set(r.kind))}
    table["all"] = summary(r)
    return table


def _rms(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.sqrt(np.mean(values**2))) if values.size else None


def _mean(flags: np.ndarray) -> float | None:
    return float(np.mean(flags)) if flags.size else None
