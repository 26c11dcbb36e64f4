"""Benchmark: the cost of training (issue 3) and of the features per frame (issue 5's budget).

1. Featurising plus training on the first N stacks of a data folder (default 100) with the
   default model's recipe (mirror augmentation, near-focus network), cold: the feature cache
   goes to a fresh temporary folder. Goal: under 20 minutes on this 2-core machine
   (the paper: 1.5 hours for 440 stacks on a desktop CPU). The trained bundle is thrown away.
2. Features of one 2048x2048 uint16 frame, single thread: ``controller.features.featurize``
   against the paper's recipe in plain numpy (four 1024² patches, mean removed, numpy FFT,
   rows ±30 %, columns 5 %, magnitude, L2), median of many runs; then the default bundle's
   whole ``predict`` (features, int8 inference of 16 patches, median).

Run:  .venv/bin/python benchmarks/bench_training.py DATA_DIR [--stacks 100] [--skip-training]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from controller.features import FeatureSpec, featurize
from controller.model import DEFAULT_BUNDLE, FocusModel


def paper_features(frame: np.ndarray) -> np.ndarray:
    """The original notebook's features of four 1024² patches, numpy only."""
    out = []
    for py in range(2):
        for px in range(2):
            patch = frame[py * 1024:(py + 1) * 1024, px * 1024:(px + 1) * 1024].astype(np.float64)
            spectrum = np.fft.fft2(patch - patch.mean())
            crop = np.concatenate((spectrum[:307, :51], spectrum[-307:, :51]))
            v = np.abs(crop).ravel()
            out.append(v / np.linalg.norm(v))
    return np.stack(out)


def time_features(repeats: int) -> None:
    frame = np.random.default_rng(0).integers(100, 40000, size=(2048, 2048)).astype(np.uint16)
    spec = FeatureSpec()
    featurize(frame, spec)  # plan the FFT once, as the box does at start-up
    ours = []
    for _ in range(repeats):
        t = time.perf_counter()
        featurize(frame, spec)
        ours.append(time.perf_counter() - t)
    paper = []
    for _ in range(max(3, repeats // 10)):
        t = time.perf_counter()
        paper_features(frame)
        paper.append(time.perf_counter() - t)
    a, b = statistics.median(ours) * 1e3, statistics.median(paper) * 1e3
    print(f"features of a 2048² uint16 frame, 1 thread: focuslock {a:.2f} ms "
          f"({spec.n_features} features x 16 patches), paper recipe with numpy {b:.1f} ms "
          f"(31314 x 4): {b / a:.1f}x faster")
    model = FocusModel.load(DEFAULT_BUNDLE)
    model.predict(frame)
    whole = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.predict(frame)
        whole.append(time.perf_counter() - t)
    print(f"the default bundle's predict() on that frame (features + int8 inference + median): "
          f"{statistics.median(whole) * 1e3:.2f} ms")


def time_training(data_dir: Path, stacks: int) -> None:
    from training.network import HyperParams
    from training.pipeline import train

    files = sorted(p for p in data_dir.iterdir() if p.name.endswith(".ome.tif"))[:stacks]
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "data"
        subset.mkdir()
        for f in files:
            os.symlink(f.resolve(), subset / f.name)
        t0 = time.perf_counter()
        from training.dataset import load_dataset

        load_dataset(subset, FeatureSpec(), cache_dir=Path(tmp) / "cache", mirror=True)
        t1 = time.perf_counter()
        # the default model's recipe: mirrored training frames and a ±6 µm fine network
        record = train(subset, Path(tmp) / "bundle", spec=FeatureSpec(), hp=HyperParams(),
                       mirror=True, fine_range_um=6.0, cache_dir=Path(tmp) / "cache", verbose=0)
        t2 = time.perf_counter()
        shutil.rmtree(Path(tmp) / "bundle")
    m = record["metrics"]
    print(f"{len(files)} stacks: featurising {t1 - t0:.0f} s, training + export "
          f"{t2 - t1:.0f} s ({record['training']['epochs_run']} epochs), total "
          f"{(t2 - t0) / 60:.1f} min; validation RMSE {m['bundle']['rmse_um']:.2f} µm (int8 "
          f"bundle, one 512² patch per frame)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--stacks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    time_features(args.repeats)
    if not args.skip_training:
        time_training(args.data_dir, args.stacks)


if __name__ == "__main__":
    main()
