"""A folder of focal-stack files -> a featurised dataset of (features, defocus_um, stack).

Every stack contributes each plane of its autofocus channel, cut into feature patches; its label
from controller.stackio import AUTOFOCUS_CHANNEL, FocalStack, read_stack, read_stack_record
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from controller.errors import FocuslockError
from controller.features import FeatureSpec, featurize
from controller.groundtruth import METHOD, find_focus
from controller.optics import Led, Optics, Pattern
from controller.stackio import AUTOFOCUS_CHANNEL, FocalStack, read_stack, read_stack_record

log = logging.getLogger(__name__)
STACK_SUFFIXES = (".ome.tif", ".ome.tiff")


class DatasetError(FocuslockError, ValueError):
    """No usable training data."""


@dataclass(frozen=True)
class StackFeatures:
    """One stack, featurised: every frame's patches and its label. With mirroring, the planes'
    x-mirrored copies follow the planes themselves."""

    name: str
    features: np.ndarray  # float32 (frames, patches, n_features)
    defocus_um: np.ndarray  # float64 (frames,): z_focus - z, z_focus from the ground truth
    true_defocus_um: np.ndarray  # float64 (frames,): from the simulator's focus; NaN if unknown
    sample: str
    mirrored: np.ndarray  # bool (frames,): an x-mirrored copy of a plane, for training only


class FeatureSource(Protocol):
    """Where a dataset's feature rows live."""

    def read(self, rows: np.ndarray) -> np.ndarray:
        """float32 (len(rows), n_features): the rows with these ids, given in ascending order."""
        ...


@dataclass(frozen=True)
class FeaturesInMemory:
    array: np.ndarray  # float32 (rows, n_features)

    def read(self, rows: np.ndarray) -> np.ndarray:
        return self.array[rows]


@dataclass
class Dataset:
    """Rows are patches; ``plane`` groups a frame's patches, ``stack`` its position. Rows are
    grouped by stack, stacks in ascending order, and ``row`` (each row's id in ``source``)
    ascends: subsets keep that order, so a block of whole stacks reads contiguous rows."""

    row: np.ndarray  # int64 (rows,): the row's id in ``source``
    defocus_um: np.ndarray  # float32 (rows,)
    true_defocus_um: np.ndarray  # float32 (rows,), NaN where the true focus is unknown
    stack: np.ndarray  # int (rows,): index into ``names``
    plane: np.ndarray  # int (rows,): a frame's id, unique across the dataset
    mirrored: np.ndarray  # bool (rows,): from an x-mirrored copy of a plane
    names: list[str]
    samples: list[str]  # each stack's sample type
    optics: Optics
    pattern: Pattern
    source: FeatureSource
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    @property
    def n_rows(self) -> int:
        return int(self.row.size)

    @property
    def features(self) -> np.ndarray:
        """Every row's features at once, for small sets; training reads blocks of stacks
        (training/batches.py) through ``features_of``."""
        return self.source.read(self.row)

    def features_of(self, positions: np.ndarray) -> np.ndarray:
        """The features of the rows at these positions (ascending) of this dataset."""
        return self.source.read(self.row[positions])

    def subset(self, stacks: Sequence[int] | np.ndarray) -> Dataset:
        """The rows of the given stacks (indices into ``names``)."""
        return self._rows(np.isin(self.stack, np.asarray(stacks)))

    def originals(self) -> Dataset:
        """Without the mirrored copies: what a camera would deliver (for validation)."""
        return self._rows(~self.mirrored)

    def rows_where(self, keep: np.ndarray) -> Dataset:
        """The rows where ``keep`` (bool, one per row) is true."""
        return self._rows(keep)

    def _rows(self, keep: np.ndarray) -> Dataset:
        return Dataset(self.row[keep], self.defocus_um[keep], self.true_defocus_um[keep],
                       self.stack[keep], self.plane[keep], self.mirrored[keep], self.names,
                       self.samples, self.optics, self.pattern, self.source, self.skipped)

    def present(self) -> np.ndarray:
        """Indices into ``names`` of the stacks that have rows here, ascending."""
        return np.unique(self.stack)

    def without_kinds(self, kinds: Sequence[str]) -> Dataset:
        """Every stack of the named sample kinds held out (for testing on a kind never seen)."""
        return self._by_kinds(kinds, keep=False, what="hold out")

    def of_kinds(self, kinds: Sequence[str]) -> Dataset:
        """Only the stacks of the named sample kinds (the held-out kinds, to test on)."""
        return self._by_kinds(kinds, keep=True, what="test on")

    def _by_kinds(self, kinds: Sequence[str], *, keep: bool, what: str) -> Dataset:
        present = {self.samples[i] for i in self.present()}
        unknown = sorted(set(kinds) - present)
        if unknown:
            raise DatasetError(f"no stack of sample kind {', '.join(map(repr, unknown))} to "
                               f"{what}; the data has {sorted(present)}")
        return self.subset([i for i in self.present() if (self.samples[i] in set(kinds)) == keep])

    def split(self, validation_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
        """Train and validation by whole stacks (positions), never by plane."""
        stacks = self.present()
        n = stacks.size
        if n < 2:
            raise DatasetError(f"need at least 2 stacks to split into train and validation, "
                               f"got {n}")
        order = stacks[np.random.default_rng(seed).permutation(n)]
        n_val = min(n - 1, max(1, round(validation_fraction * n)))
        return self.subset(order[n_val:]), self.subset(order[:n_val])

    def summary(self) -> dict[str, object]:
        present = self.present().tolist()
        by_sample: dict[str, int] = {}
        for i in present:
            by_sample[self.samples[i]] = by_sample.get(self.samples[i], 0) + 1
        return {
            "stacks": [self.names[i] for i in present],
            "n_stacks": len(present),
            "n_frames": int(np.unique(self.plane[~self.mirrored]).size),
            "n_mirrored_frames": int(np.unique(self.plane[self.mirrored]).size),
            "n_patches": self.n_rows,
            "stacks_by_sample": by_sample,
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
        }


def stack_files(data_dir: str | os.PathLike[str]) -> list[Path]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"{data_dir}: no such data folder")
    files = sorted(p for p in data_dir.iterdir() if p.name.endswith(STACK_SUFFIXES))
    if not files:
        raise DatasetError(f"{data_dir}: no focal-stack files (*.ome.tif) in it")
    return files


def mirror_symmetric(pattern: Pattern, tol_na: float = 0.01) -> bool:
    """Whether the pattern looks the same mirrored along x (x -> -x): then the x-mirror of a
    frame is the frame of the x-mirrored sample, a physically valid extra training example."""
    mirrored = Pattern(pattern.name, tuple(Led(-led.na_x, led.na_y, led.brightness)
                                           for led in pattern.leds))
    return pattern.is_close(mirrored, tol_na)


def featurize_stack(path: Path, spec: FeatureSpec, mirror: bool = False) -> StackFeatures:
    """Read one stack, find its focus, featurise its autofocus planes (and their x-mirrors)."""
    return stack_features(read_stack(path), path.name, spec, mirror)


def stack_features(stack: FocalStack, name: str, spec: FeatureSpec,
                   mirror: bool = False) -> StackFeatures:
    """Find a stack's focus, featurise its autofocus planes (and their x-mirrors)."""
    truth = find_focus(stack)
    planes = stack.channel(AUTOFOCUS_CHANNEL)
    features = featurize(planes, spec)
    n = stack.z_um.size
    if mirror:
        features = np.concatenate((features, featurize(planes[:, :, ::-1], spec)))
    copies = 2 if mirror else 1
    known = stack.focus_z_um if stack.focus_z_um is not None else np.nan
    return StackFeatures(
        name=name,
        features=features,
        defocus_um=np.tile(truth.focus_z_um - stack.z_um, copies),
        true_defocus_um=np.tile(known - stack.z_um, copies),
        sample=sample_kind(stack.metadata),
        mirrored=np.repeat(np.arange(copies) == 1, n),
    )


def sample_kind(metadata: dict[str, Any]) -> str:
    """The sample type a stack shows (simulated stacks record a description with a kind)."""
    sample = metadata.get("sample", "unknown")
    return str(sample.get("kind", "unknown")) if isinstance(sample, dict) else str(sample)


def _cache_path(path: Path, spec: FeatureSpec, mirror: bool, cache_dir: Path) -> Path:
    st = path.stat()
    key = json.dumps([path.name, st.st_size, st.st_mtime_ns, spec.to_dict(), METHOD, mirror],
                     sort_keys=True)
    return cache_dir / f"{path.name}.{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def _load_one(path: Path, spec: FeatureSpec, mirror: bool, cache_dir: Path | None
              ) -> StackFeatures | str:
    """The stack's features (from the cache when fresh), or the reason it is unusable."""
    cached = _cache_path(path, spec, mirror, cache_dir) if cache_dir else None
    if cached is not None and cached.is_file():
        with np.load(cached) as z:
            return StackFeatures(path.name, z["features"], z["defocus_um"],
                                 z["true_defocus_um"], str(z["sample"]), z["mirrored"])
    try:
        result = featurize_stack(path, spec, mirror)
    except FocuslockError as exc:  # damaged file, no focus found, frames too small ...
        return str(exc)
    if cached is not None:
        tmp = cached.with_suffix(".part.npz")
        np.savez(tmp, features=result.features, defocus_um=result.defocus_um,
                 true_defocus_um=result.true_defocus_um, sample=result.sample,
                 mirrored=result.mirrored)
        os.replace(tmp, cached)
    return result


def _compatible(path: Path, optics: Optics, pattern: Pattern) -> str | None:
    """Why a stack cannot join a dataset of the given optics and autofocus pattern, if so."""
    try:
        record = read_stack_record(path)
        stack_optics = Optics.from_dict(record["optics"])
        patterns = [Pattern.from_dict(c) for c in record["channels"]]
    except (FocuslockError, KeyError, TypeError) as exc:
        return str(exc)
    return mismatch(stack_optics, patterns, optics, pattern)


def mismatch(stack_optics: Optics, patterns: Sequence[Pattern], optics: Optics,
             pattern: Pattern) -> str | None:
    """Why a stack of these optics and channels cannot join a dataset of the given optics and
    autofocus pattern, if so."""
    auto = next((p for p in patterns if p.name == AUTOFOCUS_CHANNEL), None)
    if auto is None:
        return f"no {AUTOFOCUS_CHANNEL!r} channel"
    if abs(stack_optics.pixel_um - optics.pixel_um) > 1e-3 * optics.pixel_um or \
            abs(stack_optics.na - optics.na) > 1e-3 or \
            abs(stack_optics.wavelength_um - optics.wavelength_um) > 1e-3:
        return "optics differ from the dataset's first stack"
    if not auto.is_close(pattern):
        return "autofocus illumination differs from the dataset's first stack"
    return None


def _first_identity(files: Sequence[Path]) -> tuple[Optics, Pattern]:
    """Optics and autofocus pattern of the first readable stack: the dataset's identity."""
    for path in files:
        try:
            return identity_of(read_stack_record(path))
        except (FocuslockError, KeyError, TypeError, AttributeError, StopIteration):
            continue
    raise DatasetError("no stack in the folder is readable and has an autofocus channel")


def identity_of(record: dict[str, Any]) -> tuple[Optics, Pattern]:
    """A stack record's optics and autofocus pattern (KeyError, StopIteration ... if it has
    none)."""
    optics = Optics.from_dict(record["optics"])
    auto = next(c for c in record["channels"] if c.get("name") == AUTOFOCUS_CHANNEL)
    return optics, Pattern.from_dict(auto)


def _results(files: Sequence[Path], spec: FeatureSpec, mirror: bool, cache_dir: Path | None,
             workers: int) -> Iterator[StackFeatures | str]:
    if workers <= 1:
        for path in files:
            yield _load_one(path, spec, mirror, cache_dir)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        n = len(files)
        yield from pool.map(_load_one, files, [spec] * n, [mirror] * n, [cache_dir] * n)


def load_training_data(path: str | os.PathLike[str], spec: FeatureSpec, *,
                       cache_dir: str | os.PathLike[str] | None = None, workers: int = 1,
                       mirror: bool = False, progress: bool = True) -> Dataset:
    """A dataset store of ``focuslock dataset build`` (a Zarr group: its features are read when
    needed, its spec must be ``spec``), or a folder of stacks featurised here (``load_dataset``)."""
    if (Path(path) / "zarr.json").is_file():
        from training.store_dataset import open_store_dataset

        return open_store_dataset(Path(path), spec, mirror=mirror)
    return load_dataset(path, spec, cache_dir=cache_dir, workers=workers, mirror=mirror,
                        progress=progress)


def load_dataset(data_dir: str | os.PathLike[str], spec: FeatureSpec, *,
                 cache_dir: str | os.PathLike[str] | None = None, workers: int = 1,
                 mirror: bool = False, progress: bool = True) -> Dataset:
    """Featurise every stack of a folder (in ``workers`` processes), skipping bad ones. With
    ``mirror`` every plane's x-mirror is added (flagged), when the autofocus pattern allows."""
    files = stack_files(data_dir)
    cache = Path(cache_dir) if cache_dir is not None else Path(data_dir) / ".features"
    cache.mkdir(parents=True, exist_ok=True)
    optics, pattern = _first_identity(files)
    if mirror and not mirror_symmetric(pattern):
        raise DatasetError(f"the autofocus pattern {pattern.name!r} is not symmetric under x -> "
                           f"-x, so mirrored frames would be false examples: train without mirror")
    skipped: list[tuple[str, str]] = []
    usable = []
    for path in files:
        reason = _compatible(path, optics, pattern)
        if reason is None:
            usable.append(path)
        else:
            skipped.append((path.name, reason))
    loaded: list[StackFeatures] = []
    bar = tqdm(total=len(usable), desc="featurising stacks", unit="stack", disable=not progress)
    for path, result in zip(usable, _results(usable, spec, mirror, cache, workers), strict=True):
        if isinstance(result, str):
            skipped.append((path.name, result))
        else:
            loaded.append(result)
        bar.update()
    bar.close()
    for name, reason in skipped:
        log.warning("skipped %s: %s", name, reason)
    if not loaded:
        raise DatasetError(f"{data_dir}: none of {len(files)} stack files is usable "
                           f"(first problem: {skipped[0][0]}: {skipped[0][1]})")
    return _assemble(loaded, optics, pattern, skipped)


def _assemble(loaded: Sequence[StackFeatures], optics: Optics, pattern: Pattern,
              skipped: list[tuple[str, str]]) -> Dataset:
    rows = np.concatenate([s.features.reshape(-1, s.features.shape[-1]) for s in loaded])
    return assemble_rows([(s.defocus_um, s.true_defocus_um, s.mirrored) for s in loaded],
                         loaded[0].features.shape[1], [s.name for s in loaded],
                         [s.sample for s in loaded], optics, pattern,
                         FeaturesInMemory(rows.astype(np.float32, copy=False)), skipped)


FrameLabels = tuple[np.ndarray, np.ndarray, np.ndarray]  # per frame: defocus, true, mirrored


def assemble_rows(stacks: Sequence[FrameLabels], n_patches: int, names: list[str],
                  samples: list[str], optics: Optics, pattern: Pattern, source: FeatureSource,
                  skipped: list[tuple[str, str]]) -> Dataset:
    """A dataset whose source holds each stack's frames' patches in turn (row ids 0, 1, ...)."""
    labels, truths, stack_ids, planes, mirrored = [], [], [], [], []
    plane_id = 0
    for index, (defocus, truth, mirror) in enumerate(stacks):
        n_planes = defocus.size
        labels.append(np.repeat(defocus, n_patches))
        truths.append(np.repeat(truth, n_patches))
        stack_ids.append(np.full(n_planes * n_patches, index))
        planes.append(np.repeat(np.arange(plane_id, plane_id + n_planes), n_patches))
        mirrored.append(np.repeat(mirror, n_patches))
        plane_id += n_planes
    stack = np.concatenate(stack_ids)
    return Dataset(
        row=np.arange(stack.size),
        defocus_um=np.concatenate(labels).astype(np.float32),
        true_defocus_um=np.concatenate(truths).astype(np.float32),
        stack=stack,
        plane=np.concatenate(planes),
        mirrored=np.concatenate(mirrored),
        names=names,
        samples=samples,
        optics=optics,
        pattern=pattern,
        source=source,
        skipped=skipped,
    )
