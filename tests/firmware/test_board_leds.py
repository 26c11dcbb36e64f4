"""The firmware's LEDs under CPython: levels in the board's own colour (SET_LEDS), colours the
host chooses (SET_LEDS_RGB), what STATUS says about them, and every refusal leaving the lit
pattern as it was. The same logic under MicroPython, behind a pty, is in test_board_link.py.
"""

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from controller.hardware import protocol as p
from firmware.focusboard import hal_sim, leds, settings
from tests.firmware.test_board_logic import Host, make_board

RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture
def rig():
    board, hal = make_board()
    return Host(board), hal


def pwm_board():
    """Eight discrete LEDs on PWM pins: one colour each."""
    return make_board(led_kind="pwm", led_pins=list(range(8)),
                      leds=settings.grid_dmm(2, 4, 50, 400))


def test_levels_light_exactly_the_pattern_in_the_boards_own_colour(rig):
    host, hal = rig
    host.ok(p.SET_LEDS, p.pack_set_leds(9, [(0, 10), (63, 255), (5, 0)]))
    assert hal.leds.colours == {0: (0, 10, 0), 63: (0, 255, 0)} and not hal.leds.in_colour
    status = host.status()
    assert (status["lit"], status["tag"]) == (2, 9)
    assert not status["flags"] & p.F_LEDS_IN_COLOUR
    host.ok(p.LEDS_OFF)
    assert hal.leds.colours == {} and host.status()["lit"] == 0 and host.status()["tag"] == 0


def test_two_leds_in_two_colours_at_once_and_status_says_so(rig):
    host, hal = rig
    host.ok(p.SET_LEDS_RGB, p.pack_set_leds_rgb(7, [(19, *RED), (43, *BLUE), (2, 0, 0, 0)]))
    assert hal.leds.colours == {19: RED, 43: BLUE} and hal.leds.in_colour
    status = host.status()
    assert (status["lit"], status["tag"]) == (2, 7) and status["flags"] & p.F_LEDS_IN_COLOUR
    # one LED may shine two colours (two of its emitters) from the same place
    host.ok(p.SET_LEDS_RGB, p.pack_set_leds_rgb(8, [(19, 200, 0, 30)]))
    assert hal.leds.colours == {19: (200, 0, 30)}
    # levels after colours: back to the board's own colour, and STATUS no longer says colour
    host.ok(p.SET_LEDS, p.pack_set_leds(9, [(1, 40)]))
    assert hal.leds.colours == {1: (0, 40, 0)} and not hal.leds.in_colour
    assert not host.status()["flags"] & p.F_LEDS_IN_COLOUR


def test_colours_that_light_nothing_are_dark_not_in_colour(rig):
    host, hal = rig
    host.ok(p.SET_LEDS_RGB, p.pack_set_leds_rgb(4, [(3, 0, 0, 0)]))
    status = host.status()
    assert hal.leds.colours == {} and (status["lit"], status["tag"]) == (0, 0)
    assert not status["flags"] & p.F_LEDS_IN_COLOUR


@pytest.mark.parametrize(("command", "payload", "code", "complaint"), [
    (p.SET_LEDS_RGB, p.pack_set_leds_rgb(2, [(1, *RED), (64, *BLUE)]), p.E_BAD_ARGUMENT,
     b"LED 64 does not exist (board has 64)"),
    (p.SET_LEDS_RGB, p.pack_set_leds_rgb(2, [(1, *RED), (1, *BLUE)]), p.E_BAD_ARGUMENT,
     b"LED 1 given twice"),
    (p.SET_LEDS_RGB, p.pack_set_leds_rgb(2, [(1, *RED)])[:-1], p.E_BAD_ARGUMENT,
     b"SET_LEDS_RGB payload holds 7 bytes, expected 8"),
    (p.SET_LEDS_RGB, b"\x02", p.E_BAD_ARGUMENT, b"SET_LEDS_RGB payload too short"),
    (p.SET_LEDS_RGB, p.pack_set_leds(2, [(1, 255), (2, 255)]), p.E_BAD_ARGUMENT,
     b"expected 13"),  # levels sent as colours: the length gives them away
    (p.SET_LEDS, p.pack_set_leds(2, [(1, 0), (1, 255)]), p.E_BAD_ARGUMENT, b"LED 1 given twice"),
    (p.SET_LEDS, p.pack_set_leds(2, [(64, 255)]), p.E_BAD_ARGUMENT, b"LED 64 does not exist"),
])
def test_a_refused_pattern_changes_nothing(rig, command, payload, code, complaint):
    host, hal = rig
    host.ok(p.SET_LEDS_RGB, p.pack_set_leds_rgb(7, [(19, *RED), (43, *BLUE)]))
    reply = host.send(command, payload)
    assert reply.code == code and complaint in reply.payload, reply
    assert hal.leds.colours == {19: RED, 43: BLUE} and hal.leds.in_colour
    assert host.status()["tag"] == 7


def test_colours_are_refused_in_a_fault_like_levels():
    board, hal = make_board(heartbeat_ms=500)
    host = Host(board)
    host.ok(p.SET_LEDS_RGB, p.pack_set_leds_rgb(1, [(3, *RED)]))
    host.at(500)  # the host fell silent: the board darkens itself
    assert hal.leds.colours == {} and not hal.leds.in_colour
    assert host.send(p.SET_LEDS_RGB, p.pack_set_leds_rgb(2, [(3, *RED)])).code == p.E_FAULT
    assert hal.leds.colours == {}


def test_leds_of_one_colour_refuse_colours_and_show_levels_on_their_pin():
    board, hal = pwm_board()
    host = Host(board)
    caps = hal.capabilities
    assert caps & p.CAP_LED_PWM and not caps & (p.CAP_LED_RGB | p.CAP_LED_MATRIX)
    host.ok(p.SET_LEDS, p.pack_set_leds(3, [(2, 99)]))
    reply = host.send(p.SET_LEDS_RGB, p.pack_set_leds_rgb(4, [(2, *RED)]))
    assert reply.code == p.E_NOT_SUPPORTED and b"one colour each" in reply.payload
    assert hal.leds.colours == {2: (99, 99, 99)} and host.status()["tag"] == 3


def test_the_boards_own_colour_is_its_led_colour_setting():
    board, hal = make_board(led_colour=[1, 0.5, 0])
    Host(board).ok(p.SET_LEDS, p.pack_set_leds(1, [(0, 200), (1, 1)]))
    assert hal.leds.colours == {0: (200, 100, 0), 1: (1, 0, 0)}  # round(0.5) is 0


@pytest.mark.parametrize(("change", "complaint"), [
    ({"led_colour": [0, 2, 0]}, r"led_colour \[0, 2, 0\] must be three multipliers 0\.\.1"),
    ({"led_colour": [0, 0, 0]}, "not all 0"),
    ({"led_colour": [0, 1]}, "led_colour"),
    ({"led_kind": "dmx"}, "led_kind 'dmx' must be one of"),
])
def test_a_board_with_impossible_led_settings_does_not_boot(change, complaint):
    with pytest.raises(ValueError, match=complaint):
        leds.colour_settings(settings.merged(settings.REFERENCE, change))
    with pytest.raises(ValueError, match=complaint):
        hal_sim.SimHardware(settings.merged(settings.REFERENCE, {
            "max_speed": 100000, "max_accel": 10**7, **change}))


colour_entries = st.lists(st.tuples(st.integers(0, 70), st.integers(0, 255), st.integers(0, 255),
                                    st.integers(0, 255)), max_size=12)


@hypothesis_settings(max_examples=200)
@given(st.one_of(colour_entries.map(lambda c: p.pack_set_leds_rgb(5, c)), st.binary(max_size=40)))
def test_any_colour_payload_lights_exactly_what_it_says_or_changes_nothing(payload):
    board, hal = make_board()
    host = Host(board)
    host.ok(p.SET_LEDS, p.pack_set_leds(1, [(7, 9)]))
    reply = host.send(p.SET_LEDS_RGB, payload)
    if reply.code != p.OK:
        assert reply.code == p.E_BAD_ARGUMENT and reply.payload
        assert hal.leds.colours == {7: (0, 9, 0)} and host.status()["tag"] == 1
        return
    tag, colours = p.unpack_set_leds_rgb(payload)
    indices = [entry[0] for entry in colours]
    assert len(set(indices)) == len(indices) and max(indices, default=0) < 64
    lit = {index: tuple(rgb) for index, *rgb in colours if any(rgb)}
    assert hal.leds.colours == lit and hal.leds.in_colour == bool(lit)
    assert host.status()["tag"] == (tag if lit else 0)
