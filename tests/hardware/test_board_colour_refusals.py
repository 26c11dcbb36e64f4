"""Colours the board cannot show are refused by the host before a byte is encoded or sent
(issue 10): a board without RGB LEDs, a wavelength no emitter has, a pattern that mixes LEDs
with and without a colour, colour values and LED counts a SET_LEDS_RGB packet cannot carry, and
emitter settings that would make a wavelength ambiguous.

The far end is the scripted board (tests/hardware/scripted_port.py), so each test sees exactly
which packets left the driver; the same patterns through the real firmware are in
tests/firmware/test_board_colours.py.
"""

from __future__ import annotations

import math

import pytest

from controller.hardware import protocol
from controller.hardware.board import FocusBoard
from controller.hardware.board_leds import MAX_COLOURED_LEDS, emitter
from controller.hardware.board_settings import FocusBoardSettings
from controller.hardware.interfaces import HardwareError
from controller.optics import WS2812_BLUE_UM, WS2812_GREEN_UM, WS2812_RED_UM, Pattern
from tests.hardware.scripted_port import ScriptedBoard, ScriptedPort, connected

RGB = protocol.CAP_SIMULATED | protocol.CAP_LED_MATRIX | protocol.CAP_LED_RGB


def colour_board(capabilities: int = RGB) -> tuple[FocusBoard, ScriptedBoard, ScriptedPort]:
    board = ScriptedBoard(led_count=60, capabilities=capabilities)
    drive, port = connected(board)
    return drive, board, port


def mono(drive: FocusBoard) -> Pattern:
    """LED 7 without a colour: lit in the board's own colour."""
    assert drive.leds is not None
    return Pattern("mono", (drive.leds.led(7),))


def two_colours(drive: FocusBoard, red_um: float = WS2812_RED_UM,
                blue_um: float | None = WS2812_BLUE_UM) -> Pattern:
    assert drive.leds is not None
    return Pattern("two colours", (drive.leds.led(2, wavelength_um=red_um),
                                   drive.leds.led(5, 0.5, wavelength_um=blue_um)))


def test_a_two_colour_pattern_is_one_set_leds_rgb_packet():
    drive, board, port = colour_board()
    drive.show(two_colours(drive))
    assert port.commands()[-1] == protocol.SET_LEDS_RGB
    assert board.lit == [(2, 255, 0, 0), (5, 0, 0, 128)]
    drive.show(mono(drive))  # no wavelength: levels, as before
    assert port.commands()[-1] == protocol.SET_LEDS and board.lit == [(7, 255)]
    drive.close()


@pytest.mark.parametrize(("capabilities", "what"), [
    (protocol.CAP_SIMULATED | protocol.CAP_LED_PWM, "PWM LEDs"),
    (protocol.CAP_SIMULATED | protocol.CAP_LED_MATRIX, "firmware 1.0: a matrix, no SET_LEDS_RGB"),
])
def test_a_board_that_cannot_show_colours_is_sent_nothing(capabilities, what):
    drive, board, port = colour_board(capabilities)
    drive.show(mono(drive))
    sent = len(port.requests)
    with pytest.raises(HardwareError, match="pattern 'two colours': this focus board cannot "
                                            "show colours"):
        drive.show(two_colours(drive))
    with pytest.raises(HardwareError, match=r"LED colours: this focus board cannot"):
        drive.set_leds([(1, 9)], wavelength_um=WS2812_GREEN_UM)
    with pytest.raises(HardwareError, match="LED colours: this focus board cannot"):
        drive.set_led_colours([(1, 0, 9, 0)])
    assert port.requests[sent:] == [] and board.lit == [(7, 255)], what
    drive.close()


@pytest.mark.parametrize(("call", "message"), [
    (lambda d: d.show(two_colours(d, red_um=0.58)),
     r"pattern 'two colours': no LED emitter shines at 0\.58 µm"),
    (lambda d: d.show(two_colours(d, blue_um=WS2812_BLUE_UM - 0.026)),
     r"no LED emitter shines at 0\.439 µm"),
    (lambda d: d.show(two_colours(d, blue_um=None)), "mixes LEDs with a wavelength and LEDs"),
    (lambda d: d.set_leds([(1, 9)], wavelength_um=math.nan), "no LED emitter shines at nan"),
    (lambda d: d.set_leds([(1, 9)], wavelength_um=math.inf), "no LED emitter shines at inf"),
    (lambda d: d.set_leds([(1, 256)], wavelength_um=WS2812_RED_UM),
     "LED 1 red 256 is outside 0..255"),
    (lambda d: d.set_led_colours([(1, 0, 0, -1)]), "LED 1 blue -1 is outside 0..255"),
    (lambda d: d.set_led_colours([(60, 0, 9, 0)]), r"LED 60 does not exist \(the board has 60\)"),
    (lambda d: d.set_led_colours([(3, 9, 0, 0), (3, 0, 0, 9)]), "named twice"),
    (lambda d: d.set_led_colours([(i, 1, 0, 0) for i in range(MAX_COLOURED_LEDS + 1)]),
     f"{MAX_COLOURED_LEDS + 1} LEDs in one pattern; at most {MAX_COLOURED_LEDS} fit in a "
     "SET_LEDS_RGB packet"),
    (lambda d: d.led_levels(two_colours(d)), "has colours: its LEDs are led_colours"),
    (lambda d: d.led_colours(mono(d)), "has no colours"),
])
def test_colours_the_board_or_the_packet_cannot_carry_are_refused_before_sending(call, message):
    drive, board, port = colour_board()
    drive.show(two_colours(drive))
    sent, lit = len(port.requests), list(board.lit)
    with pytest.raises(HardwareError, match=message):
        call(drive)
    assert port.requests[sent:] == [] and board.lit == lit
    drive.set_led_colours([(i, 0, 1, 0) for i in range(MAX_COLOURED_LEDS)])  # the most that fit
    assert len(board.lit) == MAX_COLOURED_LEDS
    drive.close()


def test_the_emitter_is_the_nearest_peak_within_the_tolerance():
    settings = FocusBoardSettings()
    peaks = (WS2812_RED_UM, WS2812_GREEN_UM, WS2812_BLUE_UM)
    assert [emitter(w, settings, "t") for w in peaks] == [0, 1, 2]
    assert emitter(WS2812_GREEN_UM - 0.024, settings, "t") == 1
    assert emitter(0.63, settings, "t") == 0
    with pytest.raises(HardwareError, match=r"t: no LED emitter shines at 0\.499 µm"):
        emitter(WS2812_GREEN_UM - 0.026, settings, "t")


@pytest.mark.parametrize(("settings", "message"), [
    ({"led_wavelength_tolerance_um": 0.03},
     r"led_wavelength_tolerance_um must be > 0 and below half the closest emitters' spacing "
     r"\(0\.03 µm\), got 0\.03"),
    ({"led_wavelength_tolerance_um": 0.0}, "led_wavelength_tolerance_um must be > 0"),
    ({"led_wavelength_tolerance_um": math.nan}, "got nan"),
    ({"led_emitters_um": (0.625, 0.525)}, "led_emitters_um must be the red, green and blue"),
    ({"led_emitters_um": (0.625, -0.5, 0.465)}, "led_emitters_um must be"),
    ({"led_emitters_um": (0.625, 0.63, 0.465)}, r"half the closest emitters' spacing \(0\.0025"),
])
def test_emitter_settings_that_make_a_colour_ambiguous_are_refused(settings, message):
    with pytest.raises(HardwareError, match=message):
        FocusBoardSettings(**settings)
