"""Training's commands refuse bad input before any work, and never lose a bundle or a folder.

The data folder in the refusals does not exist: the message names the bad setting, not the data,
so every check ran before the data was read (let alone a network trained)."""

import json
import os
import shutil
import stat

import numpy as np
import pytest

from controller.cli import build_parser, main
from controller.features import Standardizer
from controller.optics import preset
from tests.cli_run import run_cli
from tests.conftest import TINY
from training.batches import Batches
from training.dataset import FeaturesInMemory, assemble_rows
from training.network import HyperParams, TrainingError, build, fit

pytestmark = [pytest.mark.training]


@pytest.mark.parametrize(("extra", "message"), [
    (["--validation-fraction", "1.5"], "--validation-fraction must be in (0, 1), got 1.5"),
    (["--validation-fraction", "0"], "--validation-fraction must be in (0, 1)"),
    (["--validation-fraction", "nan"], "argument --validation-fraction: must be a finite"),
    (["--learning-rate", "nan"], "argument --learning-rate: must be a finite number"),
    (["--learning-rate", "0"], "learning_rate must be in (0, 1], got 0.0"),
    (["--learning-rate", "5"], "learning_rate must be in (0, 1]"),
    (["--output-scale-um", "1e300"], "output_scale_um must be in (0, 1000] µm"),
    (["--depth", "0"], "depth must be an integer in [1, 100], got 0"),
    (["--width", "1000000"], "width must be an integer in [1, 10000]"),
    (["--seed", "-1"], "seed must be an integer in [0, 4294967295]"),
    (["--dropout", "1"], "dropout must be in [0, 1)"),
    (["--fine-range-um", "2"], "--fine-range-um must be in (3, 100] µm, got 2.0"),
    (["--min-confidence", "1.5"], "--min-confidence must be in [0, 1], got 1.5"),
    (["--feature-crop-y", "0.9"], "crop_y must be in (0, 0.5]"),
    (["--feature-patch", "-4"], "patch must be a positive integer"),
])
def test_train_refuses_bad_numbers_before_reading_any_data(tmp_path, capsys, extra, message):
    code, err = run_cli(["train", str(tmp_path / "no-data"), "--out", str(tmp_path / "b"), *extra],
                    capsys)
    assert code == 2
    assert message in err
    assert not (tmp_path / "b").exists()


def test_a_feature_flag_reads_false_as_false():
    args = build_parser().parse_args(["train", "d", "--out", "b", "--feature-log", "false"])
    assert args.feature_log is False


def test_train_refuses_an_existing_out_before_training_and_leaves_it_alone(tmp_path, capsys,
                                                                          bundle):
    existing = tmp_path / "bundle"
    shutil.copytree(bundle, existing)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_text("precious")
    no_data = str(tmp_path / "no-data")
    cases = [
        ([], existing, "a bundle folder already exists; pass --force to replace it"),
        (["--force"], a_file, "is a file, not a bundle folder"),
        ([], a_file, "is a file, not a bundle folder"),
        (["--force"], foreign, "not a model bundle (no record.json); refusing to replace it"),
    ]
    for extra, out, message in cases:
        code, err = run_cli(["train", no_data, "--out", str(out), *extra], capsys)
        assert code == 2 and message in err, (extra, out, err)
    assert (foreign / "holiday.jpg").read_text() == "precious"
    assert a_file.read_text() == "mine"
    assert sorted(p.name for p in existing.iterdir()) == sorted(p.name for p in bundle.iterdir())


def test_retraining_with_force_switches_the_new_bundle_in_whole(tmp_path, capsys, bundle,
                                                                train_dir):
    out = tmp_path / "bundle"
    shutil.copytree(bundle, out)
    old = json.loads((out / "record.json").read_text())
    mask = os.umask(0o022)
    try:
        code, err = run_cli(["train", str(train_dir), "--out", str(out), "--force", *TINY,
                         "--max-epochs", "2"], capsys)
    finally:
        os.umask(mask)
    assert code == 0, err
    new = json.loads((out / "record.json").read_text())
    assert new["training"]["epochs_run"] <= 2 < old["training"]["epochs_run"]
    assert (out / "report" / "metrics.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no staging or old folder left
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # the umask's, not mkdtemp's 0700


def test_train_and_evaluate_name_a_stack_too_short_for_ground_truth(tmp_path, capsys, bundle):
    data = tmp_path / "data"
    assert main(["sim", "stack", str(data / "one.ome.tif"), "--size", "256",
                 "--z-range", "0", "0"]) == 0
    capsys.readouterr()
    code, err = run_cli(["train", str(data), "--out", str(tmp_path / "b"), *TINY], capsys)
    assert code == 2
    assert "one.ome.tif: stack has 1 planes; ground truth needs at least 7" in err
    code, err = run_cli(["evaluate", str(bundle), str(data)], capsys)
    assert code == 2 and "one.ome.tif: stack has 1 planes" in err


@pytest.mark.parametrize(("extra", "message"), [
    (["--z-step", "1e-9"], "train-data: the z range and step give 6e+10 planes"),
    (["--size", "100000"], "would need"),
    (["--z-range", "nan"], "argument --z-range: must be a finite number"),
    (["--z-range", "0"], "must be positive"),
])
def test_train_data_refuses_before_rendering(tmp_path, capsys, extra, message):
    code, err = run_cli(["train-data", str(tmp_path / "out"), "--count", "1", *extra], capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "out").exists()


def test_train_data_refuses_a_folder_it_cannot_make(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = run_cli(["train-data", str(blocker / "out"), "--count", "1", "--size", "64"],
                        capsys)
    assert code == 2 and "cannot create the folder" in err


def test_a_diverged_training_is_an_error_not_a_bundle():
    hp = HyperParams(depth=1, width=4, max_epochs=2, patience=1, lr_patience=0, batch_size=4)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = np.full(8, np.nan)  # what a learning rate far too large ends in
    paper = preset("paper")
    data = assemble_rows([(y, y, np.zeros(8, bool))], 1, ["stack"], ["kind"], paper.optics,
                         paper.autofocus, FeaturesInMemory(x), [])
    batches = Batches(data, Standardizer(np.zeros(3, np.float32), np.ones(3, np.float32)), 4)
    with pytest.raises(TrainingError, match="training diverged"):
        fit(build(3, hp), hp, batches, batches, verbose=0)
