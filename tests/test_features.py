"""The spectrum features: what they measure, what they ignore, and clear errors."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from controller.features import FeatureError, FeatureSpec, Standardizer, featurize

PLAIN = FeatureSpec(pool_y=2, pool_x=2, log=False)  # the physics is easier to read without log


def _grating(shape, cycles_y, cycles_x, contrast=100.0, mean=1000.0):
    """A cosine with a whole number of cycles per 512-pixel patch along y and x."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    phase = 2 * np.pi * (cycles_y * y / 512 + cycles_x * x / 512)
    return (mean + contrast * np.cos(phase)).astype(np.float32)


def test_grating_lights_the_feature_of_its_frequency():
    spec = PLAIN
    f = featurize(_grating((512, 512), cycles_y=20, cycles_x=6), spec)[0, 0]
    grid = f.reshape(spec.rows_kept, spec.cols_kept)
    row, col = np.unravel_index(np.argmax(grid), grid.shape)
    # rows run from f_y = -half to +half - 1 in pools of 2; columns from f_x = 0 in pools of 2
    assert (row, col) == ((spec.half_rows + 20) // 2, 6 // 2)
    assert grid[row, col] > 0.9  # almost all of the unit norm sits in that one feature


def test_negative_y_frequency_is_mirrored_not_lost():
    spec = PLAIN
    grid = featurize(_grating((512, 512), -20, 6), spec)[0, 0].reshape(spec.rows_kept,
                                                                        spec.cols_kept)
    assert np.unravel_index(np.argmax(grid), grid.shape) == ((spec.half_rows - 20) // 2, 3)


def test_frequencies_outside_the_crop_are_ignored():
    spec = PLAIN
    inside = _grating((512, 512), 20, 6)
    beyond_y = _grating((512, 512), 154, 6, contrast=500.0, mean=0.0)  # f_y 0.3 > crop_y 0.1
    # f_x = 0.25 sits on the first zero of the 4-pixel box: binning removes it before aliasing
    on_box_zero = _grating((512, 512), 20, 128, contrast=500.0, mean=0.0)
    np.testing.assert_allclose(featurize(inside + beyond_y + on_box_zero, spec),
                               featurize(inside, spec), atol=2e-3)


def test_features_ignore_exposure_and_black_level():
    rng = np.random.default_rng(1)
    frame = rng.integers(200, 3000, size=(1024, 1024)).astype(np.uint16)
    spec = PLAIN
    base = featurize(frame, spec)
    brighter = featurize((frame.astype(np.float32) * 3 + 500), spec)
    np.testing.assert_allclose(brighter, base, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(base, axis=-1), 1.0, rtol=1e-5)


def test_unit_mean_normalisation():
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 4000, size=(512, 512)).astype(np.uint16)
    f = featurize(frame, FeatureSpec(normalisation="mean", log=False))
    assert f.mean() == pytest.approx(1.0, rel=1e-5)


def test_log_of_the_normalised_magnitudes():
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 4000, size=(512, 512)).astype(np.uint16)
    plain = featurize(frame, FeatureSpec(log=False))
    np.testing.assert_allclose(featurize(frame, FeatureSpec(log=True)), np.log(plain + 1e-6),
                               rtol=1e-6)


def test_matches_the_plain_definition_without_binning_or_pooling():
    """Paper definition: |rfft2(patch - mean)|, rows ±crop_y, columns [0, crop_x), unit norm."""
    spec = FeatureSpec(patch=256, bin_x=1, crop_y=0.1, crop_x=0.05, pool_y=1, pool_x=1, log=False)
    rng = np.random.default_rng(3)
    frame = rng.normal(1000, 50, size=(256, 256))
    spectrum = np.abs(np.fft.rfft2(frame - frame.mean()))
    h, c = spec.half_rows, spec.cols_kept
    expected = np.concatenate((spectrum[-h:, :c], spectrum[:h, :c])).ravel()
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(featurize(frame, spec)[0, 0], expected, atol=2e-6)


def test_binning_keeps_the_kept_band():
    """Summing 4 pixels along x changes the low x frequencies only by the box's gentle roll-off,
    for an image whose spectrum falls with frequency like a microscope's (white noise would
    alias into the kept band: its correlation is 0.95)."""
    rng = np.random.default_rng(4)
    frame = 1000 + gaussian_filter(rng.normal(0, 50, size=(512, 512)), 2.0, mode="wrap")
    binned = featurize(frame, FeatureSpec(bin_x=4, log=False))
    plain = featurize(frame, FeatureSpec(bin_x=1, log=False))
    assert np.corrcoef(binned.ravel(), plain.ravel())[0, 1] > 0.99


def test_patch_grid_is_centred_and_batched():
    spec = FeatureSpec(patch=256)
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 4000, size=(3, 600, 800)).astype(np.uint16)
    out = featurize(frames, spec)
    assert out.shape == (3, 2 * 3, spec.n_features) and out.dtype == np.float32
    # patch (0, 0) starts at the centred offset (44, 16). A batch of 6 and a single patch run
    # different FFTW plans (FFTW_MEASURE picks by timing), which may round differently in the
    # last bit of float32, so equal means equal to float32 precision; a patch shifted by even
    # one pixel differs by orders of magnitude more.
    np.testing.assert_allclose(out[1, 0], featurize(frames[1, 44:300, 16:272], spec)[0, 0],
                               rtol=1e-6, atol=0)


def test_blank_patch_gives_a_constant_not_nan():
    assert np.all(featurize(np.full((512, 512), 1234, np.uint16), PLAIN) == 0)
    logged = featurize(np.full((512, 512), 1234, np.uint16), FeatureSpec(log=True))
    assert np.all(logged == np.float32(np.log(np.float32(1e-6))))


def test_frame_smaller_than_a_patch_is_refused():
    with pytest.raises(FeatureError, match="smaller than one 512x512"):
        featurize(np.zeros((300, 700), np.uint16), FeatureSpec())


@pytest.mark.parametrize("bad, match", [
    ({"bin_x": 3}, "not a multiple"),
    ({"crop_x": 0.2}, "binning 4 pixels"),
    ({"crop_y": 0.7}, "crop_y"),
    ({"normalisation": "max"}, "normalisation"),
    ({"patch": 0}, "positive integer"),
])
def test_impossible_specs_are_refused(bad, match):
    with pytest.raises(FeatureError, match=match):
        FeatureSpec(**bad)


def test_spec_round_trip_and_unknown_keys():
    spec = FeatureSpec(patch=256, crop_y=0.1)
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(FeatureError, match="unknown keys"):
        FeatureSpec.from_dict({**spec.to_dict(), "window": "hann"})


def test_standardizer_freezes_training_statistics():
    rng = np.random.default_rng(6)
    train = rng.normal(5.0, 2.0, size=(1000, 3)).astype(np.float32)
    train[:, 2] = 7.0  # a constant feature must not divide by zero
    s = Standardizer.fit(train)
    z = s.apply(train)
    np.testing.assert_allclose(z[:, :2].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :2].std(axis=0), 1, atol=1e-4)
    assert np.all(z[:, 2] == 0)
    back = Standardizer.from_dict(s.to_dict())
    np.testing.assert_array_equal(back.apply(train), z)
    with pytest.raises(FeatureError, match="4 features given, 3 expected"):
        s.apply(np.zeros((2, 4), np.float32))
