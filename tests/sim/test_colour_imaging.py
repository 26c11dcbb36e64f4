"""Colour LEDs in image formation: chromatic focal shift, the parallax of two illumination
angles (two frames, or one raw Bayer frame), and the colour preset end to end."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from controller.config import SimSettings
from controller.groundtruth import find_focus
from controller.optics import (
    WS2812_BLUE_UM,
    WS2812_RED_UM,
    Led,
    Optics,
    ParallaxViews,
    Pattern,
    preset,
)
from controller.sim import SAMPLE_KINDS, Imager, Sample, make_sample, render_stack
from controller.sim.bayer import FILTER_COLOURS, BayerFilter, site_offsets
from controller.sim.rigs import virtual_rig

COLOUR = preset("pi-hq-colour")
N = 256


def colour_views() -> ParallaxViews:
    views = COLOUR.parallax
    assert views is not None
    return views


VIEWS = colour_views()


def smooth_absorber(optics: Optics, seed: int = 3) -> Sample:
    """Weakly absorbing periodic Gaussian blobs 3 µm wide: their spectrum stays where both
    side bands of a tilted wave pass the pupil, so the whole image shifts as one."""
    rng = np.random.default_rng(seed)
    pixel = optics.pixel_um
    y, x = np.mgrid[0:N, 0:N] * pixel
    size = N * pixel
    path = np.zeros((N, N))
    for cy, cx in rng.uniform(0, size, (12, 2)):
        dy = (y - cy + size / 2) % size - size / 2
        dx = (x - cx + size / 2) % size - size / 2
        path += np.exp(-(dy**2 + dx**2) / (2 * 3.0**2))
    return Sample((0.05j * path).astype(np.complex64)[None], pixel)


def shift_px(moved: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(rows, cols) shift of ``moved`` against ``reference``: the cross-correlation's peak,
    refined by a parabola through it along each axis."""
    a, b = moved - moved.mean(), reference - reference.mean()
    xc = np.fft.ifft2(np.fft.fft2(a) * np.conj(np.fft.fft2(b))).real
    peak = np.unravel_index(np.argmax(xc), xc.shape)
    out = []
    for axis in (0, 1):
        n = xc.shape[axis]
        around = []
        for step in (-1, 0, 1):
            at = list(peak)
            at[axis] = (at[axis] + step) % n
            around.append(xc[tuple(at)])
        fraction = 0.5 * (around[0] - around[2]) / (around[0] - 2 * around[1] + around[2])
        out.append((peak[axis] + n / 2) % n - n / 2 + fraction)
    return np.array(out)


def expected_shift_px(led: Led, defocus_um: float, optics: Optics) -> np.ndarray:
    """−D·ν/√(n² − |ν|²) in (rows, cols) camera pixels (docs/conventions.md)."""
    n = optics.immersion_index
    return -defocus_um * np.array([led.na_y, led.na_x]) / math.sqrt(n**2 - led.na**2) \
        / optics.pixel_um


def test_a_colour_led_at_defocus_d_images_as_light_of_its_wavelength_at_d_plus_its_focal_shift():
    optics = COLOUR.optics  # 10 µm of focus per µm of wavelength: red +1.0 µm, blue -0.6 µm
    sample = make_sample("sparse-cells", (N, N), optics.pixel_um, seed=2)
    for led in (VIEWS.first, VIEWS.second):
        assert led.wavelength_um is not None
        shift = optics.focal_shift_um(led.wavelength_um)
        assert abs(shift) >= 0.5
        (colour,) = Imager(optics, sample).planes(Pattern("one", (led,)), [2.0])
        mono_optics = dataclasses.replace(optics, wavelength_um=led.wavelength_um,
                                          chromatic_focus_um_per_um=0.0, colour_filter="mono")
        plain = Pattern("plain", (dataclasses.replace(led, wavelength_um=None),))
        seen, unshifted = Imager(mono_optics, sample).planes(plain, [2.0 + shift, 2.0])
        np.testing.assert_allclose(colour, seen, atol=1e-5)
        assert np.abs(colour - unshifted).max() > 0.01  # the shift shows


def test_the_design_wavelength_has_no_focal_shift_and_a_monochrome_led_is_that_wavelength():
    optics = COLOUR.optics
    sample = make_sample("dense-cells", (128, 128), optics.pixel_um, seed=1)
    imager = Imager(optics, sample)
    green = COLOUR.ground_truth
    plain = Pattern(green.name, tuple(dataclasses.replace(led, wavelength_um=None)
                                      for led in green.leds))
    (a,) = imager.planes(green, [3.0])
    (b,) = imager.planes(plain, [3.0])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("view", ["parallax-first", "parallax-second"])
def test_two_frame_views_shift_sideways_by_minus_d_tan_theta(view):
    system = preset("paper-pair")
    (led,) = system.pattern(view).leds
    defocus = np.array([0.0, -12.0, -5.0, 4.0, 11.0])
    stack = render_stack(smooth_absorber(system.optics), -defocus, preset=system,
                         patterns=[view], seed=4)
    planes = -stack.channel(view).astype(np.float64)  # absorbers: dark on bright
    for d, plane in zip(defocus[1:], planes[1:], strict=True):
        np.testing.assert_allclose(shift_px(plane, planes[0]),
                                   expected_shift_px(led, d, system.optics), atol=0.15)


def test_one_colour_frame_holds_both_views_in_its_red_and_blue_sites():
    optics = COLOUR.optics
    cfa = BayerFilter.for_optics(optics)
    assert cfa is not None
    red, blue = VIEWS.first, VIEWS.second
    assert red.wavelength_um is not None and blue.wavelength_um is not None
    shifts = [optics.focal_shift_um(led.wavelength_um) for led in (red, blue)]
    defocus = np.array([-shifts[0], -shifts[1], -12.0, -5.0, 4.0, 11.0])  # each colour's focus
    stack = render_stack(smooth_absorber(optics), -defocus, preset=COLOUR,
                         patterns=["parallax"], seed=4)
    mosaic = stack.channel("parallax").astype(np.float64) - stack.metadata["camera"]["offset_adu"]
    ((rr, rc),), ((br, bc),) = site_offsets(cfa.layout, "R"), site_offsets(cfa.layout, "B")
    sites = np.stack([mosaic[:, rr::2, rc::2], mosaic[:, br::2, bc::2]])
    # Each filter also passes a little of the other LED's light (a ghost moving the other way):
    # unmixed with the filters' responses, each site gives one view on a grid of 2 pixels.
    mixing = np.array([[cfa.response(s, w) for w in (red.wavelength_um, blue.wavelength_um)]
                       for s in ("R", "B")])
    unmixed = np.einsum("vs,spyx->vpyx", np.linalg.inv(mixing), sites)
    for v, led in enumerate((red, blue)):
        for d, raw, clean in zip(defocus[2:], sites[v, 2:], unmixed[v, 2:], strict=True):
            expected = expected_shift_px(led, d + shifts[v], optics)
            np.testing.assert_allclose(2 * shift_px(-clean, -unmixed[v, v]), expected,
                                       atol=0.25)
            # The raw sites alone: the ghost biases the shift by up to 8 %.
            np.testing.assert_allclose(2 * shift_px(-raw, -sites[v, v]), expected,
                                       rtol=0.1, atol=0.25)


@pytest.mark.parametrize("kind", sorted(SAMPLE_KINDS))
def test_every_sample_kind_renders_as_a_raw_mosaic_under_the_colour_preset(kind):
    optics = COLOUR.optics
    params = {"image": np.random.default_rng(1).integers(0, 255, (40, 40))} \
        if kind == "image" else {}
    sample = make_sample(kind, (128, 128), optics.pixel_um, seed=5, **params)
    stack = render_stack(sample, [-2.0, 3.0], preset=COLOUR, seed=5)
    assert stack.channel_names == ["parallax", "dpc-bottom"]
    assert stack.images.shape == (2, 2, 128, 128) and stack.images.dtype == np.uint16
    assert stack.optics.colour_filter == "RGGB"
    assert stack.metadata["colour_filter"]["layout"] == "RGGB"
    offset = stack.metadata["camera"]["offset_adu"]
    for channel, brightest in (("parallax", ("R", "B")), ("dpc-bottom", ("G",))):
        frame = stack.channel(channel)[0].astype(np.float64) - offset
        means = {c: np.mean([frame[r::2, k::2].mean() for r, k in site_offsets("RGGB", c)])
                 for c in FILTER_COLOURS}
        dimmest = min(means.values())
        assert all(means[c] > 2 * dimmest for c in brightest), (channel, means)
        assert frame.max() < 4095 - offset  # not saturated


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sparse-cells", "dense-cells", "tissue"])
def test_the_green_ground_truth_of_a_colour_stack_is_at_the_true_focus(kind):
    # A stack as the box collects it (±30 µm in 1 µm steps) under the darkfield half annulus,
    # read on the green sites of the raw mosaic with the band scaled to the objective's cutoff.
    # Measured on 512² stacks (5 seeds per kind): the sharpest plane 0.4–2.3 µm beyond focus,
    # at most a quarter of the 8.4 µm depth of field (optics.py says why this annulus).
    focus = 0.3
    sample = make_sample(kind, (512, 512), COLOUR.optics.pixel_um, seed=1)
    stack = render_stack(sample, np.arange(-30.0, 30.5, 1.0), preset=COLOUR,
                         patterns=["dpc-bottom"], focus_z_um=focus, seed=1)
    truth = find_focus(stack)  # it reads the green sites of a colour stack
    assert abs(truth.focus_z_um - focus) <= 3.0


def test_the_virtual_rig_delivers_raw_bayer_frames_under_the_two_colour_pattern():
    rig = virtual_rig(COLOUR, SimSettings(start_z_um=0.0), frame_shape=(128, 128))
    rig.illuminator.show(COLOUR.pattern("parallax"))
    frame = rig.camera.capture().image
    assert frame.shape == (128, 128) and frame.dtype == np.uint16
    means = {c: float(frame[r::2, k::2].mean()) for c in FILTER_COLOURS
             for r, k in site_offsets("RGGB", c)[:1]}
    assert means["R"] > 1.5 * means["G"] and means["B"] > 1.5 * means["G"]
    rig.illuminator.show(COLOUR.ground_truth)  # darkfield: the sample's scattered light only
    assert rig.scope is not None
    green = rig.camera.capture().image - rig.scope.sensor.offset_adu
    assert green[0::2, 1::2].mean() > 2 * green[0::2, 0::2].mean()
    mono = virtual_rig(preset("pi-hq"), SimSettings(start_z_um=0.0), frame_shape=(128, 128))
    mono.illuminator.show(mono.preset.autofocus)
    flat = mono.camera.capture().image.astype(np.float64)
    assert abs(flat[0::2, 0::2].mean() / flat[0::2, 1::2].mean() - 1) < 0.02  # no mosaic


@pytest.mark.parametrize(("name", "channels"), [
    ("paper", ["autofocus", "dpc-bottom"]),
    ("pi-hq", ["autofocus", "dpc-bottom"]),
    ("paper-pair", ["autofocus", "dpc-bottom", "parallax-first", "parallax-second"]),
    ("pi-hq-colour", ["parallax", "dpc-bottom"]),
])
def test_a_simulated_stack_has_a_channel_for_every_pattern_of_its_preset(name, channels):
    system = preset(name)
    sample = make_sample("sparse-cells", (64, 64), system.optics.pixel_um, seed=1)
    stack = render_stack(sample, [0.0], preset=system)
    assert stack.channel_names == channels
    assert list(stack.channels) == list(system.patterns)
    assert ("colour_filter" in stack.metadata) == (system.optics.colour_filter != "mono")


@pytest.mark.firmware
def test_the_twin_delivers_raw_bayer_frames_of_the_leds_its_firmware_lit(tmp_path):
    from controller.hardware.board_settings import FocusBoardSettings
    from controller.sim.twin import lit_pattern, open_twin

    twin = open_twin(COLOUR, SimSettings(start_z_um=0.0), frame_shape=(128, 128),
                     workdir=tmp_path)
    try:
        twin.rig.illuminator.show(COLOUR.pattern("parallax"))
        frame = twin.rig.camera.capture().image.astype(np.float64)
        lit = lit_pattern(twin.board.lit_leds(), COLOUR.leds, FocusBoardSettings().led_emitters_um)
    finally:
        twin.close()
    assert lit is not None
    assert sorted(led.wavelength_um or 0.0 for led in lit.leds) == [WS2812_BLUE_UM, WS2812_RED_UM]
    # Whatever colours the board gives its LEDs, each site shows their light through its filter
    # (the scope's empty-field brightfield, scaled by the sensor).
    cfa = BayerFilter.for_optics(COLOUR.optics)
    assert cfa is not None
    shares = [(led.brightness / sum(x.brightness for x in lit.leds),
               led.wavelength_um or COLOUR.optics.wavelength_um) for led in lit.leds]
    expected = {c: sum(s * cfa.response(c, w) for s, w in shares) for c in FILTER_COLOURS}
    offset = twin.scope.sensor.offset_adu
    means = {c: frame[r::2, k::2].mean() - offset for c in FILTER_COLOURS
             for r, k in site_offsets(cfa.layout, c)[:1]}
    ratios = [means[c] / expected[c] for c in FILTER_COLOURS]
    assert max(ratios) < 1.15 * min(ratios)
