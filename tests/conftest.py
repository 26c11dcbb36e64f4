"""Shared pytest set-up: tests run from the source tree and never touch real hardware unless
``--rig-config`` points the device interface tests (tests/hardware) at a real box.

Hypothesis runs derandomized (the same generated cases on every run, so CI is deterministic) and
without its per-example deadline (a timing assertion, which a loaded machine would fail); each
suite bounds its own budget with ``max_examples``. ``HYPOTHESIS_PROFILE=explore`` draws fresh
random cases on every run, for a hunt on demand.

The tiny bundle (``bundle``, trained on ``train_dir``'s small stacks of ``sim_stack``) lives here,
not in tests/training, so the training and the service tests share one per session.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from controller.cli import main
from controller.sim.samples import make_sample
from controller.sim.stacks import render_stack
from controller.stackio import FocalStack, write_stack

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rig-config", metavar="PATH", default=None,
        help="run tests/hardware/test_device_interface.py against the rig this focuslock TOML "
             "config opens (e.g. a real box; home or set its drive first) instead of the "
             "simulated backends 'virtual' and 'firmware-sim'")


# The tiny bundle, shared by the training and the service tests (defined once here, so one
# session trains it once).

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
