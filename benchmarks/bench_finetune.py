"""Benchmark: a new sample type in minutes (issue 12), as a box meets one. ``focuslock
calibrate`` fine-tunes a bundle on stacks of a family it never saw, all taken on one instrument
(the user's microscope), and both bundles are tested on other stacks of that family on the same
instrument.

For each family: draw one instrument (``--instrument SEED``, or ``ideal``: the twin's), render
``--stacks`` stacks of the family (seeds from 600000) and ``--test`` more (seeds from 700000)
at ``--size`` (default 1024²: four feature patches a frame; the box reads 2048²), ±30 µm in 1
µm planes, the focus within ±2 µm of the middle; run
``focuslock calibrate --from STACKS --base BASE --no-install`` (its own recipe: the last stack
held out, the base fine-tuned on the others); read the test stacks with the base and with the
calibrated bundle (``focuslock evaluate``). Goal: ≤ 1.5 µm RMSE over ±30 µm with ≤ 10 stacks
(the paper needed 130 tissue stacks to go from 18.2 to 1.75 µm). Also prints the wrong-sign
share beyond ±2 µm and the wall-clock time of the calibration.

Run:  .venv/bin/python benchmarks/bench_finetune.py --work DIR [--base BUNDLE | --lofo LOFO]
          [--families a,b] [--stacks 10] [--test 6] [--size 1024] [--instrument 42]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from controller.cli import main as focuslock
from controller.model import DEFAULT_BUNDLE
from controller.optics import preset
from controller.sim.instrument import Instrument, InstrumentVariation
from controller.stackio import write_stack
from training.datagen import simulated_stack, stack_name

TRAIN_SEED, TEST_SEED = 600_000, 700_000
Z_UM = np.arange(-30.0, 30.5, 1.0)
FOCUS_JITTER_UM = 2.0  # the focus within ±this of the middle: a user focuses roughly first
# every family but the cells the shipped default learned
NEW_FAMILIES = ("tissue", "red-cells", "spread-cells", "elongated-cells", "cell-clusters",
                "bacteria", "thick-cells", "pollen", "diatoms", "beads", "tissue-section")


def render(family: str, seeds: range, size: int, instrument: Instrument | None,
           folder: Path) -> None:
    """The stacks of ``family`` with these seeds, on ``instrument`` (None: the ideal one)."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        path = folder / stack_name(family, seed)
        if not path.exists():
            write_stack(path, simulated_stack(family, seed, size, preset("paper"), Z_UM,
                                              FOCUS_JITTER_UM, instrument=instrument))


def read(bundle: Path, stacks: Path, report: Path) -> dict[str, float]:
    """The bundle's RMSE and wrong-sign share on the stacks (``focuslock evaluate``)."""
    if not (report / "metrics.json").is_file():
        focuslock(["evaluate", str(bundle), str(stacks), "--report", str(report)])
    metrics = json.loads((report / "metrics.json").read_text())
    return {"rmse_um": float(metrics["rmse_um"]),
            "wrong_sign": float(metrics["wrong_sign_fraction_beyond_2um"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    base = parser.add_mutually_exclusive_group()
    base.add_argument("--base", type=Path, default=DEFAULT_BUNDLE,
                      help="the bundle to calibrate (default: the shipped one)")
    base.add_argument("--lofo", type=Path,
                      help="calibrate LOFO/<family>/bundle for each family instead (the "
                           "--work folder of benchmarks/bench_pair_lofo.py or bench_lofo.py)")
    parser.add_argument("--families", help="comma-separated (default: every family but the "
                                           "cells the shipped model learned)")
    parser.add_argument("--stacks", type=int, default=10, help="stacks calibrate is given")
    parser.add_argument("--test", type=int, default=6, help="stacks to test on")
    parser.add_argument("--size", type=int, default=1024, help="frame side (default 1024)")
    parser.add_argument("--instrument", default="42",
                        help="seed of the drawn instrument, or 'ideal' (default 42)")
    args = parser.parse_args()
    families = args.families.split(",") if args.families else list(NEW_FAMILIES)
    instrument = (None if args.instrument == "ideal"
                  else InstrumentVariation().draw(int(args.instrument)))
    print(f"calibrate with {args.stacks} stacks of {args.size}² of a family the bundle never "
          f"saw, instrument {args.instrument}, tested on {args.test} more (goal ≤ 1.5 µm RMSE "
          f"over ±30 µm)")
    for family in families:
        bundle = args.base if args.lofo is None else args.lofo / family / "bundle"
        work = args.work / f"{args.size}-instrument-{args.instrument}" / family
        stacks, test = work / f"stacks-{args.stacks}", work / "test"
        render(family, range(TRAIN_SEED, TRAIN_SEED + args.stacks), args.size, instrument, stacks)
        render(family, range(TEST_SEED, TEST_SEED + args.test), args.size, instrument, test)
        run = work / f"calibrate-{args.stacks}"
        started = time.monotonic()
        if not (run / "calibration.json").is_file():
            focuslock(["calibrate", "--from", str(stacks), "--base", str(bundle),
                       "--no-install", "--out", str(run)])
        minutes = (time.monotonic() - started) / 60
        before = read(bundle, test, work / "before")
        if not (run / "calibration.json").is_file():
            print(f"  {family:<15} {before['rmse_um']:6.2f} µm RMSE; the calibration refused "
                  f"these stacks (its error is above)", flush=True)
            continue
        after = read(run / "calibrated", test, run / "test")
        print(f"  {family:<15} {before['rmse_um']:6.2f} -> {after['rmse_um']:5.2f} µm RMSE "
              f"({'met' if after['rmse_um'] <= 1.5 else 'MISSED'}), wrong sign beyond ±2 µm "
              f"{before['wrong_sign']:.0%} -> {after['wrong_sign']:.0%}; calibration "
              f"{minutes:.1f} min", flush=True)


if __name__ == "__main__":
    main()
