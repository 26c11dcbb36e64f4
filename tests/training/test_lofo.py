"""Leave one family out at a tiny size: benchmarks/bench_lofo.py trains without each family and
reads it, the confidence is fitted on those readings and installed into a bundle, and
``focuslock evaluate`` reports by family. The fit itself is checked on readings whose truth is
known by construction."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from controller.cli import main
from controller.features import FeatureSpec
from controller.model import FocusModel
from training.build import SimulatedPlan, build_dataset
from training.cluster import ClusterChoice
from training.confidence_fit import MAX_WRONG_SIGN, cross_checked, fit, judged
from training.readings import READINGS_FILE, Readings, summary

REPO = Path(__file__).parents[2]
FAMILIES = ("sparse-cells", "dense-cells", "beads")
TINY = ["--depth", "2", "--width", "16", "--batch-size", "32", "--max-epochs", "4",
        "--patience", "2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Three families, three 256² stacks each over ±6 µm, 128² patches."""
    out = tmp_path_factory.mktemp("lofo") / "families.zarr"
    plan = SimulatedPlan(kinds=FAMILIES, count=9, size=256, z_range_um=6.0)
    build_dataset(out, plan, FeatureSpec(patch=128), mirror=True,
                  cluster=ClusterChoice(in_process=True))
    return out


@pytest.fixture(scope="module")
def lofo(store, tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_lofo.py"), str(store),
                    "--work", str(work), *TINY], check=True, cwd=REPO, capture_output=True)
    return work


@pytest.mark.training
@pytest.mark.slow
def test_each_family_is_read_by_a_network_that_never_saw_it(lofo):
    result = json.loads((lofo / "lofo.json").read_text())
    assert sorted(result["families"]) == sorted(FAMILIES)
    for family in FAMILIES:
        readings = Readings.load(lofo / family / READINGS_FILE)
        assert set(readings.kind) == {family}  # only the family left out
        record = json.loads((lofo / family / "bundle" / "record.json").read_text())
        assert record["data"]["held_out_kinds"] == [family]
        row = result["families"][family]
        assert row["frames"] == readings.label.size > 0 and row["rmse_um"] > 0
    table = (lofo / "lofo.md").read_text()
    assert all(f"| {family} |" in table for family in FAMILIES)
    assert (lofo / "reliability.png").stat().st_size > 0
    assert set(result["cross_checked"]) == {*FAMILIES, "reliability"}


@pytest.mark.training
@pytest.mark.slow
def test_the_confidence_command_installs_the_fitted_limits(lofo, tmp_path, capsys):
    bundle = lofo / "beads" / "bundle"
    assert main(["confidence", str(bundle), "--readings", str(lofo)]) == 0
    calibration = json.loads((lofo / "confidence.json").read_text())
    record = json.loads((bundle / "record.json").read_text())
    assert record["confidence"]["max_sign_ambiguity"] == calibration["max_sign_ambiguity"]
    model = FocusModel.load(bundle)
    readings = Readings.load(lofo / "beads" / READINGS_FILE)
    assert model.calibration is not None and model.calibration.expected_error is not None
    p = model.predict_patches(np.zeros((1, model.spec.n_features), np.float32))
    assert p.distance_um is not None and p.expected_error_um is not None
    assert p.max_unfamiliarity == model.calibration.max_unfamiliarity
    assert readings.label.size > 0
    assert main(["confidence", str(bundle), "--readings", str(tmp_path)]) == 2
    assert "no */readings.npz" in capsys.readouterr().err


@pytest.mark.training
@pytest.mark.slow
def test_the_familiarity_command_gives_an_older_bundle_its_training_subspace(lofo, store,
                                                                            tmp_path):
    bundle = tmp_path / "older"
    shutil.copytree(lofo / "beads" / "bundle", bundle)
    record = json.loads((bundle / "record.json").read_text())
    fitted_in_training = record.pop("familiarity")
    (bundle / "record.json").write_text(json.dumps(record))
    zeros = np.zeros((1, FocusModel.load(bundle).spec.n_features), np.float32)
    assert FocusModel.load(bundle).predict_patches(zeros).unfamiliarity is None

    assert main(["familiarity", str(bundle), str(store)]) == 0
    model = FocusModel.load(bundle)
    assert model.familiarity is not None
    assert model.familiarity.components.shape == (
        len(fitted_in_training["components"]), zeros.shape[1])
    assert model.predict_patches(zeros).unfamiliarity is not None


@pytest.mark.training
@pytest.mark.slow
def test_evaluate_reports_by_family(lofo, store, tmp_path, capsys):
    report = tmp_path / "report"
    assert main(["evaluate", str(lofo / "beads" / "bundle"), str(store), "--report",
                 str(report)]) == 0
    out = capsys.readouterr().out
    assert all(family in out for family in FAMILIES)
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["by_family"]) == {*FAMILIES, "all"}
    assert set(Readings.load(report / READINGS_FILE).kind) == set(FAMILIES)


def _synthetic(n: int = 4000, seed: int = 0) -> Readings:
    """Readings of two families whose network reads the sign wrongly exactly where its sign
    is ambiguous beyond 0.5, and whose distances are off by 5 % of the distance."""
    rng = np.random.default_rng(seed)
    label = rng.uniform(-30, 30, n)
    ambiguity = rng.uniform(0, 1, n)
    sign = np.where(ambiguity > 0.5, -1.0, 1.0) * np.sign(label)
    distance = np.abs(label) * (1 + 0.05 * rng.standard_normal(n))
    return Readings(
        label=label, truth=label, stack=np.array(["s"] * n),
        kind=np.array(["a", "b"])[np.arange(n) % 2], predicted=sign * distance,
        distance=distance, ambiguity=ambiguity, sign_ambiguous=np.zeros(n, bool),
        unfamiliarity=rng.uniform(0, 2, n), confidence=np.ones(n), trusted=np.ones(n, bool),
        passed=np.ones(n, bool), expected_error=np.full(n, np.nan))


def test_the_fit_finds_the_ambiguity_where_the_sign_goes_wrong():
    readings = _synthetic()
    calibration = fit(readings, "synthetic")
    assert calibration.max_sign_ambiguity == 0.5
    passed = judged(readings, calibration)
    far = np.abs(passed.label) > 2
    acted = far & ~passed.sign_ambiguous
    assert np.mean(np.sign(passed.predicted[acted]) != np.sign(passed.label[acted])) \
        <= MAX_WRONG_SIGN
    assert np.mean(passed.acted_error <= passed.expected_error) >= 0.95
    assert calibration.max_unfamiliarity == pytest.approx(np.percentile(
        readings.unfamiliarity, 99))
    table = calibration.expected_error
    assert table is not None and table.at(25.0) > table.at(1.0)  # error grows with distance
    row = summary(judged(readings, calibration, passed_only=False))
    assert row["wrong_sign_passed_unambiguous"] <= MAX_WRONG_SIGN


def test_a_network_confidently_wrong_about_signs_never_has_its_sign_trusted():
    readings = _synthetic()
    readings.predicted = -np.sign(readings.label) * readings.distance  # sure, and always wrong
    calibration = fit(readings, "synthetic, confidently wrong")
    assert calibration.max_sign_ambiguity is None
    assert judged(readings, calibration, passed_only=False).sign_ambiguous.all()


def test_the_cross_check_measures_each_family_with_limits_fitted_on_the_others():
    check = cross_checked(_synthetic())
    for family in ("a", "b"):
        assert check[family]["within_stated_error"] >= 0.9
        assert check[family]["wrong_sign_passed_unambiguous"] <= MAX_WRONG_SIGN
    assert all(0 <= r["within"] <= 1 for r in check["reliability"])
