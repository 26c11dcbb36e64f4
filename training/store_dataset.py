"""A dataset store as a training ``Dataset``: labels in memory, features read when a block needs
them.

The index (training/store.py) gives every finished stack's labels; the rows are laid out as a
folder of the same stacks would give them (each stack's planes and patches in turn, then its
mirrored planes), so training sees the same rows, ids and labels from a store as from the folder
it was built from. Features stay in the store: ``StoredFeatures.read`` fetches the chunks of the
stacks a block asks for (one chunk per stack, concurrently) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.features import FeatureSpec
from training.dataset import Dataset, DatasetError, FrameLabels, assemble_rows
from training.store import STATUS, DatasetStore, open_store


@dataclass(frozen=True)
class StoredFeatures:
    """Rows of the finished stacks ``slots`` of a store: stack k's rows start at ``starts[k]``:
    its ``planes[k]`` planes' patches, then (with ``mirror``) its mirrored planes' patches."""

    store: DatasetStore
    slots: np.ndarray  # int64 (stacks,)
    planes: np.ndarray  # int64 (stacks,)
    starts: np.ndarray  # int64 (stacks,): first row id of each stack
    mirror: bool

    def read(self, rows: np.ndarray) -> np.ndarray:
        n_features = self.store.layout.spec.n_features
        if rows.size == 0:
            return np.zeros((0, n_features), np.float32)
        owner = np.searchsorted(self.starts, rows, side="right") - 1
        stacks = np.unique(owner)
        keys = ("features", "mirror_features") if self.mirror else ("features",)
        chunks = [self.store.read(key, self.slots[stacks]) for key in keys]
        parts = []
        for i, k in enumerate(stacks):
            n = self.planes[k]
            stack_rows = np.concatenate([c[i, :n].reshape(-1, n_features) for c in chunks])
            parts.append(stack_rows[rows[owner == k] - self.starts[k]])
        return np.concatenate(parts).astype(np.float32, copy=False)


def open_store_dataset(path: Path, spec: FeatureSpec, *, mirror: bool = False) -> Dataset:
    """The finished stacks of a store as a dataset; the store must have been built with
    ``spec`` (and with mirroring, for ``mirror``)."""
    store = open_store(path)
    layout = store.layout
    if layout.spec != spec:
        raise DatasetError(f"{path}: its features were built with {layout.spec.to_dict()}, not "
                           f"{spec.to_dict()}: train with the store's --feature-* options (or "
                           f"none), or build a store with these")
    if mirror and not layout.mirror:
        raise DatasetError(f"{path}: built without --mirror, so it holds no mirrored planes: "
                           f"train without --mirror, or rebuild the store with it")
    index = store.index()
    status = index["status"]
    done = np.flatnonzero(status == STATUS["done"])
    skipped_slots = np.flatnonzero(status == STATUS["skipped"]).tolist()
    names = store.names()
    skipped = [(names[s], str((r or {}).get("reason", "")))
               for s, r in zip(skipped_slots, store.records_of(skipped_slots), strict=True)]
    if done.size == 0:
        raise DatasetError(f"{path}: no finished stack in the store"
                           + (f" (first problem: {skipped[0][0]}: {skipped[0][1]})"
                              if skipped else ""))
    planes = index["planes"][done].astype(np.int64)
    copies = 2 if mirror else 1
    labels: list[FrameLabels] = []
    for slot, n in zip(done, planes, strict=True):
        labels.append((np.tile(index["defocus_um"][slot, :n], copies),
                       np.tile(index["true_defocus_um"][slot, :n], copies),
                       np.repeat(np.arange(copies) == 1, n)))
    rows_per_stack = planes * copies * layout.patches
    starts = np.concatenate(([0], np.cumsum(rows_per_stack)[:-1]))
    source = StoredFeatures(store, done, planes, starts, mirror)
    return assemble_rows(labels, layout.patches, [names[s] for s in done],
                         [str(k) for k in index["kind"][done]], layout.optics, layout.pattern,
                         source, skipped)
