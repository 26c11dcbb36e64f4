"""``focuslock calibrate``: the command of training/calibrate.py (docs/calibrate.md).

Registered by training/commands.py; TensorFlow is imported only once a calibration trains.
Every option is judged before a stack is collected or a folder made.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from controller.commands.arguments import bounded_float, bounded_int
from controller.config import Config, load_config

DEFAULT_RANGE_UM = 30.0
DEFAULT_STEP_UM = 1.0


def register(subparsers: Any) -> None:
    from training.calibrate import FINETUNE, HOLD_OUT, STACKS

    p = subparsers.add_parser(
        "calibrate", help="teach the installed model your sample: collect, fine-tune, check on "
                          "a held-out stack, install if better",
        description="Collect focal stacks of your sample on the rig the config names (or take "
                    "stacks collected before, --from), fine-tune the bundle the box reads on "
                    "all but the last --hold-out of them, measure both bundles on those, and "
                    "install the fine-tuned one into model.store only if it reads them better "
                    "(--force: anyway); the running service is asked to reload it.")
    p.add_argument("--config", type=Path, help="TOML config (default: built-in defaults)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="folder for the stacks, the bundle and the reports (default: a new "
                        "calibrate-<time> folder under log_dir)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--from", dest="source", type=Path, metavar="FOLDER",
                        help="calibrate on the stacks (*.ome.tif) of this folder instead of "
                             "collecting")
    source.add_argument("--collect-only", action="store_true",
                        help="collect the stacks and stop (fine-tune on a desktop with --from)")
    p.add_argument("--stacks", type=bounded_int(1), metavar="N",
                   help=f"stacks to collect, one sample position each (default {STACKS})")
    p.add_argument("--range", type=bounded_float(0, 1000, open_low=True), dest="range_um",
                   metavar="UM", help=f"planes from -UM to +UM around the current z "
                                      f"(default {DEFAULT_RANGE_UM:g})")
    p.add_argument("--step", type=bounded_float(0, 100, open_low=True), dest="step_um",
                   metavar="UM", help=f"plane spacing (default {DEFAULT_STEP_UM:g})")
    p.add_argument("--hold-out", type=bounded_int(1), default=HOLD_OUT, metavar="K",
                   help=f"stacks kept out of fine-tuning to compare on (default {HOLD_OUT})")
    p.add_argument("--base", type=Path, metavar="BUNDLE",
                   help="the bundle to fine-tune (default: the one the config reads)")
    p.add_argument("--force", action="store_true",
                   help="install the fine-tuned bundle even if it reads the held-out stacks "
                        "worse")
    p.add_argument("--no-install", action="store_true",
                   help="fine-tune and compare only (install later with focuslock model "
                        "install)")
    p.add_argument("--no-reload", action="store_true",
                   help="do not ask the running service to reload its model")
    p.add_argument("--max-epochs", type=bounded_int(1, 100_000), default=FINETUNE.max_epochs,
                   help=f"fine-tuning epochs at most (default {FINETUNE.max_epochs})")
    p.add_argument("--patience", type=bounded_int(1, 100_000), default=FINETUNE.patience,
                   help=f"epochs without a better validation RMSE before stopping (default "
                        f"{FINETUNE.patience})")
    p.add_argument("--learning-rate", type=bounded_float(0, 1, open_low=True),
                   default=FINETUNE.learning_rate,
                   help=f"fine-tuning learning rate (default {FINETUNE.learning_rate:g})")
    p.set_defaults(func=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    from controller.commands.model import announce
    from controller.installed_models import configured_bundle
    from controller.model import read_record
    from training.calibrate import (
        FINETUNE,
        STACKS,
        CalibrationError,
        calibrate,
        check_split,
        collect_stacks,
    )
    from training.dataset import stack_files

    config = load_config(args.config)
    collecting = {"--stacks": args.stacks, "--range": args.range_um, "--step": args.step_um}
    if args.source is not None and any(v is not None for v in collecting.values()):
        given = [name for name, value in collecting.items() if value is not None]
        raise CalibrationError(f"--from takes stacks collected before; {', '.join(given)} "
                               f"belong to collecting")
    stacks = STACKS if args.stacks is None else args.stacks
    hp = dataclasses.replace(FINETUNE, max_epochs=args.max_epochs, patience=args.patience,
                             learning_rate=args.learning_rate)
    base = args.base or configured_bundle(config)
    if base is None and not args.collect_only:
        raise CalibrationError("model.bundle = 'none' reads no network to fine-tune; name one "
                               "with --base")
    if base is not None:
        read_record(base)  # a bundle at all, before minutes of collecting
    if args.source is not None:
        files = stack_files(args.source)
        check_split(len(files), args.hold_out)
    elif not args.collect_only:
        check_split(stacks, args.hold_out)
    folder = _run_folder(args.out, config)
    if args.source is None:
        print(f"collecting {stacks} stacks of your sample into {folder / 'stacks'}")
        files = collect_stacks(config, folder / "stacks", stacks=stacks,
                               range_um=args.range_um or DEFAULT_RANGE_UM,
                               step_um=args.step_um or DEFAULT_STEP_UM)
    if args.collect_only:
        _print_desktop_route(folder, base, args.config)
        return 0
    assert base is not None
    result = calibrate(config, folder, files, base=base, hold_out=args.hold_out, hp=hp,
                       force=args.force, install=not args.no_install)
    print(f"held-out RMSE ({', '.join(result.held_out)}): base {result.before_rmse_um:.2f} µm "
          f"({_refused(result.before_refused)}), fine-tuned {result.after_rmse_um:.2f} µm "
          f"({_refused(result.after_refused)}); reports in {folder}")
    if result.installed is not None:
        announce(config, "installed", result.installed, reload=not args.no_reload)
        return 0
    if args.no_install:
        print(f"not installed (--no-install); to install it: focuslock model install "
              f"{result.bundle}")
    else:
        print(f"not installed: {result.verdict}; it stays in {result.bundle} (--force installs "
              f"such a bundle anyway)")
    return 0 if result.improved else 1


def _run_folder(out: Path | None, config: Config) -> Path:
    """The calibration's folder: ``out`` (new or empty), else a new one under log_dir."""
    from controller.files import require_writable_dir
    from controller.preflight import check_log_dir
    from controller.runlog import timestamped_dir
    from training.calibrate import CalibrationError

    if out is None:
        check_log_dir(config.log_dir)
        return timestamped_dir(Path(config.log_dir), "calibrate")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CalibrationError(f"--out {out}: already holds something; choose a new folder")
    require_writable_dir(out)
    return out


def _print_desktop_route(folder: Path, base: Path | None, config: Path | None) -> None:
    """What to run on a desktop, and back on the box, after collecting only."""
    on_box = "" if config is None else f" --config {config}"
    print(f"collected into {folder / 'stacks'}. To fine-tune on a desktop with the train extra, "
          f"copy that folder and the base bundle ({base or 'yours'}) there and run:\n"
          f"  focuslock calibrate --from stacks --base BASE --no-install --out calibration\n"
          f"then copy calibration/bundle back to the box and install it:\n"
          f"  focuslock model install bundle{on_box}")


def _refused(share: float | None) -> str:
    return "no frame read" if share is None else f"its gates refuse {share:.0%} of the frames"
