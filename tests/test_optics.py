"""The optics module: validation, geometry conventions and presets."""

import math

import pytest

from controller.optics import (
    LedArray,
    Optics,
    OpticsError,
    Pattern,
    UndersampledWarning,
    preset,
)


def test_na_must_be_below_immersion_index():
    with pytest.raises(OpticsError, match="immersion index"):
        Optics(na=1.0, immersion_index=1.0)


@pytest.mark.parametrize("name", ["wavelength_um", "na", "magnification", "camera_pixel_um"])
def test_non_positive_sizes_are_refused(name):
    fields: dict = {name: 0.0}
    with pytest.raises(OpticsError, match=name):
        Optics(**fields)


def test_coarse_pixel_warns():
    with pytest.warns(UndersampledWarning, match="Nyquist"):
        Optics(na=0.5, magnification=4.0)


def test_led_to_the_right_sends_light_to_the_left():
    leds = LedArray.dome([(10.0, 0.0, 10.0)])
    na_x, na_y = leds.na_of(0)
    assert na_x == pytest.approx(-math.sin(math.radians(45)))
    assert na_y == pytest.approx(0.0)


def test_paper_preset_matches_the_reference_system():
    p = preset("paper")
    assert p.optics.pixel_um == pytest.approx(0.325)
    assert p.optics.depth_of_field_um == pytest.approx(2.12, abs=0.01)
    (led,) = p.autofocus.leds
    assert 0.3 < led.na < p.optics.na  # off-axis, brightfield
    assert all(led.na_y < 0 for led in p.ground_truth.leds)  # one half of the annulus
    assert len(p.ground_truth.leds) >= 12


def test_pattern_round_trips_and_compares():
    p = preset("paper").ground_truth
    q = Pattern.from_dict(p.to_dict())
    assert q == p and q.is_close(p)
    assert not q.is_close(preset("paper").autofocus)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(OpticsError, match="paper"):
        preset("nope")
