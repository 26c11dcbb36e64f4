"""Benchmark: the probe pair network, leave one family out (issue 12's measure).

For each sample family of a dataset store, a copy of BUNDLE gets a pair network
(training/probe_pair.py) trained on all the other families, and reads every pair of the family
it never saw (a frame and the frame ``--probe-um`` above it) through the controller's own int8
PairNetwork. Beside it, BUNDLE's own single-frame reading of the same lower frames. Each
family's pair bundle stays (WORK/<family>/bundle), so

    benchmarks/bench_loop.py focus-now --bundle WORK/<family>/bundle --sample <family>

runs the loop as a box would on a family its pair network never saw; a rerun trains only the
families without a bundle.

Table (WORK/pair-lofo.md, .json), per left-out family: RMSE over ±30 µm and within ±5 µm of the
pair's signed reading and of the single frame's, the pair's distance RMSE, and the share of
wrong signs beyond ±2 µm of each.

Run:  .venv/bin/python benchmarks/bench_pair_lofo.py STORE.zarr --bundle BUNDLE --work DIR
      [--families a,b] [--probe-um 3] [--mirror] [--depth 10] [--width 100]
      [--batch-size 256] [--max-epochs 300] [--patience 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from controller.model import FocusModel
from training.dataset import load_training_data
from training.network import HyperParams
from training.probe_pair import pair_dataset, pair_frames, train_pair
from training.readings import frame_groups
from training.report import SIGN_MARGIN_UM

NEAR_UM = 5.0
COLUMNS = (("frames", "frames", "{}"),
           ("pair_rmse_um", "pair RMSE µm", "{:.2f}"),
           ("pair_rmse_within_5um", "pair RMSE ±5 µm", "{:.2f}"),
           ("pair_distance_rmse_um", "pair distance RMSE µm", "{:.2f}"),
           ("pair_wrong_sign", "pair wrong sign", "{:.1%}"),
           ("single_rmse_um", "single frame RMSE µm", "{:.2f}"),
           ("single_rmse_within_5um", "single frame RMSE ±5 µm", "{:.2f}"),
           ("single_wrong_sign", "single frame wrong sign", "{:.1%}"))


def _figures(label: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    """RMSE over all, RMSE within ±NEAR_UM, wrong-sign share beyond the margin."""
    error = predicted - label
    near = np.abs(label) <= NEAR_UM
    far = np.abs(label) > SIGN_MARGIN_UM
    return (float(np.sqrt(np.mean(error ** 2))), float(np.sqrt(np.mean(error[near] ** 2))),
            float(np.mean(np.sign(predicted[far]) != np.sign(label[far]))))


def family_result(store: Path, base: Path, work: Path, family: str, *, probe_um: float,
                  hp: HyperParams, mirror: bool) -> dict[str, Any]:
    """The figures of ``family`` read by a pair network trained without it (trained once)."""
    bundle = work / family / "bundle"
    if not (bundle / "record.json").is_file() or FocusModel.load(bundle).pair is None:
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.copytree(base, bundle)
        train_pair(bundle, store, probe_um=probe_um, hp=hp, mirror=mirror,
                   hold_out_kinds=[family], verbose=0)
    model = FocusModel.load(bundle)
    assert model.pair is not None
    data = load_training_data(store, model.spec, progress=False)
    pairs = pair_dataset(data.subset([i for i in data.present()
                                      if data.samples[i] == family]), probe_um)
    frames = pair_frames(pairs, model.pair)
    lower = pairs.features[:, :model.spec.n_features]
    single = model.predict_features(lower)[:, 0]
    single_frames = np.array([np.median(single[g]) for g in frame_groups(pairs)])
    label = frames["label"]
    pair = _figures(label, frames["predicted"])
    one = _figures(label, single_frames)
    return {"frames": int(label.size), "pair_rmse_um": pair[0], "pair_rmse_within_5um": pair[1],
            "pair_distance_rmse_um": float(np.sqrt(np.mean(
                (frames["distance"] - np.abs(label)) ** 2))),
            "pair_wrong_sign": pair[2], "single_rmse_um": one[0],
            "single_rmse_within_5um": one[1], "single_wrong_sign": one[2]}


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| left out | " + " | ".join(head for _, head, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for family, row in results.items():
        lines.append(f"| {family} | " + " | ".join(fmt.format(row[key])
                                                   for key, _, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--bundle", type=Path, required=True,
                        help="the bundle each family's copy starts from (its single frame is "
                             "the comparison)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--families", help="comma-separated (default: every family in the store)")
    parser.add_argument("--probe-um", type=float, default=3.0)
    parser.add_argument("--mirror", action="store_true", help="learn from x-mirrors too")
    for name in ("depth", "width", "batch_size", "max_epochs", "patience"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int,
                            default=10 if name == "patience" else getattr(HyperParams(), name))
    args = parser.parse_args(argv)
    hp = replace(HyperParams(), depth=args.depth, width=args.width, batch_size=args.batch_size,
                 max_epochs=args.max_epochs, patience=args.patience)
    spec = FocusModel.load(args.bundle).spec
    data = load_training_data(args.store, spec, progress=False)
    families = (args.families.split(",") if args.families
                else sorted({data.samples[i] for i in data.present()}))
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for family in families:
        results[family] = family_result(args.store, args.bundle, args.work, family,
                                        probe_um=args.probe_um, hp=hp, mirror=args.mirror)
        print(table({family: results[family]}).splitlines()[-1], flush=True)
    (args.work / "pair-lofo.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.work / "pair-lofo.md").write_text(table(results))
    print(table(results))


if __name__ == "__main__":
    main()
