"""How a pattern lands on the focus board's LEDs: the LED nearest each NA, the emitter nearest
each wavelength, a level 0..255 for each brightness, and what one SET_LEDS or SET_LEDS_RGB
packet can carry.

Nothing here talks to the board, so every refusal (an NA no LED has, a colour no emitter has,
a pattern that mixes LEDs with and without a colour, a number a field cannot hold) comes before
anything is encoded or sent; the driver (controller/hardware/board.py) sends what passes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from controller.hardware import protocol
from controller.hardware.board_settings import FocusBoardSettings
from controller.hardware.interfaces import HardwareError
from controller.optics import Led, LedArray, Pattern

MAX_LIT_LEDS = (protocol.MAX_PAYLOAD - struct.calcsize(protocol.SET_LEDS_HEAD)) // (
    struct.calcsize(protocol.LED_LEVEL))  # LEDs one SET_LEDS packet can name
MAX_COLOURED_LEDS = (protocol.MAX_PAYLOAD - struct.calcsize(protocol.SET_LEDS_HEAD)) // (
    struct.calcsize(protocol.LED_COLOUR))  # LEDs one SET_LEDS_RGB packet can name
EMITTERS = ("red", "green", "blue")  # an LED's emitters in the order LED_COLOUR carries them


def in_colour(pattern: Pattern) -> bool:
    """Whether the pattern's LEDs have colours (wavelengths). One that mixes LEDs with and
    without a wavelength is refused: the board lights an LED without one in its own colour,
    which a pattern in colour cannot name."""
    colours = pattern.wavelengths
    if None in colours and len(colours) > 1:
        raise HardwareError(f"pattern {pattern.name!r} mixes LEDs with a wavelength and LEDs "
                            "without one; give every LED its colour, or none")
    return colours != (None,)


def emitter(wavelength_um: float, settings: FocusBoardSettings, what: str) -> int:
    """The LED emitter (0 red, 1 green, 2 blue) whose peak is nearest the wavelength; one
    farther than ``led_wavelength_tolerance_um`` from every peak is refused, named."""
    peaks = settings.led_emitters_um
    channel = min(range(len(peaks)), key=lambda c: abs(peaks[c] - wavelength_um))
    tolerance = settings.led_wavelength_tolerance_um
    if not abs(peaks[channel] - wavelength_um) <= tolerance:  # NaN too
        shown = ", ".join(f"{name} {peak:g}" for name, peak in zip(EMITTERS, peaks, strict=True))
        raise HardwareError(f"{what}: no LED emitter shines at {wavelength_um:g} µm; the "
                            f"board's LEDs have {shown} µm (each ±{tolerance:g} µm)")
    return channel


def in_one_colour(levels: Sequence[tuple[int, int]],
                  channel: int) -> list[tuple[int, int, int, int]]:
    """(LED index, red, green, blue) lighting each LED's emitter ``channel`` at its level."""
    colours = []
    for index, level in levels:
        red, green, blue = (level if c == channel else 0 for c in range(len(EMITTERS)))
        colours.append((index, red, green, blue))
    return colours


def led_levels(pattern: Pattern, leds: LedArray,
               settings: FocusBoardSettings) -> list[tuple[int, int]]:
    """The board's (LED index, 0..255) for a pattern without colours, lit in the board's own
    colour; brightness 1 is full scale, and a pattern brighter than that (exposure
    compensation) is scaled down as a whole."""
    if in_colour(pattern):
        raise HardwareError(f"pattern {pattern.name!r} has colours: its LEDs are led_colours, "
                            "not levels in the board's own colour")
    levels: dict[int, int] = {}
    for index, _, level in _placed(pattern, leds, settings.led_na_tolerance):
        if index in levels:
            raise HardwareError(f"pattern {pattern.name!r}: LED {index} is asked for twice")
        levels[index] = level
    return sorted(levels.items())


def led_colours(pattern: Pattern, leds: LedArray,
                settings: FocusBoardSettings) -> list[tuple[int, int, int, int]]:
    """The board's (LED index, red, green, blue 0..255) for a pattern whose LEDs have colours:
    each on the emitter nearest its wavelength, at its level as in led_levels. Two colours on
    one LED light two of its emitters; a wavelength no emitter has is refused."""
    if not in_colour(pattern):
        raise HardwareError(f"pattern {pattern.name!r} has no colours: it is lit in the "
                            "board's own colour (led_levels)")
    colours: dict[int, list[int]] = {}
    for index, led, level in _placed(pattern, leds, settings.led_na_tolerance):
        assert led.wavelength_um is not None  # in_colour: every LED has one
        channel = emitter(led.wavelength_um, settings, f"pattern {pattern.name!r}")
        emitters = colours.setdefault(index, [0, 0, 0])
        if emitters[channel]:
            raise HardwareError(f"pattern {pattern.name!r}: LED {index}'s "
                                f"{EMITTERS[channel]} emitter is asked for twice")
        emitters[channel] = level
    return [(index, r, g, b) for index, (r, g, b) in sorted(colours.items())]


def check_levels(levels: Sequence[tuple[int, int]], led_count: int) -> None:
    """A SET_LEDS pattern: every LED exists, once, at a brightness 0..255, all in one packet."""
    _check_lit(levels, ("brightness",), led_count, MAX_LIT_LEDS, "SET_LEDS")


def check_colours(colours: Sequence[tuple[int, int, int, int]], led_count: int) -> None:
    """A SET_LEDS_RGB pattern: every LED exists, once, each emitter 0..255, all in one packet."""
    _check_lit(colours, EMITTERS, led_count, MAX_COLOURED_LEDS, "SET_LEDS_RGB")


def _check_lit(items: Sequence[tuple[int, ...]], fields: tuple[str, ...], led_count: int,
               most: int, command: str) -> None:
    if len(items) > most:
        raise HardwareError(f"focus board: {len(items)} LEDs in one pattern; at most {most} "
                            f"fit in a {command} packet")
    for index, *values in items:
        if not 0 <= index < led_count:
            raise HardwareError(f"focus board: LED {index} does not exist "
                                f"(the board has {led_count})")
        for name, value in zip(fields, values, strict=True):
            if not 0 <= value <= 255:
                raise HardwareError(f"focus board: LED {index} {name} {value} is outside 0..255")
    if len({item[0] for item in items}) != len(items):
        raise HardwareError("focus board: an LED is named twice in one pattern")


def _placed(pattern: Pattern, leds: LedArray,
            na_tolerance: float) -> list[tuple[int, Led, int]]:
    """(board LED index, the pattern's LED, level 0..255) for each LED of the pattern: the
    board LED nearest its NA (one farther than ``na_tolerance`` is refused); brightness 1 is
    full scale, a pattern brighter than that is scaled down as a whole."""
    scale = 255 / max(1.0, *(led.brightness for led in pattern.leds))
    placed = []
    for led in pattern.leds:
        index = leds.nearest(led.na_x, led.na_y)
        na_x, na_y = leds.na_of(index)
        if math.hypot(na_x - led.na_x, na_y - led.na_y) > na_tolerance:
            raise HardwareError(
                f"pattern {pattern.name!r}: no LED at NA ({led.na_x:.3f}, {led.na_y:.3f}); "
                f"the nearest, LED {index}, is at ({na_x:.3f}, {na_y:.3f})")
        level = max(1, min(255, round(led.brightness * scale))) if led.brightness > 0 else 0
        placed.append((index, led, level))
    return placed
