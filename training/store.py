"""The dataset store: a Zarr v3 group that ``focuslock dataset build`` fills one stack at a time.

Training reads features, never images, so a stack is kept as the features of its autofocus
planes, its labels and its record (80 kB for 61 planes of 512², 160 kB with their mirrored
planes, against 64 MB of pixels).
Layout (docs/training.md):

- ``zarr.json``: the group's attributes: ``focuslock_dataset`` (format version), ``layout``
  (feature spec, optics, autofocus pattern, planes per stack at most, patches per frame, mirror),
  ``plan`` (where the stacks come from), ``ground_truth`` (the method), ``index`` and
  ``last_build`` (what the last build run did);
- ``features`` float32 (stacks, planes, patches, n_features) and, built with mirroring,
  ``mirror_features`` (the x-mirrored planes'), one chunk per stack, NaN past a stack's planes;
- ``name`` string (stacks,): each slot's stack, fixed when the slot is planned;
- ``record`` string (stacks,), one chunk per stack: the stack's JSON record (status ``done`` or
  ``skipped`` with the reason; kind, seed, z, labels, the sample's parameters, camera, noise).
  It is written after the features, so a stack is finished exactly when its record exists: a
  rerun after a crash finds the missing ones and rewrites nothing else;
- ``index/``: per-stack (``status``, ``kind``, ``seed``, ``planes``) and per-plane (``z_um``,
  ``defocus_um``, ``true_defocus_um``) tables gathered from the records at the end of every build
  run, in large chunks: what training reads besides the features.

Every chunk is written by the one process that runs the build (Zarr's local store writes a file
under a temporary name and renames it), never by two.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr

from controller.errors import FocuslockError
from controller.features import FeatureSpec
from controller.files import DestinationError
from controller.groundtruth import METHOD
from controller.optics import Optics, Pattern

FORMAT_VERSION = 1
STATUS = {"missing": 0, "done": 1, "skipped": -1}  # index/status codes
INDEX_CHUNK_VALUES = 1 << 20  # values per chunk of an index table (8 MB of float64)


class StoreError(FocuslockError, ValueError):
    """A dataset store that cannot be made, opened or extended as asked."""


@dataclass(frozen=True)
class Layout:
    """What every stack of a store shares: how it is featurised and the arrays' shape."""

    spec: FeatureSpec
    optics: Optics  # of the dataset's stacks (frame shape included)
    pattern: Pattern  # the autofocus channel's illumination
    planes: int  # planes per stack, at most
    mirror: bool  # x-mirrored planes featurised too

    @property
    def patches(self) -> int:
        rows, cols = self.spec.grid(self.optics.frame_shape)
        return rows * cols

    def to_dict(self) -> dict[str, Any]:
        return {"feature_spec": self.spec.to_dict(), "optics": self.optics.to_dict(),
                "pattern": self.pattern.to_dict(), "planes": self.planes,
                "patches": self.patches, "mirror": self.mirror}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layout:
        return cls(FeatureSpec.from_dict(d["feature_spec"]), Optics.from_dict(d["optics"]),
                   Pattern.from_dict(d["pattern"]), int(d["planes"]), bool(d["mirror"]))


def is_store(path: Path) -> bool:
    return (path / "zarr.json").is_file()


class DatasetStore:
    """An open store: its layout, plan and slots (one per planned stack)."""

    def __init__(self, path: Path, group: zarr.Group) -> None:
        self.path = path
        self.group = group
        attrs = self.attrs()
        if attrs.get("focuslock_dataset") != FORMAT_VERSION:
            raise StoreError(f"{path}: a Zarr store but not a focuslock dataset of format "
                             f"{FORMAT_VERSION} (built by `focuslock dataset build`)")
        self.layout = Layout.from_dict(attrs["layout"])
        self.plan: dict[str, Any] = attrs["plan"]

    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs.asdict())

    @property
    def n_stacks(self) -> int:
        return int(self._array("name").shape[0])

    def names(self) -> list[str]:
        return [str(n) for n in self.read("name")]

    def records(self) -> list[dict[str, Any] | None]:
        """Each slot's record, None where the stack is not finished."""
        return [json.loads(str(text)) if text else None for text in self.read("record")]

    def records_of(self, slots: Sequence[int]) -> list[dict[str, Any] | None]:
        """The records of some slots (each a chunk of its own: read only those)."""
        if not slots:
            return []
        texts = self.read("record", np.asarray(slots))
        return [json.loads(str(text)) if text else None for text in texts]

    def read(self, key: str, slots: np.ndarray | None = None) -> np.ndarray:
        """An array of the store, whole or the given slots (the first axis): only their chunks
        are read, concurrently."""
        array = self._array(key)
        if slots is None:
            return np.asarray(array[...])
        return np.asarray(array.get_orthogonal_selection((slots,)))

    def index(self) -> dict[str, np.ndarray]:
        """The tables of ``index/`` (refused when its last writing did not finish)."""
        if "index" not in self.group.attrs:
            raise StoreError(f"{self.path}: the store's index is missing: its build was stopped "
                             f"before the end. Rerun the build command to finish it")
        index = self.group["index"]
        assert isinstance(index, zarr.Group)
        return {key: np.asarray(array[...]) for key, array in index.arrays()}

    def write_stack(self, slot: int, record: dict[str, Any], features: np.ndarray | None,
                    mirror_features: np.ndarray | None) -> None:
        """One stack: its features first, then its record, which marks it finished."""
        if features is not None:
            self._array("features")[slot, :features.shape[0]] = features
        if mirror_features is not None:
            self._array("mirror_features")[slot, :mirror_features.shape[0]] = mirror_features
        # default=str: a parameter a sample family records as an object is kept as its text
        self._array("record")[slot] = json.dumps(record, default=str)

    def add_slots(self, names: Sequence[str]) -> None:
        """Plan more stacks after the existing ones (a longer run, new files in the folder)."""
        if not names:
            return
        old = self.n_stacks
        new = old + len(names)
        for key in ("features", "mirror_features", "record", "name"):
            if key in self.group:
                array = self._array(key)
                array.resize((new, *array.shape[1:]))
        self._array("name")[old:new] = np.array(names, dtype=str)

    def write_index(self, records: Sequence[dict[str, Any] | None]) -> dict[str, int]:
        """The per-stack and per-plane tables training reads, gathered from the records; the
        group's ``index`` attribute (the counts) is written last and removed first, so a store
        whose index is half-written says so."""
        self.group.attrs.pop("index", None)  # rewritten below, once the tables are whole
        n, planes = len(records), self.layout.planes
        status = np.zeros(n, np.int8)
        kind = np.full(n, "", dtype=object)
        seed = np.full(n, -1, np.int64)
        n_planes = np.zeros(n, np.int32)
        tables = {key: np.full((n, planes), np.nan) for key in
                  ("z_um", "defocus_um", "true_defocus_um")}
        for i, record in enumerate(records):
            if record is None:
                continue
            status[i] = STATUS[record["status"]]
            kind[i] = record.get("kind") or ""
            seed[i] = -1 if record.get("seed") is None else int(record["seed"])
            if record["status"] == "done":
                n_planes[i] = len(record["z_um"])
                for key, table in tables.items():
                    table[i, :n_planes[i]] = [math.nan if v is None else v for v in record[key]]
        index = self.group.require_group("index")
        stack_chunk = (max(1, min(n, INDEX_CHUNK_VALUES)),)
        plane_chunk = (max(1, min(n, INDEX_CHUNK_VALUES // planes)), planes)
        for key, values, chunks in (("status", status, stack_chunk),
                                    ("kind", kind, stack_chunk),
                                    ("seed", seed, stack_chunk), ("planes", n_planes, stack_chunk),
                                    *((key, t, plane_chunk) for key, t in tables.items())):
            dtype = str if values.dtype == object else values.dtype
            array = index.create_array(key, shape=values.shape, chunks=chunks, dtype=dtype,
                                       overwrite=True)
            array[...] = values.astype(str) if dtype is str else values
        counts = {name: int(np.sum(status == code)) for name, code in STATUS.items()}
        self.group.attrs["index"] = {"stacks": n, **counts}
        return counts

    def summary(self) -> dict[str, Any]:
        """What ``focuslock dataset info`` shows: plan, layout, counts, size, skipped stacks."""
        attrs = self.attrs()
        counts = attrs.get("index")
        stored = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        done = (counts or {}).get("done", 0)
        skipped: list[dict[str, str]] = []
        if counts is not None:
            slots = np.flatnonzero(self.index()["status"] == STATUS["skipped"]).tolist()
            names = self.names()
            skipped = [{"stack": names[s], "reason": str((r or {}).get("reason"))}
                       for s, r in zip(slots, self.records_of(slots), strict=True)]
        return {"store": self.path.name, "plan": self.plan, "layout": attrs["layout"],
                "stacks": counts if counts is not None else "index missing: rerun the build",
                "bytes": stored, "bytes_per_stack": round(stored / done) if done else None,
                "skipped": skipped, "last_build": attrs.get("last_build")}

    def _array(self, key: str) -> zarr.Array:
        array = self.group[key]
        assert isinstance(array, zarr.Array)
        return array


def open_store(path: Path) -> DatasetStore:
    """An existing store, for reading or for a rerun of its build."""
    if not is_store(path):
        raise StoreError(f"{path}: not a dataset store (no zarr.json); build one with "
                         f"`focuslock dataset build`")
    try:
        group = zarr.open_group(path, mode="r+", zarr_format=3)
    except (OSError, ValueError, KeyError) as exc:
        raise StoreError(f"{path}: cannot open the dataset store ({exc})") from exc
    try:
        return DatasetStore(path, group)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path}: the dataset store's attributes are damaged ({exc})") from exc


def create_store(path: Path, layout: Layout, plan: dict[str, Any],
                 names: Sequence[str]) -> DatasetStore:
    """A new, empty store with a slot for each named stack."""
    if path.exists():
        raise StoreError(f"{path}: already exists and is not a dataset store; choose another "
                         f"name")
    # the layout's shape is checked (a frame smaller than a patch ...) before anything is made
    n, per_stack = len(names), (layout.planes, layout.patches, layout.spec.n_features)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(path, mode="w-", zarr_format=3)
    except OSError as exc:
        raise DestinationError(f"{path}: cannot create the dataset store "
                               f"({exc.strerror or exc})") from None
    group.attrs.update({"focuslock_dataset": FORMAT_VERSION, "layout": layout.to_dict(),
                        "plan": plan, "ground_truth": cast(Any, METHOD)})
    for key in ("features", "mirror_features") if layout.mirror else ("features",):
        group.create_array(key, shape=(n, *per_stack), chunks=(1, *per_stack), dtype="float32",
                           fill_value=np.nan)
    group.create_array("record", shape=(n,), chunks=(1,), dtype=str, fill_value="")
    group.create_array("name", shape=(n,), chunks=(max(1, min(n, INDEX_CHUNK_VALUES)),),
                       dtype=str, fill_value="")
    group["name"][...] = np.array(names, dtype=str)  # type: ignore[index]
    return DatasetStore(path, group)
