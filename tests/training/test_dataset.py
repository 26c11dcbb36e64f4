"""From a folder of stack files to a featurised dataset: labels, caching, bad files, splits."""

import dataclasses
import shutil

import numpy as np
import pytest

from controller.features import FeatureSpec, featurize
from controller.optics import Led, Pattern, preset
from controller.sim.imaging import Imager
from controller.sim.samples import make_sample
from controller.stackio import FocalStack, read_stack, write_stack
from tests.conftest import sim_stack
from training.dataset import DatasetError, featurize_stack, load_dataset, mirror_symmetric

SPEC = FeatureSpec(patch=256)


@pytest.fixture
def small_dir(tmp_path, train_dir):
    folder = tmp_path / "data"
    folder.mkdir()
    for path in sorted(train_dir.glob("*.ome.tif"))[:4]:  # not the feature cache beside them
        shutil.copy(path, folder / path.name)
    return folder


def test_training_features_are_the_controllers_features(train_dir):
    """Same bytes in, same vector out: the dataset uses the controller's function unchanged."""
    path = sorted(train_dir.glob("*.ome.tif"))[0]
    frames = read_stack(path).channel("autofocus")
    np.testing.assert_array_equal(featurize_stack(path, SPEC).features, featurize(frames, SPEC))


def test_labels_are_the_correction_from_the_ground_truth(small_dir):
    data = load_dataset(small_dir, SPEC, progress=False)
    stack = read_stack(small_dir / data.names[0])
    rows = data.stack == 0
    # defocus_um = z_focus - z: positive where the plane is below focus, one label per plane
    expected = stack.focus_z_um - stack.z_um
    np.testing.assert_allclose(data.true_defocus_um[rows], expected, atol=1e-5)
    assert np.max(np.abs(data.defocus_um[rows] - expected)) < 0.5
    assert data.features.shape == (4 * stack.z_um.size, SPEC.n_features)


def test_cache_gives_the_same_dataset(small_dir):
    first = load_dataset(small_dir, SPEC, progress=False)
    assert len(list((small_dir / ".features").glob("*.npz"))) == 4
    again = load_dataset(small_dir, SPEC, progress=False)
    np.testing.assert_array_equal(first.features, again.features)
    np.testing.assert_array_equal(first.defocus_um, again.defocus_um)


def test_bad_stacks_are_reported_and_skipped(small_dir, caplog):
    good = sorted(small_dir.glob("*.ome.tif"))
    data = good[0].read_bytes()
    (small_dir / "truncated.ome.tif").write_bytes(data[: len(data) // 3])
    stack = read_stack(good[1])
    write_stack(small_dir / "no-dpc.ome.tif",
                FocalStack(stack.images[:1], stack.z_um, stack.channels[:1], stack.optics))
    result = load_dataset(small_dir, SPEC, progress=False)
    reasons = dict(result.skipped)
    assert set(reasons) == {"truncated.ome.tif", "no-dpc.ome.tif"}
    assert "no incoherent ground-truth channel" in reasons["no-dpc.ome.tif"]
    assert "truncated.ome.tif: not an OME-TIFF" in reasons["truncated.ome.tif"]
    assert len(result.names) == 4
    assert "skipped truncated.ome.tif" in caplog.text


def test_folder_of_only_bad_stacks_is_an_error(tmp_path):
    write_stack(tmp_path / "empty.ome.tif",
                sim_stack("sparse-cells", 1, params={"density_per_mm2": 1e-3,
                                                      "debris_per_mm2": 0.0}))
    with pytest.raises(DatasetError, match=r"none of 1 stack files is usable \(first problem: "
                                           r"empty.ome.tif: "):
        load_dataset(tmp_path, SPEC, progress=False)


def test_empty_and_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="no focal-stack files"):
        load_dataset(tmp_path, SPEC, progress=False)
    with pytest.raises(DatasetError, match="no such data folder"):
        load_dataset(tmp_path / "nowhere", SPEC, progress=False)


def test_split_keeps_whole_stacks_apart(train_dir):
    data = load_dataset(train_dir, SPEC, progress=False)
    train, val = data.split(0.25, seed=1)
    assert set(np.unique(train.stack)).isdisjoint(np.unique(val.stack))
    assert np.unique(val.stack).size == 8 and np.unique(train.stack).size == 24
    assert train.features.shape[0] + val.features.shape[0] == data.features.shape[0]


def test_mirrored_frame_is_the_frame_of_the_mirrored_sample():
    """The premise of mirror augmentation: with the LED on the y axis, imaging commutes with
    x -> -x, so a mirrored frame is a real frame of another (mirrored) sample."""
    p = preset("paper")
    sample = make_sample("dense-cells", (128, 128), 0.325, 3)
    flipped = dataclasses.replace(sample, path_um=sample.path_um[:, :, ::-1].copy())
    frame = next(Imager(p.optics, sample).planes(p.autofocus, [7.0]))
    of_flipped = next(Imager(p.optics, flipped).planes(p.autofocus, [7.0]))
    np.testing.assert_allclose(of_flipped, frame[:, ::-1], rtol=1e-3, atol=1e-4)
    assert mirror_symmetric(p.autofocus)
    assert not mirror_symmetric(p.leds.single(0.2, 0.3))


def test_mirror_adds_flagged_copies_for_training_only(small_dir):
    plain = load_dataset(small_dir, SPEC, progress=False)
    both = load_dataset(small_dir, SPEC, mirror=True, progress=False)
    assert both.features.shape[0] == 2 * plain.features.shape[0]
    originals = both.originals()
    np.testing.assert_array_equal(originals.features, plain.features)
    np.testing.assert_array_equal(originals.defocus_um, plain.defocus_um)
    path = small_dir / both.names[0]
    frames = read_stack(path).channel("autofocus")
    mirrored = both.features[both.mirrored & (both.stack == 0)]
    np.testing.assert_array_equal(mirrored, featurize(frames[:, :, ::-1], SPEC).reshape(
        -1, SPEC.n_features))


def test_mirror_is_refused_for_an_asymmetric_pattern(tmp_path):
    p = preset("paper")
    stack = sim_stack("dense-cells", 2)
    tilted = FocalStack(stack.images, stack.z_um,
                        (Pattern("autofocus", (Led(0.2, 0.3),)), stack.channels[1]), stack.optics)
    write_stack(tmp_path / "tilted.ome.tif", tilted)
    assert p.autofocus.name == "autofocus"
    with pytest.raises(DatasetError, match="not symmetric under x -> -x"):
        load_dataset(tmp_path, SPEC, mirror=True, progress=False)


def test_a_simulated_stack_on_a_given_instrument_is_the_one_its_seed_would_draw():
    """One microscope for every stack (a box's calibration) renders as the drawn instrument of
    the same seed does; asking for both is refused."""
    from controller.sim.instrument import InstrumentVariation
    from training.datagen import simulated_stack

    system, z, variation = preset("paper"), np.arange(-2.0, 3.0), InstrumentVariation()
    drawn = simulated_stack("beads", 5, 64, system, z, variation=variation)
    given = simulated_stack("beads", 5, 64, system, z, instrument=variation.draw(5))
    np.testing.assert_array_equal(given.images, drawn.images)
    assert given.metadata["instrument"] == drawn.metadata["instrument"]
    with pytest.raises(ValueError, match="not both"):
        simulated_stack("beads", 5, 64, system, z, variation=variation,
                        instrument=variation.draw(5))
