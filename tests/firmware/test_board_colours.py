"""Two-colour patterns through the real firmware under MicroPython, behind a pty (issue 10).

The host driver maps each LED's wavelength onto the WS2812 emitter nearest it, the board lights
two LEDs in two colours at once, and what it lit (read from the simulator's side channel, never
from the driver) is the pattern the twin's camera renders, on the colour preset's 8x8 array.
Colours no emitter has, patterns that mix LEDs with and without a colour, and a board whose LEDs
have one colour each are refused before anything is sent; the firmware refuses malformed colours
itself.
"""

import dataclasses

import pytest

from controller.config import SimSettings
from controller.hardware import protocol
from controller.hardware.board import FocusBoard
from controller.hardware.board_link import BoardError
from controller.hardware.board_settings import FocusBoardSettings
from controller.hardware.box import serial_opener
from controller.hardware.interfaces import HardwareError
from controller.optics import WS2812_BLUE_UM, WS2812_GREEN_UM, WS2812_RED_UM, Pattern, preset
from controller.sim.board import LitLeds, SimBoardSettings, SimulatedBoard
from controller.sim.devices import VirtualCamera
from controller.sim.twin import lit_pattern, open_twin

pytestmark = pytest.mark.firmware

COLOUR = preset("pi-hq-colour")
PARALLAX = COLOUR.pattern("parallax")
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def connect(sim):
    """The driver, told the colour preset's LED array, on the simulator's pty."""
    return FocusBoard(serial_opener(sim.port), FocusBoardSettings(leds=COLOUR.leds)).connect()


@pytest.fixture
def sim(tmp_path):
    with SimulatedBoard(tmp_path) as board:
        yield board


@pytest.fixture
def drive(sim):
    board = connect(sim)
    yield board
    board.close()


def board_index(drive, led):
    return drive.leds.nearest(led.na_x, led.na_y)


def test_the_parallax_pattern_lights_a_red_and_a_blue_led_at_once(sim, drive):
    assert drive.info.capabilities & protocol.CAP_LED_RGB
    drive.show(PARALLAX)
    red, blue = (board_index(drive, led) for led in PARALLAX.leds)
    lit = sim.lit_leds()
    assert lit == LitLeds({red: RED, blue: BLUE}, in_colour=True)
    status = drive.status()
    assert status.leds_in_colour and status.lit_led_count == 2
    assert status.pattern_tag == drive.pattern_tag
    # what the twin's camera renders from the board's state: the preset's two-colour pattern
    rendered = lit_pattern(lit, COLOUR.leds, drive.settings.led_emitters_um)
    assert rendered is not None and rendered.is_close(PARALLAX)
    assert [led.wavelength_um for led in rendered.leds] == [WS2812_RED_UM, WS2812_BLUE_UM]


def test_the_colour_presets_ground_truth_is_lit_green_and_a_mono_pattern_as_before(sim, drive):
    truth = COLOUR.ground_truth
    drive.show(truth)
    lit = sim.lit_leds()
    assert lit.in_colour and len(lit.colours) == len(truth.leds)
    assert all(r == b == 0 and g > 0 for r, g, b in lit.colours.values())
    assert max(lit.levels.values()) == 255  # exposure compensation scaled to full scale
    rendered = lit_pattern(lit, COLOUR.leds, drive.settings.led_emitters_um)
    assert rendered is not None and rendered.is_close(truth)

    mono = preset("pi-hq").autofocus
    drive.show(mono)
    lit = sim.lit_leds()
    assert lit == LitLeds({board_index(drive, mono.leds[0]): GREEN}, in_colour=False)
    assert not drive.status().leds_in_colour
    rendered = lit_pattern(lit, COLOUR.leds, drive.settings.led_emitters_um)
    assert rendered is not None and rendered.is_close(mono)
    assert rendered.leds[0].wavelength_um is None  # the optics' own light, as on a mono rig


def test_two_colours_on_one_led_light_two_of_its_emitters(sim, drive):
    red, blue = PARALLAX.leds
    magenta = Pattern("magenta", (red, dataclasses.replace(blue, na_y=red.na_y,
                                                           brightness=0.5)))
    drive.show(magenta)
    assert sim.lit_leds() == LitLeds({board_index(drive, red): (255, 0, 128)}, in_colour=True)
    rendered = lit_pattern(sim.lit_leds(), COLOUR.leds, drive.settings.led_emitters_um)
    assert rendered is not None and rendered.is_close(magenta)


RED_INDEX = COLOUR.leds.nearest(PARALLAX.leds[0].na_x, PARALLAX.leds[0].na_y)


@pytest.mark.parametrize(("pattern", "message"), [
    (Pattern("yellow", (dataclasses.replace(PARALLAX.leds[0], wavelength_um=0.58),)),
     r"pattern 'yellow': no LED emitter shines at 0\.58 µm; the board's LEDs have red 0\.625, "
     r"green 0\.525, blue 0\.465 µm \(each ±0\.025 µm\)"),
    (Pattern("mixed", (PARALLAX.leds[0], dataclasses.replace(PARALLAX.leds[1],
                                                             wavelength_um=None))),
     "pattern 'mixed' mixes LEDs with a wavelength and LEDs without one"),
    (Pattern("red twice", (PARALLAX.leds[0], dataclasses.replace(PARALLAX.leds[0],
                                                                 wavelength_um=0.63))),
     f"LED {RED_INDEX}'s red emitter is asked for twice"),
])
def test_a_colour_no_emitter_has_is_refused_and_the_lit_pattern_stays(sim, drive, pattern,
                                                                      message):
    drive.show(PARALLAX)
    before, tag = sim.lit_leds(), drive.pattern_tag
    with pytest.raises(HardwareError, match=message):
        drive.show(pattern)
    assert sim.lit_leds() == before and drive.status().pattern_tag == tag


def test_leds_by_index_in_a_colour(sim, drive):
    drive.set_leds([(3, 40), (9, 255)], wavelength_um=WS2812_BLUE_UM)
    assert sim.lit_leds() == LitLeds({3: (0, 0, 40), 9: BLUE}, in_colour=True)
    drive.set_leds([(3, 40)], wavelength_um=WS2812_GREEN_UM + 0.02)
    assert sim.lit_leds() == LitLeds({3: (0, 40, 0)}, in_colour=True)
    with pytest.raises(HardwareError, match=r"LEDs by index: no LED emitter shines at 0\.7 µm"):
        drive.set_leds([(3, 40)], wavelength_um=0.7)
    assert sim.lit_leds() == LitLeds({3: (0, 40, 0)}, in_colour=True)


@pytest.mark.parametrize(("payload", "message"), [
    (protocol.pack_set_leds_rgb(5, [(64, *RED)]), "LED 64 does not exist"),
    (protocol.pack_set_leds_rgb(5, [(3, *RED), (3, *BLUE)]), "LED 3 given twice"),
    (protocol.pack_set_leds_rgb(5, [(3, *RED)])[:-2], "payload holds 6 bytes, expected 8"),
])
def test_the_firmware_itself_refuses_bad_colours_and_changes_nothing(sim, drive, payload,
                                                                     message):
    drive.show(PARALLAX)
    before = sim.lit_leds()
    with pytest.raises(BoardError, match=message) as refused:
        drive.link.call(protocol.SET_LEDS_RGB, payload)
    assert refused.value.code == protocol.E_BAD_ARGUMENT
    assert sim.lit_leds() == before


def test_a_board_whose_leds_have_one_colour_each_refuses_colours(tmp_path):
    with SimulatedBoard(tmp_path, SimBoardSettings(led_kind="pwm")) as sim:
        drive = connect(sim)
        try:
            caps = drive.info.capabilities
            assert caps & protocol.CAP_LED_PWM and not caps & protocol.CAP_LED_RGB
            drive.show(preset("pi-hq").autofocus)  # levels: as ever
            before, sent = sim.lit_leds(), drive.pattern_tag
            assert before.levels == {board_index(drive, preset("pi-hq").autofocus.leds[0]): 255}
            with pytest.raises(HardwareError, match="pattern 'parallax': this focus board "
                                                    "cannot show colours"):
                drive.show(PARALLAX)
            with pytest.raises(HardwareError, match="LED colours: this focus board cannot"):
                drive.set_leds([(3, 9)], wavelength_um=WS2812_RED_UM)
            assert drive.pattern_tag == sent  # nothing was sent
            # a host that sends colours anyway is refused by the board
            with pytest.raises(BoardError, match="one colour each") as refused:
                drive.link.call(protocol.SET_LEDS_RGB, protocol.pack_set_leds_rgb(9, [(3, *RED)]))
            assert refused.value.code == protocol.E_NOT_SUPPORTED
            assert sim.lit_leds() == before
        finally:
            drive.close()


def test_the_twin_renders_the_colour_presets_parallax_as_the_board_lit_it(tmp_path):
    twin = open_twin(COLOUR, SimSettings(), frame_shape=(64, 64), workdir=tmp_path)
    try:
        rig = twin.rig
        assert isinstance(rig.drive, FocusBoard) and rig.drive.leds == COLOUR.leds  # the 8x8
        assert twin.board.settings.leds == [[round(10 * v) for v in p]
                                            for p in COLOUR.leds.positions_mm]
        assert isinstance(rig.camera, VirtualCamera)
        rig.illuminator.show(PARALLAX)
        rendered = rig.camera.illumination()  # what the next frame is exposed under
        assert rendered is not None and rendered.is_close(PARALLAX)
        assert rig.camera.capture().image.shape == (64, 64)
        rig.illuminator.show(COLOUR.ground_truth)
        rendered = rig.camera.illumination()
        assert rendered is not None and rendered.is_close(COLOUR.ground_truth)
        rig.illuminator.off()
        assert rig.camera.illumination() is None
    finally:
        twin.close()
