"""The one runner every experiment of the paper's analyses uses (docs/experiments.md).

An experiment is a list of *arms* (an illumination, a feature representation, a number of
training stacks ...). For each arm the runner builds a training store and a held-out test store
of simulated stacks through the data engine (``focuslock dataset build``'s code: one task per
stack, restartable, so a rerun reuses what is built), trains a bundle with the size's
hyper-parameters (``focuslock train``'s code), and reads every held-out frame with the
controller's own model: RMSE per frame over the whole z range. The experiment writes its table
(CSV and markdown) and figure (PNG) into its report folder.

Sizes: ``tiny`` for the smoke test, ``small`` (the default: minutes on this 2-core machine, NOT
the paper's size) and ``full`` (the paper's numbers of stacks and planes, 512² frames, the
default network: for a desktop or a Dask cluster, ``--scheduler``). Every seed is fixed: stacks
are drawn by their seeds, training by ``HyperParams.seed``.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from controller.errors import FocuslockError
from controller.features import FeatureSpec
from controller.model import FocusModel
from controller.optics import Pattern, Preset
from training.build import SimulatedPlan, build_dataset
from training.cluster import ClusterChoice
from training.network import HyperParams

log = logging.getLogger(__name__)

CELLS = ("sparse-cells", "dense-cells")  # the paper's training sample: cells
TEST_SEED = 100_000  # held-out stacks are drawn from seeds far from any training stack's


class ExperimentError(FocuslockError):
    """An experiment that cannot run as asked."""


@dataclass(frozen=True)
class Size:
    """How big every part of an experiment is."""

    name: str
    frame: int  # frame side in pixels (one feature patch per frame)
    z_range_um: float  # ± range of each stack around focus
    z_step_um: float
    train_stacks: int  # per arm, unless the experiment varies it
    test_stacks: int  # held-out stacks per arm
    stack_counts: tuple[int, ...]  # the training sizes of the stack-count experiment
    hp: HyperParams
    cluster: ClusterChoice = field(default_factory=lambda: ClusterChoice(in_process=True))

    def spec(self, **changes: Any) -> FeatureSpec:
        return FeatureSpec(patch=self.frame, **changes)

    def with_cluster(self, cluster: ClusterChoice) -> Size:
        return replace(self, cluster=cluster)


SIZES: dict[str, Size] = {
    "tiny": Size("tiny", frame=128, z_range_um=6.0, z_step_um=1.0, train_stacks=4,
                 test_stacks=2, stack_counts=(2, 4),
                 hp=HyperParams(depth=2, width=16, batch_size=32, max_epochs=2, patience=2)),
    "small": Size("small", frame=256, z_range_um=20.0, z_step_um=2.0, train_stacks=24,
                  test_stacks=8, stack_counts=(5, 15, 30, 60),
                  hp=HyperParams(depth=4, width=64, batch_size=64, max_epochs=60, patience=10)),
    "full": Size("full", frame=512, z_range_um=30.0, z_step_um=1.0, train_stacks=440,
                 test_stacks=40, stack_counts=(5, 15, 30, 60, 120, 400), hp=HyperParams(),
                 cluster=ClusterChoice()),
}


@dataclass(frozen=True)
class Arm:
    """One configuration an experiment measures: what is simulated, and how it is featurised."""

    label: str  # the table's row name, and its stores' and bundle's folder name
    kinds: tuple[str, ...] = CELLS
    autofocus: Pattern | None = None  # None: the preset's single LED at NA 0.35
    spec_changes: tuple[tuple[str, Any], ...] = ()  # FeatureSpec fields other than the box's
    preset: str = "paper"
    system: Preset | None = None  # a user's optical system instead of the preset

    def spec(self, size: Size) -> FeatureSpec:
        return size.spec(**dict(self.spec_changes))


def compensated_brightness(na: float) -> float:
    """The paper's exposure compensation: the light per unit area of the sample falls as
    cos θ, so the exposure grows as 1/cos θ (the simulator: the LED's brightness)."""
    return 1.0 / math.sqrt(1.0 - na * na)


def store(work: Path, arm: Arm, size: Size, *, count: int, seed: int, role: str) -> Path:
    """The arm's store of ``count`` stacks from ``seed`` (built, finished or extended)."""
    path = work / "stores" / f"{arm.label}-{role}.zarr"
    path.parent.mkdir(parents=True, exist_ok=True)
    plan = SimulatedPlan(arm.kinds, count, seed, size.frame, arm.preset, size.z_range_um,
                         size.z_step_um, autofocus=arm.autofocus, system=arm.system)
    report = build_dataset(path, plan, arm.spec(size), cluster=size.cluster)
    if report.to_do:
        log.info("%s: %d stacks built, %d skipped in %.0f s", path.name, report.built,
                 len(report.skipped), report.elapsed_s)
    return path


def test_store(work: Path, arm: Arm, size: Size) -> Path:
    return store(work, arm, size, count=size.test_stacks, seed=TEST_SEED, role="test")


def train_bundle(work: Path, name: str, data: Path, size: Size, *,
                 finetune: Path | None = None) -> Path:
    """A bundle trained (or fine-tuned) on ``data`` with the size's hyper-parameters."""
    from training.pipeline import train

    bundle = work / "bundles" / name
    bundle.parent.mkdir(parents=True, exist_ok=True)
    spec = FeatureSpec.from_dict(_store_spec(data))
    train(data, bundle, spec=spec, hp=size.hp, force=True, finetune=finetune, verbose=0)
    return bundle


def rmse_on(bundle: Path, data: Path) -> dict[str, Any]:
    """What the bundle reads on every frame of ``data``: RMSE (µm) over the whole range and
    within ±5 µm, wrong signs beyond ±2 µm, and the count of frames."""
    from training.dataset import load_training_data
    from training.readings import frame_readings
    from training.report import metrics

    dataset = load_training_data(data, FeatureSpec.from_dict(_store_spec(data)), progress=False)
    frames = frame_readings(dataset, FocusModel.load(bundle))
    result = metrics(frames.label, frames.predicted)
    near = np.abs(frames.label) <= 5.0
    within = float(np.sqrt(np.mean((frames.predicted[near] - frames.label[near]) ** 2)))
    return {"rmse_um": result["rmse_um"], "rmse_within_5um": within,
            "wrong_sign_beyond_2um": result["wrong_sign_fraction_beyond_2um"],
            "frames": result["n"], "test_stacks": int(np.unique(frames.stack).size)}


def run_arm(work: Path, arm: Arm, size: Size, train_stacks: int | None = None
            ) -> dict[str, Any]:
    """Build the arm's stores, train on its training stacks, read its held-out stacks."""
    count = size.train_stacks if train_stacks is None else train_stacks
    training = store(work, arm, size, count=count, seed=0, role="train")
    bundle = train_bundle(work, arm.label, training, size)
    held_out = test_store(work, arm, size)
    row = {"arm": arm.label, "train_stacks": stacks_done(training), **rmse_on(bundle, held_out)}
    log.info("%s: %s", arm.label, row)
    return row


def stacks_done(path: Path) -> int:
    """The stacks of a store that made it (a stack without a focus is skipped)."""
    from training.store import open_store

    return int(open_store(path).attrs()["index"]["done"])


def _store_spec(path: Path) -> dict[str, Any]:
    from training.store import open_store

    return open_store(path).layout.spec.to_dict()


@dataclass(frozen=True)
class Column:
    key: str
    heading: str
    fmt: str = "{}"

    def cell(self, value: Any) -> str:
        return "–" if value is None else self.fmt.format(value)


RMSE_COLUMNS = (Column("train_stacks", "training stacks"),
                Column("test_stacks", "held-out stacks"), Column("frames", "frames"),
                Column("rmse_um", "RMSE µm", "{:.2f}"),
                Column("rmse_within_5um", "RMSE ±5 µm", "{:.2f}"),
                Column("wrong_sign_beyond_2um", "wrong sign beyond ±2 µm", "{:.1%}"))


def write_table(out: Path, name: str, title: str, rows: Sequence[dict[str, Any]],
                columns: Sequence[Column], size: Size, command: str) -> None:
    """``name``.csv (the arm's label first, then the columns' values at full precision) and
    ``name``.md (the formatted table, its size and the command that made it)."""
    out.mkdir(parents=True, exist_ok=True)
    keys = ["arm", *(c.key for c in columns if c.key != "arm")]
    with (out / f"{name}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# {title}", "",
             f"Size `{size.name}`: {size.frame}² frames, ±{size.z_range_um:g} µm in "
             f"{size.z_step_um:g} µm steps, {size.test_stacks} held-out stacks per arm, network "
             f"{size.hp.depth} x {size.hp.width}, at most {size.hp.max_epochs} epochs. "
             f"Made by `{command}`.", "",
             "| " + " | ".join(c.heading for c in columns) + " |",
             "|---" * len(columns) + "|"]
    lines += ["| " + " | ".join(c.cell(row.get(c.key)) for c in columns) + " |" for row in rows]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


def write_figure(out: Path, name: str, draw: Callable[[Any], None], title: str,
                 size: Size, panels: int = 1) -> Path:
    """``name``.png: ``draw(axes)`` on one small figure, titled with the size (with ``panels``
    > 1: side by side, ``draw`` gets their list)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.6), dpi=100, squeeze=False)
    draw(axes[0, 0] if panels == 1 else list(axes[0]))
    heading = f"{title} (size {size.name})"
    if panels == 1:
        axes[0, 0].set_title(heading, fontsize=10)
    else:
        figure.suptitle(heading, fontsize=10)
    for each in axes[0]:
        each.grid(alpha=0.3)
    figure.tight_layout()
    path = out / f"{name}.png"
    figure.savefig(path)
    plt.close(figure)
    return path


def bar_figure(rows: Sequence[dict[str, Any]], key: str = "rmse_um"
               ) -> Callable[[Any], None]:
    """RMSE per arm as bars, the value written on each."""
    def draw(axes: Any) -> None:
        labels = [str(r["arm"]) for r in rows]
        values = [float(r[key]) for r in rows]
        bars = axes.bar(range(len(rows)), values, color="tab:blue")
        axes.bar_label(bars, fmt="%.1f", fontsize=8)
        axes.set_xticks(range(len(rows)), labels, rotation=20, ha="right", fontsize=8)
        axes.set_ylabel("held-out RMSE (µm)")
    return draw
