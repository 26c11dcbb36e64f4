"""A tiny real training run: stacks -> features -> Keras -> int8 TFLite -> the controller's loader.

Few small stacks and a small network, so the run takes seconds; the full-size run is the
documented ``focuslock train`` command (docs/training.md), not a test.
"""

import json
import math
import shutil
from typing import Any

import numpy as np
import pytest
from PIL import Image

from controller.cli import main
from controller.features import Standardizer, featurize
from controller.groundtruth import find_focus
from controller.model import DEFAULT_BUNDLE, FocusModel
from controller.optics import preset
from controller.stackio import write_stack
from tests.conftest import sim_stack
from training.network import TrainingError

pytestmark = [pytest.mark.training, pytest.mark.slow]

@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """A new sample the network never saw, 512² so each frame has 4 patches to combine."""
    stack = sim_stack("dense-cells", 901, size=512, half_range=10)
    return write_stack(tmp_path_factory.mktemp("held") / "held-out.ome.tif", stack), stack


def test_bundle_records_how_it_was_made(bundle, train_dir):
    record = json.loads((bundle / "record.json").read_text())
    # the data by its folder's own name: the bundle travels, the training machine's paths do not
    assert record["data"]["folder"] == train_dir.name
    report = json.loads((bundle / "report" / "metrics.json").read_text())
    assert (report["bundle"], report["data"]) == ("tiny", train_dir.name)
    assert record["data"]["train"]["n_stacks"] == 24
    assert record["data"]["validation"]["n_stacks"] == 8
    assert record["hyperparameters"]["depth"] == 3
    assert record["feature_spec"]["patch"] == 256
    assert record["illumination"]["name"] == "autofocus"
    m = record["metrics"]
    assert m["int8"]["rmse_um"] > 0 and m["float32"]["rmse_um"] > 0
    assert isinstance(m["int8_within_5_percent_of_float32"], bool)
    assert record["fine"] is None and m["bundle"]["n"] == 8 * 21
    low, high = record["defocus_range_um"]
    assert -11 < low < -9 and 9 < high < 11
    assert record["min_confidence"] == 0.3 == FocusModel.load(bundle).min_confidence
    for name in ("pred_vs_true.png", "error_vs_defocus.png", "training_curve.png",
                 "metrics.json"):
        assert (bundle / "report" / name).stat().st_size > 0


def test_controller_predicts_sign_and_size_of_defocus(bundle, held_out):
    _, stack = held_out
    p = preset("paper")
    model = FocusModel.load(bundle, optics=p.optics, pattern=p.autofocus)
    inside = np.abs(stack.focus_z_um - stack.z_um) <= 8  # the edges of ±10 µm are barely trained
    truth = (stack.focus_z_um - stack.z_um)[inside]
    predicted = np.array([model.predict(f).defocus_um
                          for f in stack.channel("autofocus")[inside]])
    far = np.abs(truth) >= 3
    assert np.mean(np.sign(predicted[far]) == np.sign(truth[far])) >= 0.8
    # rough size: far better than always answering "in focus", and growing with the defocus
    assert np.sqrt(np.mean((predicted - truth) ** 2)) < 0.6 * np.sqrt(np.mean(truth**2))
    assert np.corrcoef(predicted, truth)[0, 1] > 0.8


def test_prediction_is_the_median_of_the_patches_with_a_confidence(bundle, held_out):
    _, stack = held_out
    model = FocusModel.load(bundle)
    p = model.predict(stack.channel("autofocus")[0])  # 10 µm off: the main network answers
    assert len(p.patch_defocus_um) == 4
    assert p.defocus_um == pytest.approx(float(np.median(p.patch_defocus_um)))
    assert 0.0 < p.confidence <= 1.0 and p.spread_um >= 0 and p.in_range
    agreeing = model.combine(np.array([2.0, 2.1, 1.9, 2.0]))
    split = model.combine(np.array([-8.0, 2.0, 9.0, 15.0]))
    assert agreeing.confidence > 0.8 > 0.2 > split.confidence
    assert model.combine(np.array([3.0])).confidence == 0.0  # one patch cannot be judged
    assert not model.combine(np.array([40.0, 40.0])).in_range


def test_predict_command_prints_one_json_line_per_plane(bundle, held_out, capsys):
    path, stack = held_out
    assert main(["predict", str(bundle), str(path), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == stack.z_um.size
    assert [r["plane"] for r in lines] == list(range(stack.z_um.size))
    assert lines[3]["z_um"] == pytest.approx(stack.z_um[3])
    assert lines[3]["file"] == str(path)
    assert all(math.isfinite(r["defocus_um"]) and 0 <= r["confidence"] <= 1 for r in lines)


def test_evaluate_command_reports_what_the_controller_predicts(bundle, held_out):
    path, stack = held_out
    report = path.parent / "report"
    assert main(["evaluate", str(bundle), str(path.parent), "--report", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    model = FocusModel.load(bundle)
    predicted = np.array([model.predict(f).defocus_um for f in stack.channel("autofocus")])
    labels = find_focus(stack).focus_z_um - stack.z_um
    assert metrics["n"] == 21
    assert (metrics["bundle"], metrics["data"]) == ("tiny", path.parent.name)
    assert metrics["rmse_um"] == pytest.approx(np.sqrt(np.mean((predicted - labels) ** 2)),
                                               rel=1e-4)
    truth = stack.focus_z_um - stack.z_um
    assert metrics["vs_simulated_truth"]["rmse_um"] == pytest.approx(
        np.sqrt(np.mean((predicted - truth) ** 2)), rel=1e-4)
    assert (report / "pred_vs_true.png").is_file()


def test_finetune_keeps_features_and_normalisation_and_adds_a_fine_network(
        bundle, tuned_bundle, held_out):
    out = tuned_bundle
    base = json.loads((bundle / "record.json").read_text())
    tuned = json.loads((out / "record.json").read_text())
    assert tuned["standardizer"] == base["standardizer"]
    assert tuned["feature_spec"] == base["feature_spec"]
    assert tuned["hyperparameters"]["depth"] == 3
    assert tuned["fine_tuned_from"] == {"bundle": "tiny", "weights_sha256": base["weights_sha256"],
                                        "data": base["data"]["folder"],
                                        "patch_rmse_um": {"main": base["metrics"]["patch_rmse_um"]}}
    assert tuned["min_confidence"] == base["min_confidence"]  # not given: the base's threshold
    # the near-focus network answers only where the main one puts the frame within ±3 µm, by
    # its distance head (the signed one hedges towards 0 where the sign is unsure)
    assert tuned["fine"]["switch_um"] == 3.0
    model = FocusModel.load(out)
    _, stack = held_out
    for frame in stack.channel("autofocus"):
        features = featurize(frame, model.spec)[0]
        main_distance = float(np.median(model.predict_features(features)[:, 1]))
        expected = "fine" if main_distance <= 3.0 else "main"
        assert model.predict(frame).network == expected


def test_predict_command_reads_plain_image_files(bundle, held_out, tmp_path, capsys):
    _, stack = held_out
    frame = stack.channel("autofocus")[2]
    path = tmp_path / "frame.png"
    Image.fromarray(frame).save(path)  # 16-bit greyscale PNG
    assert main(["predict", str(bundle), str(path)]) == 0
    out = capsys.readouterr().out
    expected = FocusModel.load(bundle).predict(frame).defocus_um
    assert f"{path} [0]" in out and f"defocus {expected:+7.2f} µm" in out


def test_predict_command_names_a_missing_file(bundle, tmp_path, capsys):
    assert main(["predict", str(bundle), str(tmp_path / "nothing.png")]) == 2
    assert "nothing.png: no such file" in capsys.readouterr().err


def test_a_two_headed_bundle_reads_distance_ambiguity_and_unfamiliarity(bundle, held_out):
    record = json.loads((bundle / "record.json").read_text())
    assert record["outputs"] == ["defocus_um", "distance_um"]
    assert record["confidence"]["expected_error"] is None  # defaults until calibrated
    model = FocusModel.load(bundle)
    _, stack = held_out
    frames = stack.channel("autofocus")
    readings = [model.predict(frame) for frame in frames]
    for p in readings:
        assert p.distance_um is not None and p.distance_um == p.distance
        assert p.sign_ambiguity is not None and 0.0 <= p.sign_ambiguity <= 1.0
        assert p.sign_ambiguous == (p.sign_ambiguity > 0.5)  # the default limit
        assert p.max_unfamiliarity == 3.0 and p.expected_error_um is None
    truth = np.abs(stack.focus_z_um - stack.z_um)
    distance = np.array([p.distance for p in readings])
    inside = truth <= 8
    assert np.sqrt(np.mean((distance - truth)[inside] ** 2)) < 3.0  # a trained head, if tiny
    # a frame of the same cells is familiar; a featureless one (flat grey) is not
    unfamiliar = model.predict(np.full_like(frames[0], 30000)).unfamiliarity
    assert unfamiliar is not None
    assert np.median([p.unfamiliarity for p in readings]) < 3.0 < unfamiliar


def test_the_shipped_default_fine_tunes_and_gains_the_distance_head(tmp_path):
    """The shipped default has one output column (it predates the distance head): fine-tuning it,
    as `focuslock calibrate` does on every new box, starts its signed head from the base's and
    gives it a distance head."""
    data = tmp_path / "tissue"
    data.mkdir()
    for seed in (1, 2, 3):
        write_stack(data / f"tissue-{seed:03d}.ome.tif",
                    sim_stack("tissue", seed, size=512, half_range=6))
    tuned = tmp_path / "tuned"
    assert main(["train", str(data), "--out", str(tuned), "--finetune", str(DEFAULT_BUNDLE),
                 "--max-epochs", "2", "--validation-fraction", "0.34"]) == 0
    record = json.loads((tuned / "record.json").read_text())
    assert record["outputs"] == ["defocus_um", "distance_um"]
    assert record["fine_tuned_from"]["bundle"] == DEFAULT_BUNDLE.name
    assert FocusModel.load(tuned).has_distance


def test_a_one_headed_bundles_weights_give_the_signed_head_and_keep_a_fresh_distance_head():
    from training.network import HyperParams, build, weights_from_arrays

    hp = HyperParams(depth=2, width=8)
    model = build(5, hp)
    fresh = model.get_weights()
    rng = np.random.default_rng(0)
    one_headed = [rng.normal(size=(*w.shape[:-1], 1) if i >= len(fresh) - 2 else w.shape)
                  .astype(np.float32) for i, w in enumerate(fresh)]
    weights_from_arrays(model, {f"w{i:02d}": w for i, w in enumerate(one_headed)})
    loaded = model.get_weights()
    for got, base in zip(loaded[:-2], one_headed[:-2], strict=True):
        np.testing.assert_array_equal(got, base)
    np.testing.assert_array_equal(loaded[-2][:, :1], one_headed[-2])
    np.testing.assert_array_equal(loaded[-2][:, 1:], fresh[-2][:, 1:])
    np.testing.assert_array_equal(loaded[-1], [one_headed[-1][0], fresh[-1][1]])
    with pytest.raises(TrainingError, match="do not fit"):
        weights_from_arrays(model, {"w00": one_headed[0]})


def test_a_fine_tuned_bundles_patches_may_disagree_as_much_as_its_bases(tuned_bundle, tmp_path):
    """However well a few calibration stacks validated, confidence falls no sooner than the
    base's did: the floor the record carries sets the scale when it is the larger."""
    copy = tmp_path / "tuned"
    shutil.copytree(tuned_bundle, copy)
    record = json.loads((copy / "record.json").read_text())
    readings = np.array([[-1.0, 1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, 1.0]])  # spread 1.4826 µm
    own = FocusModel.load(copy).combine(readings).confidence
    record["fine_tuned_from"]["patch_rmse_um"]["main"] = 50.0
    (copy / "record.json").write_text(json.dumps(record))
    floored = FocusModel.load(copy).combine(readings).confidence
    assert floored == pytest.approx(math.exp(-1.4826 / 50.0)) and floored > own


def test_a_fine_tuned_bundle_passes_new_fields_of_its_own_sample(bundle, tmp_path):
    """Its unfamiliarity limit is at least the 99th percentile of its validation frames, as
    the controller scores them: a familiarity fitted to a few stacks would refuse new fields
    of the very sample it learned (here, as on the twin, most of them score above 1)."""
    from controller.stackio import read_stack

    data = tmp_path / "beads"
    data.mkdir()
    for seed in range(4):
        write_stack(data / f"beads-{seed:03d}.ome.tif", sim_stack("beads", seed, half_range=6))
    out = tmp_path / "tuned"
    assert main(["train", str(data), "--out", str(out), "--finetune", str(bundle),
                 "--max-epochs", "2", "--validation-fraction", "0.25"]) == 0
    tuned = json.loads((out / "record.json").read_text())
    model = FocusModel.load(out)
    scores: list[float] = []
    for name in tuned["data"]["validation"]["stacks"]:
        for frame in read_stack(data / name).channel("autofocus"):
            unfamiliarity = model.predict(frame).unfamiliarity
            assert unfamiliarity is not None  # a bundle of today has a familiarity subspace
            scores.append(unfamiliarity)
    edge = float(np.percentile(scores, 99))
    assert edge > json.loads((bundle / "record.json").read_text())["confidence"][
        "max_unfamiliarity"]
    assert tuned["confidence"]["max_unfamiliarity"] == pytest.approx(edge, rel=1e-4)


def test_the_unfamiliarity_limits_are_raised_to_the_new_field_edge_never_lowered():
    """Overall and by distance: near focus, where new fields score highest, the limit is theirs;
    far from it, where they score low, it stays tighter."""
    from controller.confidence import Calibration
    from training.pipeline import familiar_to_its_own_sample

    limits = Calibration(None, 1.0, None, "defaults")
    distance = np.linspace(0.0, 30.0, 301)
    scores = np.where(distance < 2.0, 3.0, 1.5) + 0.001 * np.arange(301)
    raised = familiar_to_its_own_sample(limits, np.append(scores, np.nan),
                                        np.append(distance, 0.0))
    assert raised.max_unfamiliarity == pytest.approx(np.percentile(scores, 99))
    near, far = distance < 2.0, distance >= 20.0
    assert raised.unfamiliarity_limit(0.5) == pytest.approx(np.percentile(scores[near], 99))
    assert raised.unfamiliarity_limit(25.0) == pytest.approx(np.percentile(scores[far], 99))
    assert 1.0 < raised.unfamiliarity_limit(25.0) < raised.unfamiliarity_limit(0.5)
    assert "99th percentile of new fields of the fine-tuning's sample" in raised.calibrated_on
    assert familiar_to_its_own_sample(limits, np.full(5, 0.3), np.zeros(5)) is limits
    strict = Calibration(None, 1.0, None, "far: stricter than the fine-tuning wants to be")
    again = familiar_to_its_own_sample(strict, np.full(301, 0.3), distance)
    assert again is strict  # nothing above the inherited limit: unchanged


def test_new_fields_are_scored_by_a_familiarity_that_never_saw_them():
    """Every field of a sample sits off the others (here a field's own offset of the features):
    a familiarity fitted to some fields puts most frames of another beyond its edge, and the
    leave-one-stack-out scores cover them. Too few rows to describe the features: no scores."""
    from training.dataset import FeaturesInMemory, assemble_rows
    from training.pipeline import familiarity_of, new_field_scores

    rng = np.random.default_rng(3)
    n_features, frames, patches = 24, 30, 4
    fields = [rng.normal(size=n_features) * 1.5 for _ in range(8)]  # the 8th is a new field
    x = np.concatenate([field + rng.normal(size=(frames * patches, n_features))
                        for field in fields]).astype(np.float32)
    paper = preset("paper")
    labels = np.linspace(-10, 10, frames)

    def dataset(n_stacks: int, rows: np.ndarray) -> Any:
        return assemble_rows([(labels, labels, np.zeros(frames, bool))] * n_stacks, patches,
                             [f"s{i}" for i in range(n_stacks)], ["beads"] * n_stacks,
                             paper.optics, paper.autofocus, FeaturesInMemory(rows), [])

    identity = Standardizer(np.zeros(n_features, np.float32), np.ones(n_features, np.float32))
    train_set = dataset(7, x[:7 * frames * patches])
    own = familiarity_of(train_set, identity, seed=0)
    new_field = x[7 * frames * patches:].reshape(frames, patches, n_features)
    new = np.array([np.median(own.score(frame)) for frame in new_field])
    scores, distance = new_field_scores(train_set, identity, seed=0)
    assert scores.shape == (7 * frames,)
    np.testing.assert_allclose(distance, np.tile(np.abs(labels), 7), atol=1e-5)
    assert np.mean(new > 1.0) > 0.5  # the edge of the training rows refuses most of a new field
    assert np.mean(new > np.percentile(scores, 99)) <= 0.1
    two = dataset(2, x[:2 * frames * patches])
    assert new_field_scores(two, identity, seed=0)[0].size == 2 * frames
    assert new_field_scores(dataset(1, x[:frames * patches]), identity, seed=0)[0].size == 0
    few = two.rows_where(two.plane % 10 == 0)  # 12 rows a stack for 24 features
    assert new_field_scores(few, identity, seed=0)[0].size == 0
