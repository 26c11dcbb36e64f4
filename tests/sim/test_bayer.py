"""The Bayer colour camera: the raw mosaic's layout, each site's signal and noise, cross-talk."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from controller.errors import FocuslockError
from controller.optics import WS2812_GREEN_UM, Pattern, preset
from controller.sim import CameraModel, Imager, Sample
from controller.sim.bayer import (
    FILTER_COLOURS,
    IMX477_RESPONSE,
    BayerFilter,
    SpectralResponse,
    site_offsets,
)

COLOUR = preset("pi-hq-colour")
OPTICS = COLOUR.optics
assert COLOUR.parallax is not None
RED, BLUE = COLOUR.parallax.first, COLOUR.parallax.second
N = 256
# The response at the WS2812 peaks as docs/simulator.md gives it (colour -> R, G, B sites).
DOCUMENTED = {0.625: (0.84, 0.105, 0.03), 0.525: (0.055, 0.98, 0.17),
              0.465: (0.03, 0.22, 0.765)}


def clear(n: int = N) -> Sample:
    """No sample: the unobstructed brightfield."""
    return Sample(np.zeros((1, n, n), dtype=np.complex64), OPTICS.pixel_um)


def flat_sensor() -> CameraModel:
    """The Pi HQ class sensor without its fixed pattern, so every site of a colour is alike."""
    return dataclasses.replace(CameraModel.for_bit_depth(OPTICS.bit_depth), prnu=0.0,
                               vignetting=0.0)


def site_means(frame: np.ndarray, layout: str) -> dict[str, float]:
    return {c: float(np.mean([frame[r::2, k::2].mean() for r, k in site_offsets(layout, c)]))
            for c in FILTER_COLOURS}


@pytest.mark.parametrize(("layout", "red", "greens", "blue"), [
    ("RGGB", (0, 0), ((0, 1), (1, 0)), (1, 1)),
    ("BGGR", (1, 1), ((0, 1), (1, 0)), (0, 0)),
    ("GRBG", (0, 1), ((0, 0), (1, 1)), (1, 0)),
    ("GBRG", (1, 0), ((0, 0), (1, 1)), (0, 1)),
])
def test_the_layout_names_the_top_left_cell_and_a_flat_field_shows_each_filters_response(
        layout, red, greens, blue):
    assert site_offsets(layout, "R") == (red,)
    assert site_offsets(layout, "G") == greens
    assert site_offsets(layout, "B") == (blue,)
    # Red and blue LEDs of equal brightness over an empty field: every site of one colour
    # receives half of each LED's light weighed by its filter's response, and nothing varies
    # but the 2x2 cell.
    cfa = BayerFilter(layout)
    mosaic = cfa.mosaic(Imager(OPTICS, clear()).colour_planes(COLOUR.pattern("parallax"), 3.0))
    assert mosaic.shape == (N, N) and mosaic.dtype == np.float32
    for colour, offsets in (("R", (red,)), ("G", greens), ("B", (blue,))):
        expected = 0.5 * (IMX477_RESPONSE(colour, 0.625) + IMX477_RESPONSE(colour, 0.465))
        for r, c in offsets:
            np.testing.assert_allclose(mosaic[r::2, c::2], expected, atol=1e-5)


GREEN = Pattern("green", tuple(dataclasses.replace(led, wavelength_um=WS2812_GREEN_UM)
                              for led in COLOUR.pattern("parallax").leds))


@pytest.mark.parametrize("lit", [COLOUR.pattern("parallax"), GREEN], ids=["red+blue", "green"])
def test_each_sites_counts_have_the_mean_and_variance_of_its_signal_and_shot_noise(lit):
    sensor = flat_sensor()
    cfa = BayerFilter.for_optics(OPTICS)
    assert cfa is not None and cfa.layout == "RGGB"
    intensity = cfa.mosaic(Imager(OPTICS, clear(512)).colour_planes(lit, 0.0))
    frame = sensor.expose(intensity, np.random.default_rng(5))
    assert frame.dtype == np.uint16 and frame.shape == (512, 512)
    shares = [(led.brightness / sum(x.brightness for x in lit.leds),
               led.wavelength_um or OPTICS.wavelength_um) for led in lit.leds]
    for colour in FILTER_COLOURS:
        relative = sum(share * IMX477_RESPONSE(colour, w) for share, w in shares)
        electrons = (relative * sensor.flux_e_per_s * sensor.exposure_s
                     + sensor.dark_e_per_s * sensor.exposure_s)
        for r, c in site_offsets(cfa.layout, colour):
            counts = frame[r::2, c::2]
            assert counts.mean() == pytest.approx(
                sensor.offset_adu + electrons / sensor.e_per_adu, rel=2e-3)
            assert counts.var() == pytest.approx(
                (electrons + sensor.read_noise_e**2) / sensor.e_per_adu**2 + 1 / 12, rel=0.04)


@pytest.mark.parametrize("wavelength", sorted(DOCUMENTED))
def test_one_colour_alone_lights_its_sites_and_leaks_into_the_others_as_documented(wavelength):
    sensor = flat_sensor()
    cfa = BayerFilter(OPTICS.colour_filter)
    lit = Pattern("one", (dataclasses.replace(RED, wavelength_um=wavelength),))
    frame = sensor.expose(cfa.mosaic(Imager(OPTICS, clear()).colour_planes(lit, 0.0)),
                          np.random.default_rng(6))
    dark = sensor.offset_adu + sensor.dark_e_per_s * sensor.exposure_s / sensor.e_per_adu
    full = sensor.flux_e_per_s * sensor.exposure_s / sensor.e_per_adu  # counts at response 1
    means = site_means(frame, cfa.layout)
    for colour, documented in zip(FILTER_COLOURS, DOCUMENTED[wavelength], strict=True):
        assert (means[colour] - dark) / full == pytest.approx(documented, abs=0.004)


def test_colour_planes_add_up_to_the_monochrome_frame_and_colours_add_incoherently():
    rng = np.random.default_rng(7)
    texture = (0.05 * rng.standard_normal((N, N)) + 0.01j).astype(np.complex64)[None]
    imager = Imager(OPTICS, Sample(texture, OPTICS.pixel_um))
    both = Pattern("both", (RED, dataclasses.replace(BLUE, brightness=3.0)))
    planes = imager.colour_planes(both, 4.0)
    assert sorted(planes) == [0.465, 0.625]
    (mono,) = imager.planes(both, [4.0])
    np.testing.assert_allclose(planes[0.625] + planes[0.465], mono, atol=1e-5)
    # Two colours do not interfere: each plane is its LED's image alone, weighed by its share.
    (red_alone,) = imager.planes(Pattern("red", (RED,)), [4.0])
    (blue_alone,) = imager.planes(Pattern("blue", (BLUE,)), [4.0])
    np.testing.assert_allclose(planes[0.625], 0.25 * red_alone, atol=1e-5)
    np.testing.assert_allclose(planes[0.465], 0.75 * blue_alone, atol=1e-5)
    assert np.abs(red_alone - blue_alone).max() > 0.05  # two different images


def test_a_monochrome_camera_has_no_filter_and_sees_every_colour():
    assert BayerFilter.for_optics(preset("pi-hq").optics) is None
    assert BayerFilter.for_optics(preset("paper").optics) is None


@pytest.mark.parametrize(("call", "message"), [
    (lambda: BayerFilter("RGBG"), "colour filter must be one of"),
    (lambda: site_offsets("mono", "R"), "colour filter must be one of"),
    (lambda: site_offsets("RGGB", "Y"), "filter colour must be one of"),
    (lambda: IMX477_RESPONSE("IR", 0.8), "colour must be one of"),
    (lambda: SpectralResponse((0.5, 0.4), (0, 0), (0, 0), (0, 0)), "increasing"),
    (lambda: SpectralResponse((0.4, 0.5), (0, 2), (0, 0), (0, 0)), "red needs 2 values"),
    (lambda: BayerFilter("RGGB").mosaic({}), "no light planes"),
])
def test_bad_colour_filters_fail_with_a_message_naming_the_problem(call, message):
    with pytest.raises(FocuslockError, match=message):
        call()


def test_the_response_is_zero_outside_its_table_and_the_filters_pass_their_own_colour_most():
    assert IMX477_RESPONSE("R", 0.35) == 0.0 and IMX477_RESPONSE("B", 0.75) == 0.0
    for wavelength, own in ((0.625, "R"), (0.525, "G"), (0.465, "B")):
        responses = {c: IMX477_RESPONSE(c, wavelength) for c in FILTER_COLOURS}
        assert max(responses, key=responses.__getitem__) == own
