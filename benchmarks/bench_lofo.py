"""Benchmark: leave one family out, the measure of generalisation of issue 12.

For each sample family of a dataset store, a bundle is trained on all the other families (the
generalist's recipe: ``train --mirror --fine-range-um 6``, its hyper-parameters) and reads every
frame of the family it never saw, through the controller's own FocusModel. Each family's
readings are saved (WORK/<family>/readings.npz); a rerun trains only the families without them.

The table applies to each family the confidence limits fitted on the other families' readings
(training/confidence_fit.py), as a box would meet a sample nobody calibrated it for:

- RMSE over ±30 µm and within ±5 µm (signed head, every frame; goal ≤ 1.36 and ≤ 0.5 µm);
- wrong sign beyond ±2 µm: of every frame, and of the frames whose sign the loop takes from the
  network (passed by the gates, sign not ambiguous; goal ≤ 0.5 %);
- the share the gates reject, and the share whose sign the loop must probe;
- the share of passed frames within their stated error (honest: ≥ 95 %).

It writes WORK/lofo.md, WORK/lofo.json and WORK/reliability.png, and WORK/confidence.json: the
limits fitted on all families' readings, which `focuslock confidence BUNDLE --readings WORK`
installs into the generalist. Each family's bundle gets the limits fitted without that family,
so `benchmarks/bench_loop.py focus-now --bundle WORK/<family>/bundle --sample <family>` runs the
loop as a box would on a family nobody trained or calibrated it for.

Run:  .venv/bin/python benchmarks/bench_lofo.py STORE.zarr --work DIR [--families a,b]
      [--depth 10] [--width 100] [--batch-size 256] [--max-epochs 300] [--patience 20]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from controller.model import FocusModel
from training.confidence_fit import cross_checked, fit, install, judged, plot_reliability
from training.dataset import load_training_data
from training.network import HyperParams
from training.pipeline import train
from training.readings import READINGS_FILE, Readings, frame_readings, summary
from training.store import open_store

FINE_RANGE_UM = 6.0
COLUMNS = (("rmse_um", "RMSE µm", "{:.2f}"), ("rmse_within_5um", "RMSE ±5 µm", "{:.2f}"),
           ("distance_rmse_um", "distance RMSE µm", "{:.2f}"),
           ("wrong_sign_beyond_2um", "wrong sign (all)", "{:.1%}"),
           ("wrong_sign_passed_unambiguous", "wrong sign (acted on)", "{:.2%}"),
           ("rejected", "rejected", "{:.1%}"), ("sign_ambiguous", "probed", "{:.1%}"),
           ("within_stated_error", "within stated error", "{:.1%}"))


def family_readings(store: Path, work: Path, family: str, hp: HyperParams) -> Readings:
    """The readings of ``family``'s frames by a bundle trained without it (cached)."""
    path = work / family / READINGS_FILE
    if path.is_file():
        return Readings.load(path)
    bundle = work / family / "bundle"
    spec = open_store(store).layout.spec
    train(store, bundle, spec=spec, hp=hp, force=True, mirror=True,
          fine_range_um=FINE_RANGE_UM, hold_out_kinds=[family], verbose=0)
    data = load_training_data(store, spec)
    readings = frame_readings(data.of_kinds([family]), FocusModel.load(bundle))
    readings.save(path)
    return readings


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| left out | frames | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 2) + "|"]
    for family, row in results.items():
        cells = ["–" if row[key] is None else fmt.format(row[key]) for key, _, fmt in COLUMNS]
        lines.append(f"| {family} | {row['frames']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--families", help="comma-separated (default: every family in the store)")
    for name in ("depth", "width", "batch_size", "max_epochs", "patience"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int,
                            default=getattr(HyperParams(), name))
    args = parser.parse_args(argv)
    data = load_training_data(args.store, open_store(args.store).layout.spec)
    families = args.families.split(",") if args.families else \
        sorted({data.samples[i] for i in data.present()})
    hp = replace(HyperParams(), depth=args.depth, width=args.width, batch_size=args.batch_size,
                 max_epochs=args.max_epochs, patience=args.patience)
    parts = {}
    for family in families:
        parts[family] = family_readings(args.store, args.work, family, hp)
        print(f"{family}: {parts[family].label.size} frames read", flush=True)
    everything = Readings.concatenate(list(parts.values()))
    results = {}
    for family, readings in parts.items():
        others = everything.where(everything.kind != family)
        limits = fit(others, f"leave-one-family-out readings of all families but {family}")
        results[family] = summary(judged(readings, limits, passed_only=False))
        # the family's bundle, as a box meets the family: calibrated without it too
        install(args.work / family / "bundle", limits)
    check = cross_checked(everything)
    calibration = fit(everything, f"leave-one-family-out readings of {len(parts)} families "
                                  f"({everything.label.size} frames)")
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "lofo.json").write_text(json.dumps(
        {"families": results, "cross_checked": check, "calibration": calibration.to_dict(),
         "hyperparameters": hp.to_dict(), "fine_range_um": FINE_RANGE_UM}, indent=1) + "\n")
    (args.work / "confidence.json").write_text(json.dumps(calibration.to_dict(), indent=1)
                                                + "\n")
    (args.work / "lofo.md").write_text(table(results) + "\n")
    plot_reliability(check["reliability"], args.work / "reliability.png",
                     "stated vs observed error, families left out")
    print(table(results))
    print(f"calibration for the generalist: {json.dumps(calibration.to_dict())}")


if __name__ == "__main__":
    main()
