"""The training tests' own fixture; the tiny bundle, its stacks and ``sim_stack`` are shared with
the service tests from tests/conftest.py."""

import pytest

from controller.cli import main


@pytest.fixture(scope="session")
def tuned_bundle(bundle, train_dir, tmp_path_factory):
    """``bundle`` fine-tuned for a few epochs, with a near-focus network added."""
    out = tmp_path_factory.mktemp("tuned") / "tuned"
    assert main(["train", str(train_dir), "--out", str(out), "--finetune", str(bundle),
                 "--max-epochs", "3", "--validation-fraction", "0.25",
                 "--fine-range-um", "6"]) == 0
    return out
