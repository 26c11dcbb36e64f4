"""Benchmark: a new sample type in minutes (issue 12). A bundle that never saw a family is
fine-tuned with a few stacks of it and tested on that family's stacks in a dataset store.

For each family: render ``--stacks`` new stacks of it (seeds from 500000, none of them in the
store; the store's size, planes and instrument variation), fine-tune the family's
leave-one-family-out bundle on them (``focuslock train --finetune``, the default recipe), and
read the family's frames of the store before and after (``focuslock evaluate``, by family).
Goal: ≤ 1.5 µm RMSE over ±30 µm with ≤ 10 stacks (the paper needed 130 tissue stacks to go from
18.2 to 1.75 µm). Also prints the wall-clock time of the fine-tuning.

Run:  .venv/bin/python benchmarks/bench_finetune.py STORE.zarr --lofo LOFO_WORK --work DIR
          [--families a,b] [--stacks 10]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from controller.cli import main as focuslock
from controller.optics import preset
from controller.stackio import write_stack
from training.build import SimulatedPlan
from training.datagen import simulated_stack
from training.store import open_store

FIRST_SEED = 500_000


def render(store: Path, family: str, count: int, folder: Path) -> None:
    """``count`` new stacks of ``family``, made as the store's plan makes its stacks."""
    plan_record = open_store(store).plan
    plan = SimulatedPlan((family,), count, FIRST_SEED, plan_record["size"],
                         plan_record["preset"],
                         vary_instrument="instrument_variation" in plan_record)
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(plan.names()):
        path = folder / name
        if not path.exists():
            write_stack(path, simulated_stack(family, FIRST_SEED + i, plan.size,
                                              preset(plan.preset), plan.z_um(),
                                              variation=plan.variation()))


def rmse_of(report: Path, family: str) -> float:
    return float(json.loads((report / "metrics.json").read_text())["by_family"][family]
                 ["rmse_um"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--lofo", type=Path, required=True,
                        help="the --work folder of benchmarks/bench_lofo.py")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--families", help="comma-separated (default: every one in --lofo)")
    parser.add_argument("--stacks", type=int, default=10)
    args = parser.parse_args()
    families = args.families.split(",") if args.families else sorted(
        p.parent.name for p in args.lofo.glob("*/bundle"))
    print(f"fine-tuning with {args.stacks} stacks of a family the bundle never saw "
          f"(goal ≤ 1.5 µm RMSE over ±30 µm)")
    for family in families:
        base = args.lofo / family / "bundle"
        stacks = args.work / family / "stacks"
        render(args.store, family, args.stacks, stacks)
        tuned = args.work / family / "tuned"
        started = time.monotonic()
        focuslock(["train", str(stacks), "--out", str(tuned), "--force", "--finetune",
                   str(base), "--mirror", "--fine-range-um", "6"])
        minutes = (time.monotonic() - started) / 60
        before, after = args.work / family / "before", args.work / family / "after"
        for bundle, report in ((base, before), (tuned, after)):
            if not (report / "metrics.json").is_file():
                focuslock(["evaluate", str(bundle), str(args.store), "--report", str(report)])
        old, new = rmse_of(before, family), rmse_of(after, family)
        print(f"  {family:<15} {old:6.2f} -> {new:5.2f} µm RMSE "
              f"({'met' if new <= 1.5 else 'MISSED'}), fine-tuning {minutes:.1f} min")


if __name__ == "__main__":
    main()
