"""The probe pair network trained into a bundle (training/probe_pair.py, ``focuslock
pair-probe``), read by the controller, and its leave-one-family-out benchmark, at a tiny size."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from controller.cli import main
from controller.model import FocusModel, ModelError
from controller.probe_pair import pair_input
from training.dataset import DatasetError, load_training_data
from training.probe_pair import pair_dataset

REPO = Path(__file__).parents[2]
TINY = ["--depth", "2", "--width", "16", "--max-epochs", "5", "--patience", "2",
        "--batch-size", "32"]

pytestmark = [pytest.mark.training, pytest.mark.slow]


@pytest.fixture(scope="module")
def paired(bundle, train_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("paired") / "bundle"
    shutil.copytree(bundle, out)
    assert main(["pair-probe", str(out), str(train_dir), *TINY]) == 0
    return out


def test_each_pair_is_a_plane_and_the_plane_the_probe_above_it(bundle, train_dir):
    model = FocusModel.load(bundle)
    data = load_training_data(train_dir, model.spec, progress=False)
    pairs = pair_dataset(data, 3.0)
    features = data.features
    n = model.spec.n_features
    # the pair's lower half is a plane's features; lower + change is the plane 3 µm above
    for row in (0, pairs.n_rows // 2, pairs.n_rows - 1):
        lower, change = pairs.features[row, :n], pairs.features[row, n:]
        low = np.flatnonzero((features == lower).all(axis=1))
        upper = np.flatnonzero(np.isclose(features, lower + change, atol=1e-5).all(axis=1))
        assert low.size == 1 and upper.size == 1
        assert data.stack[low[0]] == data.stack[upper[0]] == pairs.stack[row]
        assert data.defocus_um[upper[0]] == pytest.approx(data.defocus_um[low[0]] - 3.0,
                                                          abs=0.3)
        assert pairs.defocus_um[row] == data.defocus_um[low[0]]
    with pytest.raises(DatasetError, match=r"no pair of planes 0\.5 µm apart"):
        pair_dataset(data, 0.5)


def test_the_bundle_carries_the_pair_and_the_controller_reads_it(paired, train_dir, capsys):
    model = FocusModel.load(paired)
    assert model.pair is not None and model.pair.probe_um == 3.0
    record = json.loads((paired / "record.json").read_text())["pair"]
    assert record["data"]["folder"] == train_dir.name  # named by its own name, not a path
    assert record["metrics"]["n"] > 0 and record["metrics"]["rmse_um"] > 0
    data = load_training_data(train_dir, model.spec, progress=False)
    frame = data.features[:1]
    reading = model.pair.read(frame, frame)
    row = model.pair.read_rows(pair_input(frame, frame))[0]
    assert (reading.defocus_um, reading.distance_um) == pytest.approx(tuple(row))
    kept = model.predict_patches(frame).patch_features
    assert kept is not None and kept.shape == frame.shape


def test_a_second_training_replaces_the_pair_file_and_leaves_one(paired, train_dir):
    before = sorted(p.name for p in paired.glob("pair-*.tflite"))
    assert main(["pair-probe", str(paired), str(train_dir), *TINY, "--seed", "1"]) == 0
    after = sorted(p.name for p in paired.glob("pair-*.tflite"))
    assert len(before) == len(after) == 1 and before != after
    assert not (paired / "pair.staged").exists()


def test_a_corrupt_pair_file_is_refused_by_its_checksum(paired, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(paired, copy)
    pair_file = next(copy.glob("pair-*.tflite"))
    pair_file.write_bytes(pair_file.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ModelError, match=r"checksum .* corrupt or replaced"):
        FocusModel.load(copy)


def test_no_pairs_is_a_clear_error_and_the_bundle_is_unchanged(paired, train_dir, capsys):
    record = (paired / "record.json").read_bytes()
    assert main(["pair-probe", str(paired), str(train_dir), "--probe-um", "0.5", *TINY]) == 2
    assert "no pair of planes 0.5 µm apart" in capsys.readouterr().err
    assert (paired / "record.json").read_bytes() == record


def test_the_benchmark_reads_each_family_with_a_pair_that_never_saw_it(bundle, train_dir,
                                                                       tmp_path):
    work = tmp_path / "work"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_pair_lofo.py"),
                    str(train_dir), "--bundle", str(bundle), "--work", str(work), *TINY],
                   check=True, cwd=REPO, capture_output=True)
    result = json.loads((work / "pair-lofo.json").read_text())
    assert sorted(result) == ["dense-cells", "sparse-cells"]
    for family, row in result.items():
        record = json.loads((work / family / "bundle" / "record.json").read_text())
        assert record["pair"]["data"]["held_out_kinds"] == [family]
        assert row["frames"] > 0 and 0 <= row["pair_wrong_sign"] <= 1
    assert "| sparse-cells |" in (work / "pair-lofo.md").read_text()


def test_a_fine_tuned_bundle_keeps_its_bases_pair(paired, train_dir, tmp_path):
    out = tmp_path / "tuned"
    assert main(["train", str(train_dir), "--out", str(out), "--finetune", str(paired),
                 "--max-epochs", "2", "--validation-fraction", "0.25"]) == 0
    base = json.loads((paired / "record.json").read_text())["pair"]
    tuned = FocusModel.load(out)
    assert tuned.pair is not None
    assert json.loads((out / "record.json").read_text())["pair"]["sha256"] == base["sha256"]
    assert (out / base["file"]).read_bytes() == (paired / base["file"]).read_bytes()
