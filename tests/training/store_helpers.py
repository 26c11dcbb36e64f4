"""A tiny dataset build shared by the store tests, and how two stores are compared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from controller.features import FeatureSpec
from controller.optics import preset
from controller.stackio import write_stack
from training.build import SimulatedPlan
from training.datagen import simulated_stack
from training.store import open_store

SPEC = FeatureSpec(patch=64)  # 4 patches of a 128² frame
# Six 128² stacks of 11 planes (a second each): at this size two of the dense layers show no
# sharpness peak, so every build also skips stacks on its own
PLAN = SimulatedPlan(kinds=("sparse-cells", "dense-cells"), count=6, size=128, z_range_um=5.0)
# The same stack file featurised in two processes may give features that differ in the last
# bits: FFTW picks its algorithm by timing in each process (controller/features.py). Within one
# process they are identical; labels (scipy's FFT) are identical anywhere.
FEATURE_ATOL = 1e-5


def tiny_args(count: int = PLAN.count) -> list[str]:
    """The command-line options of PLAN (and SPEC), with another count."""
    return ["--count", str(count), "--size", "128", "--z-range", "5", "--feature-patch", "64"]


def write_plan_stacks(folder: Path, plan: SimulatedPlan) -> Path:
    """The plan's stacks as files, as train-data writes them, rendered in this process."""
    system = preset(plan.preset)
    for slot, name in enumerate(plan.names()):
        stack = simulated_stack(plan.kinds[slot % len(plan.kinds)], plan.seed + slot, plan.size,
                                system, plan.z_um())
        write_stack(folder / name, stack)
    return folder


def contents(path: Path) -> dict[str, Any]:
    """What a store holds for training (not its plan: the same stacks may come from elsewhere):
    names, records, features, index tables."""
    store = open_store(path)
    result: dict[str, Any] = {"names": store.names(), "records": store.records(),
                              "layout": store.layout.to_dict(),
                              "features": store.read("features")}
    result.update({f"index/{k}": v for k, v in store.index().items()})
    return result


def assert_same_store(a: Path, b: Path, *, exact: bool = False, reasons: bool = True) -> None:
    """The same stacks, features, labels and records (without the skipped stacks' reasons, which
    name a file by where it was read, when not ``reasons``)."""
    left, right = contents(a), contents(b)
    assert left.keys() == right.keys()
    for key in left:
        x, y = left[key], right[key]
        if key == "features":
            np.testing.assert_allclose(x, y, atol=0 if exact else FEATURE_ATOL, rtol=0)
        elif key == "records":
            drop = set() if reasons else {"reason"}
            assert [_without(r, drop) for r in x] == [_without(r, drop) for r in y]
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y, key


def _without(record: dict | None, keys: set[str]) -> dict | None:
    return None if record is None else {k: v for k, v in record.items() if k not in keys}


def record_files(path: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of each stack's record chunk: a rewritten record gets a new inode."""
    return {f.name: (f.stat().st_ino, f.stat().st_mtime_ns)
            for f in (path / "record" / "c").iterdir() if f.name.isdigit()}  # not *.partial
