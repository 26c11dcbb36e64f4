"""Training batches read block by block, so a dataset larger than memory trains on a desktop.

A block is a run of whole stacks of at most ``BLOCK_ROWS`` rows (one stack more when a single
stack is larger): its features are read from the dataset's source in one go (from a Zarr store:
one chunk per stack), standardised, and cut into batches. Each epoch visits the stacks in a new
seeded order, grouped into blocks, and the rows of each block in a new seeded order; a batch may
span two neighbouring blocks. A dataset that fits in one block is shuffled as a whole, as an
in-memory array would be.

Every way in goes through this module (a folder of stacks featurised in memory and a Zarr store
alike), so the same data and seed give the same batches, the same standardisation and the same
model whichever the source. The module needs numpy only; network.fit hands ``Batches`` to Keras.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from controller.features import Standardizer
from training.dataset import Dataset
from training.network import TrainingError, targets

# 32768 rows of 384 float32 features: 50 MB per block, about 540 stacks of 61 one-patch planes
BLOCK_ROWS = 1 << 15
CACHED_BLOCKS = 2  # a batch spans at most two neighbouring blocks


def stack_runs(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Start and end positions of each present stack's rows (rows are grouped by stack)."""
    _, starts = np.unique(dataset.stack, return_index=True)
    ends = np.append(starts[1:], dataset.n_rows)
    return starts, ends


def blocks(dataset: Dataset, order: np.ndarray | None = None,
           max_rows: int = BLOCK_ROWS) -> list[np.ndarray]:
    """Ascending row positions of each block: whole stacks, visited in ``order`` (indices into
    the present stacks; default: as they come)."""
    starts, ends = stack_runs(dataset)
    if order is None:
        order = np.arange(starts.size)
    result: list[np.ndarray] = []
    current: list[int] = []
    rows = 0
    for k in order:
        size = int(ends[k] - starts[k])
        if current and rows + size > max_rows:
            result.append(_positions(starts, ends, current))
            current, rows = [], 0
        current.append(int(k))
        rows += size
    if current:
        result.append(_positions(starts, ends, current))
    return result


def _positions(starts: np.ndarray, ends: np.ndarray, stacks: list[int]) -> np.ndarray:
    return np.sort(np.concatenate([np.arange(starts[k], ends[k]) for k in stacks]))


def fit_standardizer(dataset: Dataset, max_rows: int = BLOCK_ROWS) -> Standardizer:
    """Per-feature mean and std of every row, streamed block by block (Chan et al.'s pairwise
    update of count, mean and sum of squared deviations, in float64)."""
    count = 0
    mean = m2 = np.zeros(0)
    for positions in blocks(dataset, max_rows=max_rows):
        x = dataset.features_of(positions).astype(np.float64)
        n = x.shape[0]
        block_mean = x.mean(axis=0)
        block_m2 = ((x - block_mean) ** 2).sum(axis=0)
        if count == 0:
            count, mean, m2 = n, block_mean, block_m2
            continue
        delta = block_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + block_m2 + delta**2 * (count * n / total)
        count = total
    return Standardizer.from_moments(mean, np.sqrt(m2 / count))


def predict_rows(dataset: Dataset, predict: Callable[[np.ndarray], np.ndarray],
                 standardizer: Standardizer | None = None,
                 max_rows: int = BLOCK_ROWS) -> np.ndarray:
    """``predict`` of every row's (standardised) features, block by block, in row order."""
    out = []
    for positions in blocks(dataset, max_rows=max_rows):
        x = dataset.features_of(positions)
        out.append(predict(standardizer.apply(x) if standardizer is not None else x))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


class Batches:
    """(standardised features, targets of the network's heads) batches of a dataset, block by
    block; shuffled anew each epoch (``on_epoch_end``) when ``shuffle``, else in row order (for
    validation)."""

    def __init__(self, dataset: Dataset, standardizer: Standardizer, batch_size: int, *,
                 seed: int = 0, shuffle: bool = True, max_rows: int = BLOCK_ROWS) -> None:
        if dataset.n_rows == 0:
            raise TrainingError("training and validation sets must both be non-empty")
        self.dataset = dataset
        self.standardizer = standardizer
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.max_rows = max_rows
        self.epoch = 0
        self._arrange()

    def __len__(self) -> int:
        return -(-self.dataset.n_rows // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        low = index * self.batch_size
        high = min(low + self.batch_size, self.dataset.n_rows)
        first = int(np.searchsorted(self._ends, low, side="right"))
        last = int(np.searchsorted(self._ends, high - 1, side="right"))
        xs, ys = [], []
        for b in range(first, last + 1):
            x, y = self._block(b)
            begin = self._ends[b] - len(y)
            take = slice(max(low - begin, 0), min(high - begin, len(y)))
            xs.append(x[take])
            ys.append(y[take])
        return np.concatenate(xs), np.concatenate(ys)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        if self.shuffle:
            self._arrange()

    def _arrange(self) -> None:
        """This epoch's blocks and the order of each block's rows."""
        rng = np.random.default_rng([self.seed, self.epoch])
        n_stacks = stack_runs(self.dataset)[0].size
        order = rng.permutation(n_stacks) if self.shuffle else None
        self._blocks = blocks(self.dataset, order, self.max_rows)
        self._orders = [rng.permutation(b.size) if self.shuffle else np.arange(b.size)
                        for b in self._blocks]
        self._ends = np.cumsum([b.size for b in self._blocks])
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        if b not in self._cache:
            while len(self._cache) >= CACHED_BLOCKS:
                self._cache.pop(next(iter(self._cache)))
            positions = self._blocks[b]
            x = self.standardizer.apply(self.dataset.features_of(positions))
            order = self._orders[b]
            self._cache[b] = (x[order], targets(self.dataset.defocus_um[positions][order]))
        return self._cache[b]
