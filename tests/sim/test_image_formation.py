"""Physics of the virtual microscope's image formation: each test fails on a wrong model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller.optics import Led, Optics, Pattern, preset
from controller.sim import (
    Imager,
    ImagingSettings,
    Sample,
    SimError,
    make_sample,
    propagate,
    render_stack,
)

OPTICS = preset("paper").optics  # 20x/0.5 dry, λ 0.53 µm, 0.325 µm pixels at the sample
PIXEL = OPTICS.pixel_um
N = 128


def coherent(na_x: float, na_y: float) -> Pattern:
    return Pattern("coherent", (Led(na_x, na_y),))


def image(sample: Sample, pattern: Pattern, defocus_um: float,
          settings: ImagingSettings | None = None) -> np.ndarray:
    return next(Imager(OPTICS, sample, settings).planes(pattern, [defocus_um]))


def blobs(n: int, count: int, sigma_um: float, seed: int) -> np.ndarray:
    """Smooth periodic Gaussian blobs (peak 1) at random places."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n] * PIXEL
    out = np.zeros((n, n))
    size = n * PIXEL
    for cy, cx in rng.uniform(0, size, (count, 2)):
        dy = (y - cy + size / 2) % size - size / 2
        dx = (x - cx + size / 2) % size - size / 2
        out += np.exp(-(dy**2 + dx**2) / (2 * sigma_um**2))
    return out


def thin(path: np.ndarray) -> Sample:
    return Sample(path.astype(np.complex64)[None], PIXEL)


def test_phase_object_shows_contrast_only_out_of_focus_and_it_reverses_with_the_sign():
    opd = thin(0.02 * blobs(N, 6, 1.5, seed=1))  # weak, smooth phase object (0.24 rad)
    on_axis = coherent(0.0, 0.0)
    focused = image(opd, on_axis, 0.0)
    above, below = image(opd, on_axis, -4.0), image(opd, on_axis, 4.0)
    assert focused.std() < 0.005
    assert above.std() > 10 * focused.std()
    assert below.std() > 10 * focused.std()
    correlation = np.corrcoef((above - 1).ravel(), (below - 1).ravel())[0, 1]
    assert correlation < -0.95


def test_optically_thicker_blob_focuses_light_downstream_as_the_sign_convention_says():
    # A blob of higher index is a weak positive lens: light converges after it, towards the
    # objective. D = z_focus - z < 0 means the drive is above focus, so the camera sees the field
    # |D| downstream of the sample: bright centres. Above the focus they turn dark.
    path = 0.02 * blobs(N, 1, 1.5, seed=2)
    centre = np.unravel_index(np.argmax(path), path.shape)
    sample = thin(path)
    assert image(sample, coherent(0, 0), -3.0)[centre] > 1.03
    assert image(sample, coherent(0, 0), +3.0)[centre] < 0.97


@pytest.mark.parametrize(("na_x", "na_y", "defocus"), [
    (0.0, 0.3, 10.0), (0.0, 0.3, -10.0), (0.25, 0.0, 12.0), (-0.2, 0.2, -8.0),
])
def test_off_axis_light_shifts_a_defocused_image_by_defocus_times_tan_theta(na_x, na_y, defocus):
    absorber = thin(0.2j * blobs(N, 8, 0.8, seed=3))
    pattern = coherent(na_x, na_y)
    reference = 1.0 - image(absorber, pattern, 0.0)
    moved = 1.0 - image(absorber, pattern, defocus)
    xcorr = np.fft.ifft2(np.fft.fft2(moved) * np.conj(np.fft.fft2(reference))).real
    peak = np.array(np.unravel_index(np.argmax(xcorr), xcorr.shape), dtype=float)
    peak = (peak + N / 2) % N - N / 2  # signed shift in pixels (rows, cols)
    # The image at D is the field propagated by -D along the light's direction of travel.
    cos_theta = math.sqrt(1.0 - na_x**2 - na_y**2)
    expected = -defocus * np.array([na_y, na_x]) / cos_theta / PIXEL
    np.testing.assert_allclose(peak, expected, atol=1.0)


def two_circle_region(na_ill: tuple[float, float], margin: float) -> np.ndarray:
    ky = np.fft.fftfreq(N, d=PIXEL)[:, None]
    kx = np.fft.fftfreq(N, d=PIXEL)[None, :]
    radius = OPTICS.na / OPTICS.wavelength_um + margin
    cy, cx = na_ill[1] / OPTICS.wavelength_um, na_ill[0] / OPTICS.wavelength_um
    first = (ky - cy) ** 2 + (kx - cx) ** 2 <= radius**2
    second = (ky + cy) ** 2 + (kx + cx) ** 2 <= radius**2
    return np.asarray(first | second)


def test_off_axis_coherent_spectrum_fills_the_two_circles_of_na_and_illumination_na():
    rng = np.random.default_rng(4)
    texture = rng.standard_normal((N, N)) + 1j * rng.standard_normal((N, N))
    sample = thin(0.004 * texture)  # weak object with detail at every frequency
    na_ill = (0.0, 0.3)
    intensity = image(sample, coherent(*na_ill), 0.0)
    power = np.abs(np.fft.fft2(intensity - intensity.mean())) ** 2
    dk = 1.0 / (N * PIXEL)
    inside = two_circle_region(na_ill, margin=1.5 * dk)
    assert power[inside].sum() > 0.99 * power.sum()  # nothing outside (but 2nd-order terms)
    core = two_circle_region(na_ill, margin=-2.0 * dk)
    core[0, 0] = False
    assert np.mean(power[core] > 0.01 * np.median(power[core])) > 0.99  # and all of it is lit
    # The lit region is no larger: a spectrum centred on zero would spill outside the circles.
    assert inside.sum() < 0.6 * (np.pi * (2 * OPTICS.na / OPTICS.wavelength_um / dk) ** 2)


def test_led_outside_the_objective_na_gives_a_dark_background_with_bright_objects():
    clear = thin(np.zeros((N, N)))
    assert image(clear, coherent(0.0, 0.6), 0.0).max() < 1e-6
    assert image(clear, coherent(0.0, 0.45), 0.0).min() > 0.999
    cells = thin(0.05 * blobs(N, 5, 1.0, seed=5))
    dark = image(cells, coherent(0.0, 0.6), 0.0)
    assert np.median(dark) < 0.01
    assert dark.max() > 20 * np.median(dark) + 1e-3


def test_angular_spectrum_propagation_conserves_energy_and_reverses():
    rng = np.random.default_rng(6)
    field = (rng.standard_normal((N, N)) + 1j * rng.standard_normal((N, N))).astype(np.complex64)
    ky = np.fft.fftfreq(N, d=PIXEL)[:, None]
    kx = np.fft.fftfreq(N, d=PIXEL)[None, :]
    propagating = ky**2 + kx**2 < (1.0 / OPTICS.wavelength_um) ** 2
    field = np.fft.ifft2(np.fft.fft2(field) * propagating).astype(np.complex64)
    moved = propagate(field, 7.3, PIXEL, OPTICS.wavelength_um)
    energy = np.sum(np.abs(field) ** 2)
    assert np.sum(np.abs(moved) ** 2) == pytest.approx(energy, rel=1e-5)
    assert np.abs(moved - field).max() > 0.1  # it did propagate
    back = propagate(moved, -7.3, PIXEL, OPTICS.wavelength_um)
    np.testing.assert_allclose(back, field, atol=1e-4)


def test_brightfield_of_a_clear_sample_is_uniform_at_any_defocus_and_bandwidth():
    clear = thin(np.zeros((N, N)))
    broad = ImagingSettings(bandwidth_um=0.03, wavelengths=3, led_radius_na=0.01, led_points=5)
    for defocus in (-20.0, 0.0, 15.0):
        lit = image(clear, preset("paper").ground_truth, defocus, broad)
        assert np.ptp(lit) < 1e-4
        # Sub-sources of the outermost LEDs (NA 0.49) fall outside the 0.5 pupil: a little less
        # than all the light gets through.
        assert 0.99 < lit.mean() < 1.0


def sharpness(planes: np.ndarray) -> np.ndarray:
    """Mean log radial power in the upper half of the frequency range, per plane: the
    paper's ground-truth measure, in the band least biased by strong phase objects."""
    n = planes.shape[1]
    power = np.abs(np.fft.fft2(planes - planes.mean(axis=(1, 2), keepdims=True))) ** 2
    radius = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    ring = np.minimum((radius * n).astype(int), n // 2)
    counts = np.bincount(ring.ravel(), minlength=n // 2 + 1)
    radial = np.array([np.bincount(ring.ravel(), p.ravel(), minlength=n // 2 + 1) / counts
                       for p in power])
    return np.asarray(np.log(radial[:, n // 4:n // 2]).mean(axis=1))


@pytest.mark.parametrize(("kind", "focus_z"), [("sparse-cells", 1.0), ("dense-cells", -1.0),
                                               ("tissue", 0.0)])
def test_half_annulus_stack_is_sharpest_at_the_true_focal_plane(kind, focus_z):
    system = preset("paper")
    params = {"density_per_mm2": 1500.0} if kind == "sparse-cells" else {}
    sample = make_sample(kind, (N * 2, N * 2), PIXEL, seed=7, **params)
    z = np.arange(-6.0, 7.0, 1.0)
    stack = render_stack(sample, z, preset=system, patterns=["dpc-bottom"], focus_z_um=focus_z,
                         seed=1)
    score = sharpness(stack.channel("dpc-bottom").astype(np.float64))
    peak = int(np.argmax(score))
    assert z[peak] == focus_z
    a, b, _ = np.polyfit(z[peak - 2:peak + 3], score[peak - 2:peak + 3], 2)
    assert abs(-b / (2 * a) - focus_z) < 0.4  # strong phase objects bias it by tenths of a µm


def test_oversampled_grid_integrates_pixels_and_agrees_with_the_camera_grid():
    coarse_optics = OPTICS
    path = 0.03 * blobs(N, 6, 1.5, seed=8)
    fine_path = np.kron(path, np.ones((2, 2)))  # the same smooth object on a 2x finer grid
    fine = Sample(fine_path.astype(np.complex64)[None], PIXEL / 2)
    pattern = coherent(0.0, 0.3)
    a = next(Imager(coarse_optics, thin(path)).planes(pattern, [3.0]))
    b = next(Imager(coarse_optics, fine).planes(pattern, [3.0]))
    assert b.shape == a.shape
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98
    with pytest.raises(SimError, match="whole number"):
        Imager(coarse_optics, Sample(fine_path.astype(np.complex64)[None], PIXEL / 1.5))


@pytest.mark.parametrize("oversample", [1, 2])
def test_camera_pixels_integrate_over_their_area(oversample):
    # A weak amplitude grating under on-axis light images as 1 + 2ε cos(2πfx); square pixels of
    # width p pass that modulation times sinc(f·p) (0.89 here), point samples would pass all.
    n = N * oversample
    grid = PIXEL / oversample
    cycles = 33
    frequency = cycles / (N * PIXEL)  # 0.79 cycles/µm, inside the pupil's 0.94
    x = np.arange(n) * grid
    epsilon = 0.01
    amplitude = 1 + epsilon * np.cos(2 * np.pi * frequency * x)
    grating = Sample(np.broadcast_to(np.log(amplitude) / (2j * np.pi) * OPTICS.wavelength_um,
                                     (1, n, n)).astype(np.complex64), grid)
    frame = next(Imager(OPTICS, grating).planes(coherent(0, 0), [0.0]))
    profile = frame.mean(axis=0)
    measured = 2 * np.abs(np.fft.rfft(profile)[cycles]) / N
    assert measured / (2 * epsilon) == pytest.approx(np.sinc(frequency * PIXEL), rel=0.01)


def test_the_pupil_follows_the_objective_na():
    # A grating of period p diffracts to NA λ/p: it is imaged when that is inside the NA.
    period_um = OPTICS.wavelength_um / 0.4
    y = np.arange(N) * PIXEL
    cycles = round(N * PIXEL / period_um)
    grating = 0.01 * np.cos(2 * np.pi * cycles * y / (N * PIXEL))[:, None] * np.ones((1, N))
    wide = image(thin(grating + 0.02j), coherent(0, 0), 0.8)
    narrow_optics = Optics(na=0.3, magnification=OPTICS.magnification,
                           camera_pixel_um=OPTICS.camera_pixel_um)
    narrow = next(Imager(narrow_optics, thin(grating + 0.02j)).planes(coherent(0, 0), [0.8]))
    assert wide.std() > 0.002
    assert narrow.std() < 1e-4


def fine_detail(intensity: np.ndarray) -> float:
    """rms of the image's spectrum above 0.15 cycles/pixel (the fringes, not the shadow)."""
    ky, kx = np.meshgrid(np.fft.fftfreq(N), np.fft.fftfreq(N), indexing="ij")
    spectrum = np.fft.fft2(intensity - intensity.mean()) * (np.hypot(ky, kx) > 0.15)
    return float(np.sqrt(np.sum(np.abs(spectrum) ** 2)))


@pytest.mark.parametrize(("settings", "far_ratio"), [
    (ImagingSettings(bandwidth_um=0.06, wavelengths=5), 0.8),  # temporal coherence
    (ImagingSettings(led_radius_na=0.03, led_points=7), 0.5),  # spatial coherence
])
def test_spectral_bandwidth_and_led_size_wash_out_far_defocus_fringes(settings, far_ratio):
    # The fringes around a small object far from focus blur when the LED has a spectrum or a
    # size; in focus the image hardly changes.
    dot = thin(0.3j * blobs(N, 1, 0.4, seed=9))
    pattern = coherent(0.0, 0.2)
    far = fine_detail(image(dot, pattern, 40.0, settings)) / fine_detail(image(dot, pattern, 40.0))
    near = fine_detail(image(dot, pattern, 0.0, settings)) / fine_detail(image(dot, pattern, 0.0))
    assert far < far_ratio
    assert 0.9 < near < 1.1
