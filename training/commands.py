"""``focuslock train``, ``evaluate``, ``train-data``, ``dataset`` and ``calibrate``
(training/calibrate_command.py): the desktop side of the command.

The parsers are registered without importing TensorFlow, Dask, Zarr (or the simulator); each run
function imports what it needs, so ``focuslock --help`` stays instant and the box never loads
them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.commands.arguments import bounded_float, bounded_int, finite_float, yes_no
from training import calibrate_command, design_illumination_command
from training.experiments import command as experiment_command

DEFAULT_KINDS = "sparse-cells,dense-cells"
CORES = os.cpu_count() or 1
WORKERS = bounded_int(1, CORES)  # more processes than cores only cost memory


def _parser_of(value: object) -> Callable[[str], Any]:
    """How a setting of this default's type is read from the command line: floats finite,
    booleans as true/false (``bool("False")`` would be True)."""
    if isinstance(value, bool):
        return yes_no
    if isinstance(value, float):
        return finite_float
    return type(value)


def _add_feature_options(p: argparse.ArgumentParser) -> None:
    """--feature-*: unset ones come from the dataset store when the data is one (a store's
    features are fixed when it is built), else from the default spec."""
    from controller.features import FeatureSpec

    for name, value in FeatureSpec().to_dict().items():
        p.add_argument(f"--feature-{name.replace('_', '-')}", type=_parser_of(value),
                       default=None, dest=f"feature_{name}",
                       help=f"feature spec (default: the store's, else {value})")


def _add_hyperparameter_options(p: argparse.ArgumentParser, defaults: Any) -> None:
    """--depth, --width, ...: one option per field of the network's HyperParams."""
    for name, value in defaults.to_dict().items():
        p.add_argument(f"--{name.replace('_', '-')}", type=_parser_of(value), default=value,
                       help=f"hyper-parameter (default {value})")


def _add_bundle_and_data(p: argparse.ArgumentParser) -> None:
    """BUNDLE and DATA, for a command that writes into a bundle what it fits on data."""
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("data", type=Path, metavar="DATA",
                   help="a dataset store (OUT.zarr) or a folder of focal stacks")


def _feature_spec(args: argparse.Namespace, data: Path) -> Any:
    """The FeatureSpec the --feature-* options ask for, on top of the store's or the default."""
    from controller.features import FeatureSpec
    from training.store import is_store, open_store

    base = open_store(data).layout.spec if is_store(data) else FeatureSpec()
    # the options are the box's spec's fields (the representation is an experiment's only)
    given = {k: getattr(args, f"feature_{k}") for k in FeatureSpec().to_dict()
             if getattr(args, f"feature_{k}") is not None}
    return FeatureSpec.from_dict({**base.to_dict(), **given})


def _kinds(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


def register(subparsers: Any) -> None:
    from training.export import DEFAULT_MIN_CONFIDENCE
    from training.network import HyperParams

    hp = HyperParams()

    p = subparsers.add_parser(
        "train", help="train a model bundle on focal stacks or a dataset store",
        description="Featurise every focal stack in DATA (ground truth from its incoherent "
                    "channel), or read a dataset store built by `focuslock dataset build` in "
                    "blocks, train the MLP with early stopping, export float32 and int8 TFLite "
                    "and write the bundle with its record and report.")
    p.add_argument("data_dir", type=Path, metavar="DATA",
                   help="a folder of focal stacks, or a dataset store (OUT.zarr)")
    p.add_argument("--out", type=Path, required=True, metavar="BUNDLE",
                   help="bundle directory to create")
    p.add_argument("--force", action="store_true",
                   help="replace an existing bundle at --out (the new one is switched in only "
                        "once it is complete)")
    p.add_argument("--finetune", type=Path, metavar="BUNDLE",
                   help="start from this bundle's weights, features and normalisation")
    p.add_argument("--fine-range-um", type=finite_float, metavar="UM",
                   help="also train a near-focus network on frames within ±UM of focus; the "
                        "controller switches to it within ±(UM - 3) µm")
    p.add_argument("--mirror", action="store_true",
                   help="add every training plane's x-mirror (valid when the autofocus LEDs are "
                        "symmetric under x -> -x, as for one LED on the y axis)")
    p.add_argument("--min-confidence", type=finite_float, metavar="C",
                   help="confidence threshold the bundle carries: the controller moves on no "
                        "prediction less confident (default: the --finetune bundle's, else "
                        f"{DEFAULT_MIN_CONFIDENCE})")
    p.add_argument("--validation-fraction", type=finite_float, default=0.15,
                   help="share of stacks (whole positions) held out, 0 < F < 1 (default 0.15)")
    p.add_argument("--hold-out-kinds", type=_kinds, default=[], metavar="LIST",
                   help="comma-separated sample kinds whose stacks take no part in training or "
                        "validation (to test on a kind the model never saw)")
    p.add_argument("--workers", type=WORKERS, default=1,
                   help="processes featurising stacks (a folder of stacks)")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="feature cache of a folder of stacks (default DATA/.features)")
    _add_hyperparameter_options(p, hp)
    _add_feature_options(p)
    p.set_defaults(func=run_train)

    p = subparsers.add_parser(
        "evaluate", help="accuracy of a model bundle on focal stacks or a dataset store",
        description="Predict every autofocus plane of the stacks in DATA with the bundle "
                    "(as the controller does: int8, median over patches) and report RMSE "
                    "overall and by |defocus|, with plots.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("data_dir", type=Path, metavar="DATA",
                   help="a folder of focal stacks, or a dataset store (OUT.zarr)")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="report folder (default DATA/evaluation-<bundle name>, for a store "
                        "<store name>-evaluation-<bundle name> beside it)")
    p.add_argument("--workers", type=WORKERS, default=1, help="processes featurising stacks")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="feature cache of a folder of stacks (default DATA/.features)")
    p.set_defaults(func=run_evaluate)

    p = subparsers.add_parser(
        "confidence", help="calibrate a bundle's confidence on readings of unseen families",
        description="Fit the limits the gates and the loop apply (sign ambiguity, unfamiliarity) "
                    "and the expected error by distance from the leave-one-family-out readings "
                    "that benchmarks/bench_lofo.py saved (READINGS/<family>/readings.npz), and "
                    "write them into BUNDLE's record; its weights are untouched.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("--readings", type=Path, required=True, metavar="DIR",
                   help="the --work folder of benchmarks/bench_lofo.py")
    p.set_defaults(func=run_confidence)

    p = subparsers.add_parser(
        "familiarity", help="give a bundle the subspace of its training features",
        description="Fit the principal subspace of the features of DATA (stacks drawn as the "
                    "bundle's training data was) and write it into BUNDLE's record, so that its "
                    "unfamiliarity gate can refuse samples unlike what it learned. Bundles "
                    "trained now carry it already; this is for older ones.")
    _add_bundle_and_data(p)
    p.set_defaults(func=run_familiarity)

    p = subparsers.add_parser(
        "pair-probe", help="give a bundle the network that reads a probe's two frames together",
        description="Train the probe pair network (controller/probe_pair.py: the signed defocus "
                    "from a frame and the frame PROBE µm above it, which share the sample's "
                    "spectrum) on every pair of planes of DATA, and write it into BUNDLE; the "
                    "loop reads it after a sign probe of that length. DATA should hold many "
                    "sample families.")
    _add_bundle_and_data(p)
    p.add_argument("--probe-um", type=bounded_float(0, 100, open_low=True), default=3.0,
                   metavar="PROBE", help="the probe move (µm), as the config's focus.probe_um "
                                         "and lock.probe_um (default 3)")
    p.add_argument("--hold-out-kinds", type=_kinds, default=[], metavar="LIST",
                   help="sample kinds to leave out (to test on a family it never saw)")
    p.add_argument("--mirror", action="store_true",
                   help="also learn from every pair's x-mirror (a store built with --mirror)")
    _add_hyperparameter_options(p, dataclasses.replace(hp, patience=10))
    p.set_defaults(func=run_pair_probe)

    p = subparsers.add_parser(
        "train-data", help="render simulated focal stacks for training",
        description="Render COUNT seeded focal stacks (autofocus LED + incoherent half annulus) "
                    "on the virtual microscope into OUT_DIR; existing files are kept, so a run "
                    "can be resumed or extended.")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    p.add_argument("--count", type=bounded_int(1), default=100,
                   help="number of stacks (default 100)")
    p.add_argument("--seed", type=bounded_int(0), default=0,
                   help="seed of the first stack (default 0)")
    p.add_argument("--size", type=bounded_int(8), default=512,
                   help="frame side in pixels (default 512)")
    p.add_argument("--kinds", default=DEFAULT_KINDS,
                   help=f"comma-separated sample kinds (default {DEFAULT_KINDS})")
    p.add_argument("--preset", default="paper", help="optics preset (default paper)")
    p.add_argument("--z-range", type=finite_float, default=30.0,
                   help="±range around focus (µm)")
    p.add_argument("--z-step", type=finite_float, default=1.0, help="plane spacing (µm)")
    p.set_defaults(func=run_train_data)

    _register_dataset(subparsers)
    calibrate_command.register(subparsers)
    experiment_command.register(subparsers)
    design_illumination_command.register(subparsers)


def _register_dataset(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dataset", help="build and inspect training dataset stores (features in Zarr, on Dask)",
        description="A dataset store holds the features, labels and records of many focal "
                    "stacks, not their images: what `focuslock train` reads.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser(
        "build", help="featurise simulated or acquired stacks into a dataset store",
        description="One Dask task per focal stack: render it (or read it), find its focus from "
                    "the incoherent channel, featurise its autofocus planes and write them with "
                    "its labels and record into OUT.zarr. A rerun finishes the stacks a stopped "
                    "run left and rewrites none; a larger --count, or new files in --from, "
                    "extends the store.")
    b.add_argument("out", type=Path, metavar="OUT.zarr")
    b.add_argument("--from", dest="source", metavar="URL",
                   help="featurise the acquired stacks (*.ome.tif) of this folder or fsspec URL "
                        "(file://, s3://, gcs:// ...) instead of simulating")
    b.add_argument("--count", type=bounded_int(1), help="simulated stacks (default 100)")
    b.add_argument("--kinds", help=f"comma-separated sample kinds (default {DEFAULT_KINDS})")
    b.add_argument("--seed", type=bounded_int(0), help="seed of the first stack (default 0)")
    b.add_argument("--size", type=bounded_int(8), help="frame side in pixels (default 512)")
    b.add_argument("--preset", help="optics preset (default paper)")
    b.add_argument("--z-range", type=finite_float, help="±range around focus, µm (default 30)")
    b.add_argument("--z-step", type=finite_float, help="plane spacing, µm (default 1)")
    b.add_argument("--vary-instrument", action="store_true", default=None,
                   help="take each simulated stack on its own instrument, drawn by its seed "
                        "(LED misplacement, aberrations, tilt, exposure, sensor noise)")
    b.add_argument("--keep-stacks", type=bounded_int(0), default=0, metavar="N",
                   help="also write the first N simulated stacks as OME-TIFF files into "
                        "<OUT>-stacks/, to look at")
    b.add_argument("--mirror", action="store_true",
                   help="also store the features of every plane's x-mirror (for train --mirror)")
    b.add_argument("--retry-skipped", action="store_true",
                   help="try again the stacks a previous run skipped (a fixed file ...)")
    where = b.add_mutually_exclusive_group()
    where.add_argument("--workers", type=WORKERS, metavar="W",
                       help=f"worker processes of a local Dask cluster (default {CORES}: one "
                            f"per core)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster of this scheduler (tcp://host:8786)")
    where.add_argument("--in-process", action="store_true",
                       help="run every task in this process, without a cluster")
    b.add_argument("--connect-timeout", type=bounded_float(0, 3600, open_low=True), default=10.0,
                   metavar="S", help="seconds to wait for --scheduler (default 10)")
    _add_feature_options(b)
    b.set_defaults(func=run_dataset_build)

    i = actions.add_parser("info", help="what a dataset store holds",
                           description="Plan, layout, stack counts, size on disk, the skipped "
                                       "stacks with their reasons, and the last build run.")
    i.add_argument("store", type=Path, metavar="STORE.zarr")
    i.set_defaults(func=run_dataset_info)


def run_train(args: argparse.Namespace) -> int:
    from training.network import HyperParams
    from training.pipeline import train

    hp = HyperParams.from_dict({k: getattr(args, k) for k in HyperParams.__dataclass_fields__})
    record = train(args.data_dir, args.out, force=args.force,
                   spec=_feature_spec(args, args.data_dir), hp=hp, finetune=args.finetune,
                   fine_range_um=args.fine_range_um, mirror=args.mirror,
                   min_confidence=args.min_confidence,
                   validation_fraction=args.validation_fraction, workers=args.workers,
                   cache_dir=args.cache, hold_out_kinds=args.hold_out_kinds)
    m = record["metrics"]
    print(f"wrote {args.out}: validation RMSE per frame {m['bundle']['rmse_um']:.3f} µm "
          f"(int8 bundle); main network {m['int8']['rmse_um']:.3f} µm int8, "
          f"{m['float32']['rmse_um']:.3f} µm float32; report in {args.out / 'report'}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from controller.files import require_writable_dir
    from training.pipeline import evaluate
    from training.store import is_store

    name = f"evaluation-{args.bundle.resolve().name}"
    data: Path = args.data_dir
    # a folder of stacks holds its reports; a store is left as its build made it
    default = data.with_name(f"{data.name.removesuffix('.zarr')}-{name}") if is_store(data) \
        else data / name
    report = args.report or default
    if args.data_dir.is_dir():  # a missing data folder is named by the dataset's own error
        require_writable_dir(report)
    result = evaluate(args.bundle, args.data_dir, report, workers=args.workers,
                      cache_dir=args.cache)
    print(json.dumps({k: result[k] for k in ("rmse_um", "mae_um", "n", "by_abs_defocus",
                                              "wrong_sign_fraction_beyond_2um",
                                              "vs_simulated_truth")}, indent=1))
    print(f"{'family':<16}{'frames':>7}{'RMSE µm':>9}{'±5 µm':>7}{'wrong sign':>11}"
          f"{'rejected':>9}{'probed':>7}")
    columns = (("rmse_um", ".2f", 9), ("rmse_within_5um", ".2f", 7),
               ("wrong_sign_passed_unambiguous", ".1%", 11), ("rejected", ".1%", 9),
               ("sign_ambiguous", ".1%", 7))
    for family, row in result["by_family"].items():
        cells = "".join(f"{'-' if row[k] is None else format(row[k], fmt):>{width}}"
                        for k, fmt, width in columns)
        print(f"{family:<16}{row['frames']:>7}{cells}")
    print(f"report in {report}")
    return 0


def run_confidence(args: argparse.Namespace) -> int:
    from training.confidence_fit import fit, install
    from training.readings import READINGS_FILE, Readings
    from training.store import StoreError

    files = sorted(args.readings.glob(f"*/{READINGS_FILE}"))
    if not files:
        raise StoreError(f"--readings {args.readings}: no */{READINGS_FILE} in it; run "
                         f"benchmarks/bench_lofo.py --work {args.readings} first")
    readings = Readings.concatenate([Readings.load(f) for f in files])
    families = sorted(set(readings.kind))
    calibration = fit(readings, f"leave-one-family-out readings of {len(families)} families "
                                f"({readings.label.size} frames): {', '.join(families)}")
    install(args.bundle, calibration)
    print(json.dumps(calibration.to_dict(), indent=1))
    print(f"wrote the calibration into {args.bundle / 'record.json'}")
    return 0


def run_familiarity(args: argparse.Namespace) -> int:
    from training.confidence_fit import install_familiarity

    familiarity = install_familiarity(args.bundle, args.data)
    print(f"wrote a familiarity subspace of {familiarity.components.shape[0]} components into "
          f"{args.bundle / 'record.json'}")
    return 0


def run_pair_probe(args: argparse.Namespace) -> int:
    from training.network import HyperParams
    from training.probe_pair import train_pair

    hp = HyperParams.from_dict({k: getattr(args, k) for k in HyperParams.__dataclass_fields__})
    entry = train_pair(args.bundle, args.data, probe_um=args.probe_um, hp=hp, mirror=args.mirror,
                       hold_out_kinds=args.hold_out_kinds)
    m = entry["metrics"]
    print(f"wrote the probe pair network ({entry['file']}, probe {entry['probe_um']:g} µm) into "
          f"{args.bundle}: validation RMSE per frame {m['rmse_um']:.3f} µm, wrong sign beyond "
          f"2 µm {m['wrong_sign_fraction_beyond_2um']:.2%}")
    return 0


def run_train_data(args: argparse.Namespace) -> int:
    from training.datagen import generate

    paths = generate(args.out_dir, args.count, kinds=_kinds(args.kinds), seed=args.seed,
                     size=args.size,
                     preset_name=args.preset, z_range_um=args.z_range, z_step_um=args.z_step)
    print(f"{len(paths)} stacks in {args.out_dir}")
    return 0


SIMULATION_OPTIONS = ("count", "kinds", "seed", "size", "preset", "z_range", "z_step",
                      "vary_instrument")


def run_dataset_build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from training.build import (
        AcquiredPlan,
        BuildError,
        BuildReport,
        SimulatedPlan,
        build_dataset,
    )
    from training.cluster import ClusterChoice, check_scheduler_address

    if args.scheduler is not None:
        check_scheduler_address(args.scheduler)  # before anything is made
    given = [f"--{o.replace('_', '-')}" for o in SIMULATION_OPTIONS
             if getattr(args, o) is not None]
    plan: AcquiredPlan | SimulatedPlan
    if args.source is not None:
        if given:
            raise BuildError(f"--from builds from acquired stacks; {', '.join(given)} "
                             f"belong to simulated ones")
        plan = AcquiredPlan(args.source)
    else:
        def value(name: str, default: Any) -> Any:
            return default if getattr(args, name) is None else getattr(args, name)

        plan = SimulatedPlan(tuple(_kinds(value("kinds", DEFAULT_KINDS))), value("count", 100),
                             value("seed", 0), value("size", 512), value("preset", "paper"),
                             value("z_range", 30.0), value("z_step", 1.0),
                             vary_instrument=value("vary_instrument", False))
    cluster = ClusterChoice(workers=args.workers or CORES, scheduler=args.scheduler,
                            in_process=args.in_process, connect_timeout_s=args.connect_timeout)
    bar: Any = None

    def on_stack(report: BuildReport) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=report.to_do, desc="building stacks", unit="stack")
        bar.update(report.finished - bar.n)
        bar.set_postfix(skipped=len(report.skipped), refresh=False)

    try:
        report = build_dataset(args.out, plan, _feature_spec(args, args.out), mirror=args.mirror,
                               cluster=cluster, keep_stacks=args.keep_stacks,
                               retry_skipped=args.retry_skipped, on_stack=on_stack)
    finally:
        if bar is not None:
            bar.close()
    for name, reason in report.skipped:
        print(f"skipped {name}: {reason}")
    counts = report.counts
    print(f"{args.out}: {report.built} stacks built, {len(report.skipped)} skipped in "
          f"{report.elapsed_s:.1f} s ({report.stacks_per_minute():.1f} stacks/min on "
          f"{report.cluster}); the store holds {counts['done']} stacks, {counts['skipped']} "
          f"skipped, {counts['missing']} missing")
    if report.failed:
        raise BuildError(f"{len(report.failed)} stack(s) got no result: "
                         + "; ".join(f"{n}: {r}" for n, r in report.failed[:5])
                         + ". Rerun the same command to try them again")
    return 0


def run_dataset_info(args: argparse.Namespace) -> int:
    from training.store import open_store

    print(json.dumps(open_store(args.store).summary(), indent=1))
    return 0
