"""``focuslock train`` reads a dataset store in blocks and makes the model the folder of the same
stacks makes in memory."""

import json

import numpy as np
import pytest

from controller.cli import main
from controller.features import FeatureSpec
from training.build import AcquiredPlan, build_dataset
from training.cluster import ClusterChoice
from training.export import run_tflite

pytestmark = [pytest.mark.training, pytest.mark.slow]

QUICK = ["--depth", "2", "--width", "16", "--max-epochs", "4", "--patience", "2",
         "--batch-size", "64", "--validation-fraction", "0.25", "--feature-patch", "256",
         "--mirror", "--fine-range-um", "6"]


def test_a_store_trains_the_model_its_folder_trains(train_dir, tmp_path):
    store = tmp_path / "train.zarr"
    build_dataset(store, AcquiredPlan(str(train_dir)), FeatureSpec(patch=256), mirror=True,
                  cluster=ClusterChoice(in_process=True))
    from_folder, from_store = tmp_path / "folder-bundle", tmp_path / "store-bundle"
    assert main(["train", str(train_dir), "--out", str(from_folder), "--cache",
                 str(tmp_path / "cache"), *QUICK]) == 0
    # the store's feature spec is the default of train's --feature-* options
    assert main(["train", str(store), "--out", str(from_store),
                 *[a for a in QUICK if a not in ("--feature-patch", "256")]]) == 0
    with np.load(from_folder / "weights.npz") as a, np.load(from_store / "weights.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
    # the int8 networks answer alike (their files differ in names the converter makes up)
    x = np.random.default_rng(0).normal(size=(200, 96)).astype(np.float32)
    for name in ("model.tflite", "fine.tflite"):
        np.testing.assert_array_equal(run_tflite((from_folder / name).read_bytes(), x),
                                      run_tflite((from_store / name).read_bytes(), x))
    records = [json.loads((b / "record.json").read_text()) for b in (from_folder, from_store)]
    for key in ("standardizer", "metrics", "training", "defocus_range_um"):
        assert records[0][key] == records[1][key], key
    assert ({**records[0]["fine"], "sha256": None} == {**records[1]["fine"], "sha256": None})
    assert records[0]["data"]["train"] == records[1]["data"]["train"]
    assert records[1]["data"]["folder"] == "train.zarr"
    # evaluate reads a store as it reads the folder; its report goes beside the store
    assert main(["evaluate", str(from_store), str(store)]) == 0
    assert main(["evaluate", str(from_store), str(train_dir), "--cache", str(tmp_path / "cache"),
                 "--report", str(tmp_path / "folder-report")]) == 0
    reports = [json.loads((r / "metrics.json").read_text())
               for r in (tmp_path / "train-evaluation-store-bundle", tmp_path / "folder-report")]
    for key in ("rmse_um", "by_abs_defocus", "n", "stacks"):
        assert reports[0][key] == reports[1][key], key
    assert not any(p.name.startswith("evaluation") for p in store.iterdir())


def test_whole_kinds_are_held_out_of_training(train_dir, tmp_path):
    store = tmp_path / "train.zarr"
    build_dataset(store, AcquiredPlan(str(train_dir)), FeatureSpec(patch=256),
                  cluster=ClusterChoice(in_process=True))
    out = tmp_path / "bundle"
    assert main(["train", str(store), "--out", str(out), "--hold-out-kinds", "dense-cells",
                 "--depth", "1", "--width", "8", "--max-epochs", "2", "--patience", "1"]) == 0
    data = json.loads((out / "record.json").read_text())["data"]
    assert data["held_out_kinds"] == ["dense-cells"]
    for part in ("train", "validation"):
        assert set(data[part]["stacks_by_sample"]) == {"sparse-cells"}
