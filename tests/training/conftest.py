"""Small simulated focal stacks from the real virtual microscope, shared by the training tests."""

import numpy as np
import pytest

from controller.cli import main
from controller.sim.samples import make_sample
from controller.sim.stacks import render_stack
from controller.stackio import FocalStack, write_stack


def sim_stack(kind: str, seed: int, size: int = 256, half_range: int = 7,
              focus_um: float | None = None, params: dict[str, float] | None = None
              ) -> FocalStack:
    """Autofocus + half-annulus stack, 1 µm planes, focus at a seeded sub-µm offset."""
    if focus_um is None:
        focus_um = float(np.random.default_rng(seed).uniform(-0.5, 0.5))
    sample = make_sample(kind, (size, size), 0.325, seed, **(params or {}))
    z = np.arange(-half_range, half_range + 1, 1.0)
    return render_stack(sample, z, preset="paper", focus_z_um=focus_um, seed=seed)


@pytest.fixture(scope="session")
def train_dir(tmp_path_factory):
    """A folder of 32 small stacks of both cell kinds over ±10 µm (a tiny training set)."""
    folder = tmp_path_factory.mktemp("train")
    for seed in range(32):
        kind = ("sparse-cells", "dense-cells")[seed % 2]
        # a small field needs a dense sprinkle of cells to hold any cell at all
        params = {"density_per_mm2": 1500.0} if kind == "sparse-cells" else {}
        write_stack(folder / f"{kind}-{seed:03d}.ome.tif",
                    sim_stack(kind, seed, half_range=10, params=params))
    return folder


TINY = ["--depth", "3", "--width", "48", "--dropout", "0.1", "--max-epochs", "80",
        "--patience", "15", "--batch-size", "32", "--learning-rate", "2e-3",
        "--feature-patch", "256", "--validation-fraction", "0.25"]


@pytest.fixture(scope="session")
def bundle(train_dir, tmp_path_factory):
    """A tiny bundle trained by the real ``focuslock train`` (needs TensorFlow), carrying a
    confidence threshold of its own."""
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    assert main(["train", str(train_dir), "--out", str(out), *TINY,
                 "--min-confidence", "0.3"]) == 0
    return out


@pytest.fixture(scope="session")
def tuned_bundle(bundle, train_dir, tmp_path_factory):
    """``bundle`` fine-tuned for a few epochs, with a near-focus network added."""
    out = tmp_path_factory.mktemp("tuned") / "tuned"
    assert main(["train", str(train_dir), "--out", str(out), "--finetune", str(bundle),
                 "--max-epochs", "3", "--validation-fraction", "0.25",
                 "--fine-range-um", "6"]) == 0
    return out
