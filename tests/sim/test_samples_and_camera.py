"""Samples (reproducible, realistic, multi-slice consistent) and the camera's noise statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from controller.errors import FocuslockError
from controller.optics import Led, Pattern, preset
from controller.sim import CameraModel, Imager, Sample, SimError, make_sample, render_stack

OPTICS = preset("paper").optics
PIXEL = OPTICS.pixel_um


@pytest.mark.parametrize("kind", ["sparse-cells", "dense-cells", "tissue"])
def test_samples_are_reproducible_by_seed_and_differ_between_seeds(kind):
    a = make_sample(kind, (96, 96), PIXEL, seed=3)
    b = make_sample(kind, (96, 96), PIXEL, seed=3)
    c = make_sample(kind, (96, 96), PIXEL, seed=4)
    np.testing.assert_array_equal(a.path_um, b.path_um)
    assert a.params == b.params
    assert not np.array_equal(a.path_um, c.path_um)
    assert json.loads(json.dumps(a.describe()))["params"] == a.params  # stack files need JSON


def test_sparse_cells_have_white_blood_cell_optics():
    sample = make_sample("sparse-cells", (512, 512), PIXEL, seed=1, density_per_mm2=1500.0,
                         background_opd_um=0.0, debris_per_mm2=0.0)
    opd = sample.path_um[0].real
    cells = opd > 0.02
    assert 0.05 < cells.mean() < 0.5  # sparse: most of the glass is clear
    # Peak phase of a cell of n ≈ 1.37-1.39 in water, a few µm thick: a few radians at 0.53 µm.
    peak_phase = 2 * np.pi * opd.max() / OPTICS.wavelength_um
    assert 1.5 < peak_phase < 6.0
    transmission = np.exp(-4 * np.pi * sample.path_um[0].imag / OPTICS.wavelength_um)
    assert 0.8 < transmission.min() < 1.0  # weakly absorbing
    assert sample.params["cells"] > 5


def test_tissue_absorbs_through_its_depth_and_is_focused_in_its_middle():
    tissue = make_sample("tissue", (128, 128), PIXEL, seed=2)
    assert tissue.slices == 10 and tissue.thickness_um == pytest.approx(5.0)
    absorption = tissue.path_um.imag.sum(axis=(1, 2))
    assert np.all(absorption > 0.3 * absorption.mean())  # every depth holds stained material
    assert tissue.focus_depth_um == pytest.approx(2.5, abs=0.4)


def test_a_layer_inside_a_thick_sample_images_like_the_same_thin_sample_when_focused_on_it():
    rng = np.random.default_rng(5)
    layer = (0.1 * rng.standard_normal((96, 96)) + 0.01j).astype(np.complex64)
    volume = np.zeros((6, 96, 96), dtype=np.complex64)
    volume[1] = layer  # 1.5 slices below the others: beam propagation must carry it up
    thick = Sample(volume, PIXEL, slice_um=1.0, medium_index=1.33)
    assert thick.focus_depth_um == pytest.approx(1.5)
    thin = Sample(layer[None], PIXEL)
    pattern = Pattern("tilted", (Led(0.1, 0.3),))
    for defocus in (-3.0, 0.0, 4.0):
        a = next(Imager(OPTICS, thick).planes(pattern, [defocus]))
        b = next(Imager(OPTICS, thin).planes(pattern, [defocus]))
        np.testing.assert_allclose(a, b, atol=2e-3)


def test_image_kind_turns_a_picture_into_an_amplitude_and_phase_object(tmp_path):
    from PIL import Image

    picture = np.zeros((40, 60), dtype=np.uint8)
    picture[10:30, 20:40] = 255
    path = tmp_path / "square.png"
    Image.fromarray(picture).save(path)
    sample = make_sample("image", (64, 96), PIXEL, seed=0, image=str(path), opd_um=0.2,
                         extinction_um=0.01)
    assert sample.shape == (64, 96)
    path_um = sample.path_um[0]
    assert path_um.real.max() == pytest.approx(0.2) and path_um.imag.max() == pytest.approx(0.01)
    assert path_um[32, 48] == 0  # the bright square is clear
    from_array = make_sample("image", (64, 96), PIXEL, seed=0, image=picture, opd_um=0.2,
                             extinction_um=0.01)
    np.testing.assert_allclose(from_array.path_um, sample.path_um, atol=1e-6)
    with pytest.raises(SimError, match="cannot read"):
        make_sample("image", (64, 64), PIXEL, seed=0, image=str(tmp_path / "missing.png"))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: make_sample("plankton", (64, 64), PIXEL, 1), "unknown sample kind 'plankton'"),
    (lambda: make_sample("sparse-cells", (0, 64), PIXEL, 1), "at least 8x8"),
    (lambda: make_sample("sparse-cells", (64, 64), -0.3, 1), "pixel_um must be a positive"),
    (lambda: make_sample("sparse-cells", (64, 64), PIXEL, 1, colour=3), "unknown parameters"),
    (lambda: make_sample("dense-cells", (64, 64), PIXEL, 1, height_um=-2.0), "height_um"),
    (lambda: make_sample("sparse-cells", (64, 64), PIXEL, 1, diameter_um=[12, 8]), "low <= high"),
    (lambda: make_sample("sparse-cells", (64, 64), PIXEL, 1, diameter_um="big"), "diameter_um"),
    (lambda: make_sample("sparse-cells", (64, 64), PIXEL, -1), "seed must be >= 0"),
    (lambda: render_stack(make_sample("sparse-cells", (64, 64), PIXEL, 1), []), "empty"),
    (lambda: render_stack(make_sample("sparse-cells", (64, 64), PIXEL, 1), [0.0],
                          patterns=["dpc-top"]), "unknown pattern 'dpc-top'"),
    (lambda: render_stack(make_sample("sparse-cells", (64, 64), PIXEL, 1), [0.0],
                          preset="hubble"), "unknown optics preset"),
    (lambda: CameraModel(full_well_e=0), "full_well_e"),
])
def test_bad_configurations_fail_with_a_message_naming_the_problem(call, message):
    with pytest.raises(FocuslockError, match=message):
        call()


def test_render_stack_is_deterministic_and_records_its_truth():
    sample = make_sample("dense-cells", (64, 64), PIXEL, seed=9)
    z = np.arange(-2.0, 2.5, 1.0)
    a = render_stack(sample, z, focus_z_um=0.7, seed=5)
    b = render_stack(sample, z, focus_z_um=0.7, seed=5)
    c = render_stack(sample, z, focus_z_um=0.7, seed=6)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)  # only the noise differs ...
    assert np.abs(a.images.astype(float) - c.images).mean() < 0.05 * a.images.mean()
    assert a.channel_names == ["autofocus", "dpc-bottom"]
    assert a.focus_z_um == 0.7
    assert a.metadata["sample"]["kind"] == "dense-cells" and a.metadata["sample"]["seed"] == 9
    assert a.metadata["sample"]["params"] == sample.params


@pytest.mark.parametrize("intensity", [1.0, 0.3, 0.002])
def test_camera_counts_have_the_mean_and_variance_of_shot_and_read_noise(intensity):
    camera = CameraModel(prnu=0.0, vignetting=0.0)
    frame = camera.expose(np.full((256, 256), intensity, np.float32), np.random.default_rng(1))
    assert frame.dtype == np.uint16
    electrons = intensity * camera.flux_e_per_s * camera.exposure_s \
        + camera.dark_e_per_s * camera.exposure_s
    expected_mean = camera.offset_adu + electrons / camera.e_per_adu
    expected_var = (electrons + camera.read_noise_e**2) / camera.e_per_adu**2 + 1 / 12
    assert frame.mean() == pytest.approx(expected_mean, rel=2e-3, abs=0.05)
    assert frame.var() == pytest.approx(expected_var, rel=0.03)


def test_dim_pixels_get_poisson_statistics():
    camera = CameraModel(read_noise_e=0.0, e_per_adu=1.0, offset_adu=0.0, dark_e_per_s=0.0,
                         prnu=0.0, vignetting=0.0)
    mean_e = 3.0
    flat = np.full((400, 500), mean_e / (camera.flux_e_per_s * camera.exposure_s), np.float32)
    counts = camera.expose(flat, np.random.default_rng(2)).astype(int).ravel()
    observed = np.bincount(counts, minlength=8)[:8] / counts.size
    poisson = np.exp(-mean_e) * mean_e ** np.arange(8) / np.cumprod([1, 1, 2, 3, 4, 5, 6, 7])
    np.testing.assert_allclose(observed, poisson, atol=3e-3)


def test_camera_saturates_at_full_well_and_never_exceeds_its_bit_depth():
    sixteen = CameraModel()
    bright = sixteen.expose(np.full((32, 32), 10.0, np.float32), np.random.default_rng(3))
    ceiling = round(sixteen.offset_adu + sixteen.full_well_e / sixteen.e_per_adu)
    assert bright.max() <= min(ceiling, sixteen.max_adu)
    assert bright.min() >= ceiling - 1
    twelve = CameraModel.for_bit_depth(12)
    frame = twelve.expose(np.full((32, 32), 50.0, np.float32), np.random.default_rng(3))
    assert frame.max() == 4095
    dark = twelve.expose(np.zeros((64, 64), np.float32), np.random.default_rng(3))
    assert dark.mean() == pytest.approx(twelve.offset_adu, abs=1.0)


def test_the_sensor_fixed_pattern_repeats_in_every_frame_and_corners_are_darker():
    camera = CameraModel(prnu=0.01, vignetting=0.05)
    flat = np.full((128, 128), 0.8, np.float32)
    rng = np.random.default_rng(4)
    a = np.mean([camera.expose(flat, rng) for _ in range(8)], axis=0) - camera.offset_adu
    b = np.mean([camera.expose(flat, rng) for _ in range(8)], axis=0) - camera.offset_adu
    # Shot noise averages down across frames; the fixed pattern does not.
    assert np.corrcoef((a / a.mean()).ravel(), (b / b.mean()).ravel())[0, 1] > 0.5
    assert a[:8, :8].mean() < 0.96 * a[60:68, 60:68].mean()
    other = CameraModel(prnu=0.01, vignetting=0.05, sensor_seed=1)
    c = np.mean([other.expose(flat, rng) for _ in range(8)], axis=0) - other.offset_adu

    def detail(x):
        return x - uniform_filter(x, 9, mode="wrap")

    assert abs(np.corrcoef(detail(a).ravel(), detail(c).ravel())[0, 1]) < 0.1  # another sensor
