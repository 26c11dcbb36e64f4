"""``focuslock train``, ``evaluate`` and ``train-data``: the desktop side of the command.

The parsers are registered without importing TensorFlow (or the simulator); each run function
imports what it needs, so ``focuslock --help`` stays instant and the box never loads them.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.commands.arguments import bounded_int, finite_float, yes_no

DEFAULT_KINDS = "sparse-cells,dense-cells"
WORKERS = bounded_int(1, os.cpu_count() or 1)  # more processes than cores only cost memory


def _parser_of(value: object) -> Callable[[str], Any]:
    """How a setting of this default's type is read from the command line: floats finite,
    booleans as true/false (``bool("False")`` would be True)."""
    if isinstance(value, bool):
        return yes_no
    if isinstance(value, float):
        return finite_float
    return type(value)


def register(subparsers: Any) -> None:
    from controller.features import FeatureSpec
    from training.export import DEFAULT_MIN_CONFIDENCE
    from training.network import HyperParams

    spec, hp = FeatureSpec(), HyperParams()

    p = subparsers.add_parser(
        "train", help="train a model bundle on a folder of focal stacks",
        description="Featurise every focal stack in DATA_DIR (ground truth from its incoherent "
                    "channel), train the MLP with early stopping, export float32 and int8 TFLite "
                    "and write the bundle with its record and report.")
    p.add_argument("data_dir", type=Path, metavar="DATA_DIR")
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
    p.add_argument("--workers", type=WORKERS, default=1, help="processes featurising stacks")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="feature cache (default DATA_DIR/.features)")
    for name, value in hp.to_dict().items():
        p.add_argument(f"--{name.replace('_', '-')}", type=_parser_of(value), default=value,
                       help=f"hyper-parameter (default {value})")
    for name, value in spec.to_dict().items():
        p.add_argument(f"--feature-{name.replace('_', '-')}", type=_parser_of(value),
                       default=value,
                       dest=f"feature_{name}", help=f"feature spec (default {value})")
    p.set_defaults(func=run_train)

    p = subparsers.add_parser(
        "evaluate", help="accuracy of a model bundle on a folder of focal stacks",
        description="Predict every autofocus plane of the stacks in DATA_DIR with the bundle "
                    "(as the controller does: int8, median over patches) and report RMSE "
                    "overall and by |defocus|, with plots.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("data_dir", type=Path, metavar="DATA_DIR")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="report folder (default DATA_DIR/evaluation-<bundle name>)")
    p.add_argument("--workers", type=WORKERS, default=1, help="processes featurising stacks")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="feature cache (default DATA_DIR/.features)")
    p.set_defaults(func=run_evaluate)

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


def run_train(args: argparse.Namespace) -> int:
    from controller.features import FeatureSpec
    from training.network import HyperParams
    from training.pipeline import train

    spec = FeatureSpec.from_dict({k: getattr(args, f"feature_{k}")
                                  for k in FeatureSpec.__dataclass_fields__})
    hp = HyperParams.from_dict({k: getattr(args, k) for k in HyperParams.__dataclass_fields__})
    record = train(args.data_dir, args.out, force=args.force, spec=spec, hp=hp,
                   finetune=args.finetune,
                   fine_range_um=args.fine_range_um, mirror=args.mirror,
                   min_confidence=args.min_confidence,
                   validation_fraction=args.validation_fraction, workers=args.workers,
                   cache_dir=args.cache)
    m = record["metrics"]
    print(f"wrote {args.out}: validation RMSE per frame {m['bundle']['rmse_um']:.3f} µm "
          f"(int8 bundle); main network {m['int8']['rmse_um']:.3f} µm int8, "
          f"{m['float32']['rmse_um']:.3f} µm float32; report in {args.out / 'report'}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from controller.files import require_writable_dir
    from training.pipeline import evaluate

    report = args.report or args.data_dir / f"evaluation-{args.bundle.resolve().name}"
    if args.data_dir.is_dir():  # a missing data folder is named by the dataset's own error
        require_writable_dir(report)
    result = evaluate(args.bundle, args.data_dir, report, workers=args.workers,
                      cache_dir=args.cache)
    print(json.dumps({k: result[k] for k in ("rmse_um", "mae_um", "n", "by_abs_defocus",
                                              "wrong_sign_fraction_beyond_2um",
                                              "vs_simulated_truth")}, indent=1))
    print(f"report in {report}")
    return 0


def run_train_data(args: argparse.Namespace) -> int:
    from training.datagen import generate

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    paths = generate(args.out_dir, args.count, kinds=kinds, seed=args.seed, size=args.size,
                     preset_name=args.preset, z_range_um=args.z_range, z_step_um=args.z_step)
    print(f"{len(paths)} stacks in {args.out_dir}")
    return 0
