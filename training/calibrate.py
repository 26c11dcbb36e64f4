"""A new sample type in minutes: collect a few stacks of it, fine-tune the installed model, check
the result on a stack it did not train on, and install it only if it reads that stack better.

The steps, each the project's own: ``controller.collect`` acquires the stacks on the rig the
config names (the twin in simulation), or stacks collected before are taken; the last
``hold_out`` of them (in name order) are held out; ``train(..., finetune=BASE)`` fine-tunes the
base bundle (the one the box reads) on the rest with short defaults (``FINETUNE``), as the base
was made (``recipe_of``: x-mirrors, a near-focus network);
``evaluate`` measures base and fine-tuned bundle on the held-out stacks, against each stack's
focus found from its incoherent channel, as the controller answers (int8, median over patches);
``controller.installed_models.install`` puts the fine-tuned bundle in atomically, the previous
one kept for rollback. Everything a run makes stays in its folder (docs/calibrate.md)::

    calibrate-YYYYmmdd-HHMMSS/
      stacks/            the collected stacks (absent when they came from elsewhere)
      train/, held-out/  links to the stacks each part uses
      calibrated/        the fine-tuned bundle
      before/, after/    the evaluation reports of the base and the fine-tuned bundle
      before-after.png   both bundles' readings of the held-out stacks, side by side
      calibration.json   what was compared, the two RMSEs, and whether it was installed
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.config import Config
from controller.errors import FocuslockError
from controller.features import FeatureSpec
from training.network import HyperParams

if TYPE_CHECKING:
    import numpy as np

    from controller.installed_models import InstalledBundle

# collected by default: one held out, nine to fine-tune on (one of them validates); the number
# benchmarks/bench_finetune.py measured (docs/training.md, "A new sample type")
STACKS = 10
HOLD_OUT = 1
# Short fine-tuning: the base already reads defocus, and a few stacks make short epochs. At a
# rate of 3e-4 the bundled model fine-tuned on six 1024² bead stacks read a seventh worse (20.4
# against 19.0 µm RMSE) than at the base's own 1e-3.
FINETUNE = HyperParams(max_epochs=60, patience=10, lr_patience=3, learning_rate=1e-3)
MIN_TRAINING_STACKS = 2  # one to train on and one to validate with
FIGURE = "before-after.png"


class CalibrationError(FocuslockError):
    """A calibration that cannot run as asked."""


@dataclass(frozen=True)
class CalibrationRun:
    """What one calibration compared and did."""

    folder: Path
    base: Path
    bundle: Path
    held_out: tuple[str, ...]
    before_rmse_um: float  # the base bundle on the held-out stacks
    after_rmse_um: float  # the fine-tuned bundle on them
    installed: InstalledBundle | None
    # the share of the held-out frames each bundle's gates refuse (None: no frame read): a
    # bundle that reads a new field well but refuses it does not lock on it either
    before_refused: float | None = None
    after_refused: float | None = None
    # what not moving at all would leave: the held-out frames' RMS distance from focus. A
    # fine-tuned bundle above it would drive the focus away on average, however much better
    # than its base it reads (eight twin bead stacks: 26.3 -> 23.3 µm against 19.3)
    no_move_rmse_um: float = math.nan

    @property
    def improved(self) -> bool:
        """Whether the fine-tuned bundle reads the held-out stacks better than both its base
        and not moving at all."""
        return self._shortfall() is None

    @property
    def verdict(self) -> str:
        """What the held-out stacks say of the fine-tuned bundle, in words."""
        return self._shortfall() or (f"the fine-tuned bundle reads the held-out stacks better "
                                     f"({self.after_rmse_um:.2f} µm)")

    def _shortfall(self) -> str | None:
        """Why the fine-tuned bundle is no improvement (None: it is one)."""
        after = f"{self.after_rmse_um:.2f} µm"
        if not math.isfinite(self.after_rmse_um):
            return "the fine-tuned bundle read no held-out frame"
        if self.after_rmse_um >= self.no_move_rmse_um:
            return (f"the fine-tuned bundle ({after}) reads the held-out stacks worse than not "
                    f"moving at all would leave them ({self.no_move_rmse_um:.2f} µm from focus, "
                    f"RMS)")
        if not self.after_rmse_um < self.before_rmse_um:
            return (f"the fine-tuned bundle ({after}) reads the held-out stacks no better than "
                    f"the base ({self.before_rmse_um:.2f} µm)")
        return None


def collect_stacks(config: Config, folder: Path, *, stacks: int, range_um: float,
                   step_um: float) -> list[Path]:
    """``stacks`` focal stacks of the user's sample on the config's rig, into ``folder``, with
    a progress line per stack."""
    from controller.collect import (
        check_rig_free,
        collect,
        next_field,
        plane_offsets,
        print_progress,
    )
    from controller.hardware.rig import open_rig

    offsets = plane_offsets(range_um, step_um)
    check_rig_free(config)
    rig = open_rig(config)
    try:
        return collect(rig, folder, positions=stacks, offsets_um=offsets,
                       next_position=next_field(rig, config, stacks), progress=print_progress)
    finally:
        rig.close()


def check_split(stacks: int, hold_out: int) -> None:
    """Refuse a split that leaves no stack to compare on, or too few to fine-tune on."""
    if hold_out < 1:
        raise CalibrationError(f"--hold-out must be at least 1, got {hold_out}")
    if stacks < hold_out + MIN_TRAINING_STACKS:
        raise CalibrationError(
            f"calibration needs at least {hold_out + MIN_TRAINING_STACKS} stacks ({hold_out} "
            f"held out, {MIN_TRAINING_STACKS} to fine-tune and validate on), got {stacks}")


def judging_problem(path: Path) -> str | None:
    """Why a stack cannot judge a calibration (an unreadable file, or no focus found inside it),
    if so."""
    from controller.groundtruth import find_focus
    from controller.stackio import read_stack

    try:
        find_focus(read_stack(path))
    except FocuslockError as exc:
        return str(exc)
    return None


def split_stacks(stacks: Sequence[Path], hold_out: int, folder: Path) -> tuple[Path, Path]:
    """Folders ``train/`` and ``held-out/`` in ``folder`` with links to the stacks: the last
    ``hold_out`` (in name order) whose focus can be found held out, the others to fine-tune on.
    A stack passed over for having no focus inside it (a sample that was far from focus when
    it was collected) is left out with a line saying why: the stacks before it still serve."""
    ordered = sorted(stacks, key=lambda p: p.name)
    check_split(len(ordered), hold_out)
    held: list[Path] = []
    passed_over: dict[Path, str] = {}
    for path in reversed(ordered):
        if len(held) == hold_out:
            break
        problem = judging_problem(path)
        if problem is None:
            held.insert(0, path)
        else:
            passed_over[path] = problem
            print(f"left out {path.name}: {problem}")
    train = [p for p in ordered if p not in held and p not in passed_over]
    if len(held) < hold_out:
        last, problem = next(iter(passed_over.items()))
        raise CalibrationError(f"a focus was found in only {len(held)} of the {len(ordered)} "
                               f"stacks, fewer than the {hold_out} to hold out (the last, "
                               f"{last.name}: {problem}): collect them again nearer focus")
    check_split(len(train) + hold_out, hold_out)
    parts = {"train": train, "held-out": held}
    for name, files in parts.items():
        (folder / name).mkdir()
        for path in files:
            (folder / name / path.name).symlink_to(path.resolve())
    return folder / "train", folder / "held-out"


def recipe_of(base: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune as the base was made: with every plane's x-mirror where the autofocus pattern
    allows it (on ten stacks of one instrument it took the held-out RMSE of tissue from 1.75 to
    1.29 µm, of red cells from 2.66 to 1.42 µm), and with a near-focus network over the base's
    range if it has one (a calibrated bundle would lose it otherwise: red cells within ±2 µm
    0.67 -> 0.39 µm)."""
    from controller.optics import Pattern
    from training.dataset import mirror_symmetric

    fine = base.get("fine")
    return {"mirror": mirror_symmetric(Pattern.from_dict(base["illumination"])),
            "fine_range_um": None if fine is None else float(fine["range_um"][1])}


def calibrate(config: Config, folder: Path, stacks: Sequence[Path], *, base: Path,
              hold_out: int = HOLD_OUT, hp: HyperParams = FINETUNE, force: bool = False,
              install: bool = True) -> CalibrationRun:
    """Fine-tune ``base`` on ``stacks`` but the held-out ones, measure both on those, and
    install the fine-tuned bundle into the config's store if it reads them better (or with
    ``force``; never without ``install``). Writes everything into ``folder``."""
    from controller.installed_models import install as install_bundle
    from controller.model import read_record
    from training.pipeline import evaluate, folder_name, train

    train_dir, held_dir = split_stacks(stacks, hold_out, folder)
    held = tuple(sorted(p.name for p in held_dir.iterdir() if not p.name.startswith(".")))
    print(f"held out: {', '.join(held)}; measuring the base bundle {folder_name(base)} on them")
    before = evaluate(base, held_dir, folder / "before")
    print(f"fine-tuning {folder_name(base)} on {len(list(train_dir.iterdir()))} stacks "
          f"(at most {hp.max_epochs} epochs)")
    bundle = folder / "calibrated"
    train(train_dir, bundle, spec=FeatureSpec(), hp=hp, finetune=base,
          **recipe_of(read_record(base)))
    after = evaluate(bundle, held_dir, folder / "after")
    result = CalibrationRun(folder, base, bundle, held, float(before["rmse_um"]),
                            float(after["rmse_um"]), None, refused(before), refused(after),
                            no_move_rmse(folder / "after"))
    if install and (result.improved or force):
        note = (f"calibrate: held-out RMSE {result.before_rmse_um:.2f} -> "
                f"{result.after_rmse_um:.2f} µm ({', '.join(held)})")
        result = replace(result, installed=install_bundle(config, bundle, note=note))
    _write_summary(result, before, after)
    write_figure(result)
    return result


def write_figure(result: CalibrationRun) -> Path:
    """``before-after.png``: the held-out frames as the base and as the fine-tuned bundle read
    them, against their true defocus, in two panels on the same axes (the evaluation reports'
    predictions.csv)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=80, sharex=True, sharey=True)
    panels = (("before", "base", result.before_rmse_um),
              ("after", "fine-tuned", result.after_rmse_um))
    for ax, (report, name, rmse) in zip(axes, panels, strict=True):
        table = read_predictions(result.folder / report)
        limit = float(np.max(np.abs(table[:, 0]))) * 1.1 if table.size else 1.0
        ax.plot(table[:, 0], table[:, 1], "o", ms=4, alpha=0.7)
        ax.plot([-limit, limit], [-limit, limit], "k-", lw=0.8)
        ax.set(xlabel="true defocus (µm)", title=f"{name}: RMSE {rmse:.2f} µm")
    axes[0].set_ylabel("predicted defocus (µm)")
    fig.suptitle(f"held out: {', '.join(result.held_out)}")
    fig.tight_layout()
    path = result.folder / FIGURE
    fig.savefig(path)
    plt.close(fig)
    return path


def read_predictions(report: Path) -> np.ndarray:
    """An evaluation report's frames (its predictions.csv): a row each, the true defocus and
    the bundle's prediction (µm); no rows when it read none."""
    import numpy as np

    return np.genfromtxt(report / "predictions.csv", delimiter=",", skip_header=1,
                         usecols=(1, 2), ndmin=2)


def no_move_rmse(report: Path) -> float:
    """The RMS distance from focus of the frames an evaluation report read: the error of a
    bundle that never moves; NaN when it read none."""
    table = read_predictions(report)
    return float(math.sqrt((table[:, 0] ** 2).mean())) if table.size else math.nan


def refused(evaluation: dict[str, Any]) -> float | None:
    """The share of an evaluation's frames that the bundle's gates refuse."""
    share = evaluation.get("by_family", {}).get("all", {}).get("rejected")
    return None if share is None else float(share)


def _write_summary(result: CalibrationRun, before: dict[str, Any], after: dict[str, Any]) -> None:
    summary = {
        "base": str(result.base), "bundle": str(result.bundle), "held_out": list(result.held_out),
        "frames": before.get("n"),
        "before": {"rmse_um": result.before_rmse_um, "refused": result.before_refused,
                   "by_abs_defocus": before.get("by_abs_defocus")},
        "after": {"rmse_um": result.after_rmse_um, "refused": result.after_refused,
                  "by_abs_defocus": after.get("by_abs_defocus")},
        "no_move_rmse_um": result.no_move_rmse_um if math.isfinite(result.no_move_rmse_um)
        else None,
        "improved": result.improved,
        "verdict": result.verdict,
        "installed": None if result.installed is None else result.installed.name,
    }
    (result.folder / "calibration.json").write_text(json.dumps(summary, indent=1) + "\n")
