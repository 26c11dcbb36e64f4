"""The instrument: ideal by default (bit-identical renders), drawn within its ranges and
reproducibly, recorded as JSON, and each departure does what its physics says."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from controller.errors import FocuslockError
from controller.optics import Led, Pattern, preset
from controller.sim import Imager, Sample, make_sample, render_stack
from controller.sim.camera import CAMERA_PRESETS
from controller.sim.instrument import IDEAL, Instrument, InstrumentVariation

PAPER = preset("paper")
OPTICS = PAPER.optics
PIXEL = OPTICS.pixel_um
# An incoherent ring of 24 LEDs at NA 0.3: symmetric, so no direction of detail is favoured.
RING = Pattern("ring", tuple(Led(0.3 * math.cos(a), 0.3 * math.sin(a))
                             for a in np.linspace(0, 2 * np.pi, 24, endpoint=False)))
PARAXIAL_UM_PER_WAVE = 4 * OPTICS.immersion_index * OPTICS.wavelength_um / OPTICS.na**2


def absorbers(n: int = 128, seed: int = 3) -> Sample:
    """Fine absorbing specks: an amplitude object is sharpest exactly at its plane."""
    rng = np.random.default_rng(seed)
    path = np.zeros((n, n), np.complex64)
    path[rng.integers(n, size=300), rng.integers(n, size=300)] = 0.03j
    return Sample(path[None], PIXEL)


def sharpest(planes: list[np.ndarray], z: np.ndarray, axis: str | None = None) -> float:
    """Parabola-refined plane of most detail between 0.3 and 0.9 of Nyquist (only detail that
    varies along x, or along y, when ``axis`` says so)."""
    n = planes[0].shape[0]
    fy, fx = np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]
    band = (np.hypot(fy, fx) > 0.15) & (np.hypot(fy, fx) < 0.45)
    if axis == "x":
        band &= np.abs(fy) < 0.3 * np.abs(fx)
    elif axis == "y":
        band &= np.abs(fx) < 0.3 * np.abs(fy)
    score = np.array([np.log((np.abs(np.fft.fft2(p - p.mean())) ** 2)[band].mean())
                      for p in planes])
    i = int(np.clip(np.argmax(score), 2, len(z) - 3))
    a, b, _ = np.polyfit(z[i - 2:i + 3], score[i - 2:i + 3], 2)
    return float(-b / (2 * a))


def focus_of(instrument: Instrument, axis: str | None = None,
             sample: Sample | None = None) -> float:
    """Where the ring-lit image is sharpest, in z (focus at z = 0)."""
    z = np.arange(-6.0, 6.5, 0.5)
    imager = Imager(OPTICS, sample or absorbers(), instrument=instrument)
    return sharpest(list(imager.planes(RING, -z)), z, axis)


def test_the_ideal_instrument_changes_no_bit_of_a_render():
    sample = make_sample("sparse-cells", (96, 96), PIXEL, 3, density_per_mm2=1500.0)
    z = np.arange(-3.0, 3.5, 1.5)
    plain = render_stack(sample, z, preset=PAPER, focus_z_um=0.3, seed=2)
    for instrument in (Instrument(), IDEAL.draw(7), Instrument.from_dict({})):
        assert instrument == Instrument()
        stack = render_stack(sample, z, preset=PAPER, focus_z_um=0.3, seed=2,
                             instrument=instrument)
        np.testing.assert_array_equal(stack.images, plain.images)
        assert stack.metadata["camera"] == plain.metadata["camera"]
    assert "instrument" not in plain.metadata
    assert Imager(OPTICS, sample, instrument=Instrument()).sample is sample


def test_drawn_instruments_stay_in_their_ranges_reproduce_and_record_as_json():
    variation = InstrumentVariation(cameras=("native", "cmos-12bit"))
    drawn = [variation.draw(seed) for seed in range(300)]
    assert variation.draw(11) == drawn[11] and drawn[11] != drawn[12]
    rng_draw = variation.draw(np.random.default_rng(5))
    assert rng_draw == variation.draw(np.random.default_rng(5))
    for instrument in drawn[:20]:
        record = json.loads(json.dumps(instrument.to_dict()))
        assert Instrument.from_dict(record) == instrument

    def spread(values: list[float], low: float, high: float) -> None:
        assert low <= min(values) and max(values) <= high
        assert min(values) < low + 0.1 * (high - low) and max(values) > high - 0.1 * (high - low)

    spread([c for i in drawn for c in i.led_shift_na], -0.02, 0.02)
    spread([i.led_brightness for i in drawn], 0.8, 1.2)
    spread([i.led_scatter for i in drawn], 0.0, 0.1)
    spread([math.hypot(*i.tilt_deg) for i in drawn], 0.0, 0.5)
    spread([i.spherical_waves for i in drawn], -0.25, 0.25)
    spread([math.hypot(*i.astigmatism_waves) for i in drawn], 0.0, 0.25)
    spread([math.hypot(*i.coma_waves) for i in drawn], 0.0, 0.25)
    spread([i.exposure_scale for i in drawn], 0.3, 1.2)
    spread([i.read_noise_scale for i in drawn], 1.0, 2.0)
    assert {i.camera for i in drawn} == {"native", "cmos-12bit"}
    assert len({i.sensor_seed for i in drawn}) == len(drawn)
    assert all(i.defocus_waves == 0.0 for i in drawn)


def test_a_defocus_term_moves_best_focus_by_four_c_n_lambda_over_na_squared():
    ideal = focus_of(Instrument())
    assert abs(ideal) < 0.1
    for waves in (0.25, -0.25):
        moved = focus_of(Instrument(defocus_waves=waves)) - ideal
        # paraxially 2.12 µm per quarter wave; the real sphere's edge bends it a little less
        assert moved == pytest.approx(waves * PARAXIAL_UM_PER_WAVE, rel=0.1)


def test_astigmatism_focuses_detail_along_x_and_along_y_in_two_planes():
    waves = 0.25
    x_focus = focus_of(Instrument(astigmatism_waves=(waves, 0.0)), axis="x")
    y_focus = focus_of(Instrument(astigmatism_waves=(waves, 0.0)), axis="y")
    # ρ²cos2φ is +ρ² along x and -ρ² along y: half a defocus term of each sign
    assert x_focus == pytest.approx(waves * PARAXIAL_UM_PER_WAVE / 2, abs=0.25)
    assert y_focus == pytest.approx(-waves * PARAXIAL_UM_PER_WAVE / 2, abs=0.25)
    turned = Instrument(astigmatism_waves=(-waves, 0.0))
    assert focus_of(turned, axis="x") == pytest.approx(y_focus, abs=0.1)
    diagonal = Instrument(astigmatism_waves=(0.0, waves))  # 45°: x and y alike
    assert focus_of(diagonal, axis="x") == pytest.approx(focus_of(diagonal, axis="y"), abs=0.15)


def test_spherical_aberration_moves_the_sharpest_plane_with_its_sign():
    """The balanced Zernike term focuses each ring of the pupil elsewhere (its local defocus
    c·(12ρ²−6) waves), so the sharpest plane of fine detail moves, by an amount and in a
    direction that depend on which rings form that detail: here the ring light's +0.5 µm per
    +quarter wave; under the half annulus on cells about the opposite (docs/families.md)."""
    ideal = focus_of(Instrument())
    plus = focus_of(Instrument(spherical_waves=0.25)) - ideal
    minus = focus_of(Instrument(spherical_waves=-0.25)) - ideal
    assert 0.3 < plus < 1.0 and -1.0 < minus < -0.3


def test_coma_along_x_mirrors_with_its_sign_and_leaves_y_symmetric():
    speck = np.zeros((1, 64, 64), np.complex64)
    speck[0, 32, 32] = 0.05j
    sample = Sample(speck, PIXEL)
    ideal = next(Imager(OPTICS, sample).planes(RING, [0.0]))
    plus = next(Imager(OPTICS, sample, instrument=Instrument(coma_waves=(0.25, 0.0)))
                .planes(RING, [0.0]))
    minus = next(Imager(OPTICS, sample, instrument=Instrument(coma_waves=(-0.25, 0.0)))
                 .planes(RING, [0.0]))
    assert np.abs(plus - ideal).max() > 0.05 * np.abs(1 - ideal).max()
    # a pupil phase odd in x gives images mirrored in x about the speck
    np.testing.assert_allclose(plus[:, 1:], minus[:, :0:-1], atol=2e-4)
    np.testing.assert_allclose(plus[1:, :], plus[:0:-1, :], atol=2e-4)


def test_tilt_puts_the_two_halves_of_the_field_at_their_heights():
    tilt = 2.0  # degrees about the y axis: the field rises along +x
    instrument = Instrument(tilt_deg=(tilt, 0.0))
    sample = absorbers(256, seed=4)
    tilted = Imager(OPTICS, sample, instrument=instrument).sample
    assert tilted.slices > 1 and tilted.slice_um == pytest.approx(
        OPTICS.wavelength_um / OPTICS.na**2 / 8)
    z = np.arange(-6.0, 6.5, 0.5)
    planes = list(Imager(OPTICS, sample, instrument=instrument).planes(RING, -z))
    left = sharpest([p[64:192, :128] for p in planes], z)
    right = sharpest([p[64:192, 128:] for p in planes], z)
    quarter_field_um = 256 * PIXEL / 4
    expected = 2 * quarter_field_um * math.tan(math.radians(tilt))  # ~1.45 µm apart
    assert right - left == pytest.approx(expected, abs=0.3)
    assert Imager(OPTICS, sample, instrument=Instrument(tilt_deg=(0.001, 0.0))).sample is sample


def test_led_errors_light_the_pattern_moved_and_dimmed():
    sample = make_sample("bacteria", (96, 96), PIXEL, 2, coverage=0.2)
    pattern = PAPER.pattern("dpc-bottom")
    instrument = Instrument(led_shift_na=(0.01, -0.015), led_brightness=0.8, led_scatter=0.1,
                            led_seed=4)
    lit = instrument.lit(pattern)
    factors = [b.brightness / a.brightness for a, b in zip(pattern.leds, lit.leds, strict=True)]
    assert np.mean(factors) == pytest.approx(0.8, abs=0.06)
    assert 0.03 < np.std(factors) / 0.8 < 0.2
    assert [led.na_x - 0.01 for led in lit.leds] == pytest.approx(
        [led.na_x for led in pattern.leds])
    # each LED keeps its own factor in every pattern that lights it
    first = pattern.leds[3]
    assert instrument.lit(Pattern("one", (first,))).leds[0].brightness == lit.leds[3].brightness
    seen = next(Imager(OPTICS, sample, instrument=instrument).planes(pattern, [2.0]))
    nominal_total = sum(led.brightness for led in pattern.leds)
    by_hand = next(Imager(OPTICS, sample).planes(lit, [2.0])) \
        * (sum(led.brightness for led in lit.leds) / nominal_total)
    np.testing.assert_allclose(seen, by_hand, rtol=1e-5, atol=1e-6)


def test_the_camera_preset_exposure_and_noise_reach_the_frames_and_the_record():
    sample = make_sample("red-cells", (64, 64), PIXEL, 1)
    z = [0.0, 1.0]
    plain = render_stack(sample, z, preset=PAPER, seed=3)
    instrument = Instrument(camera="cmos-12bit", exposure_scale=0.5, read_noise_scale=2.0,
                            sensor_seed=9)
    stack = render_stack(sample, z, preset=PAPER, seed=3, instrument=instrument)
    camera = CAMERA_PRESETS["cmos-12bit"]
    assert stack.metadata["camera"]["exposure_s"] == pytest.approx(camera.exposure_s * 0.5)
    assert stack.metadata["camera"]["read_noise_e"] == pytest.approx(camera.read_noise_e * 2)
    assert stack.metadata["camera"]["sensor_seed"] == 9
    assert stack.metadata["instrument"] == instrument.to_dict()
    assert stack.optics.bit_depth == 12 and stack.images.max() <= 4095
    assert plain.images.max() > 4095
    dimmer = render_stack(sample, z, preset=PAPER, seed=3,
                          instrument=Instrument(exposure_scale=0.5))
    signal = [(s.images.astype(float) - s.metadata["camera"]["offset_adu"]).mean()
              for s in (plain, dimmer)]
    assert signal[1] / signal[0] == pytest.approx(0.5, rel=0.02)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Instrument(led_shift_na=(0.3, 0.0)), "led_shift_na must be within 0.2"),
    (lambda: Instrument(tilt_deg=(20.0, 0.0)), "tilt_deg must be within 10"),
    (lambda: Instrument(spherical_waves=float("nan")), "spherical_waves must be within"),
    (lambda: Instrument(led_brightness=0.0), "led_brightness must be a positive number"),
    (lambda: Instrument(camera="hubble"), "unknown camera 'hubble'"),
    (lambda: Instrument(coma_waves=(1.0,)), "coma_waves must be a pair"),  # type: ignore[arg-type]
    (lambda: Instrument.from_dict({"tilt": 1}), r"unknown fields \['tilt'\]"),
    (lambda: InstrumentVariation(exposure_scale=(2.0, 1.0)), "exposure_scale must be 0 < low"),
    (lambda: InstrumentVariation(cameras=()), "name at least one camera"),
    (lambda: InstrumentVariation(coma_waves=9.0), "coma_waves must be within 5"),
])
def test_impossible_instruments_are_refused_naming_the_problem(make, message):
    with pytest.raises(FocuslockError, match=message):
        make()


def test_an_instrument_is_a_frozen_value():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Instrument().led_brightness = 2.0  # type: ignore[misc]
