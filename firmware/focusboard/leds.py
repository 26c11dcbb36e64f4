"""The LED pattern the host asked for, checked against the LEDs this board really has.

Every lit LED is held as the (red, green, blue) 0..255 its driver shows. SET_LEDS gives each LED
a brightness, shown in the board's own colour (the driver's ``mono_colour``: the light the
optics are designed for); SET_LEDS_RGB gives each LED's three emitters, which only a board with
RGB LEDs (a WS2812 matrix) can show. Either replaces the whole pattern, or changes nothing.
"""

from . import protocol
from .errors import CommandError

TYPE_CHECKING = False  # mypy reads the imports below; MicroPython has no typing module
if TYPE_CHECKING:
    from .hal import LedDriver

DEFAULT_MONO_COLOUR = (0, 1, 0)  # green light, as the reference optics
LED_KINDS = ("ws2812", "pwm")


def colour_settings(settings: dict) -> tuple:
    """``(rgb, mono_colour)`` of the board's LEDs from its settings: a WS2812 matrix has three
    emitters per LED and shows a SET_LEDS brightness in ``led_colour`` ((r, g, b) multipliers
    0..1, default green); a PWM LED has one colour, driven by the brightness as (v, v, v).
    ValueError naming the setting that is wrong (a bad board.json stops the boot)."""
    kind = settings["led_kind"]
    if kind not in LED_KINDS:
        raise ValueError(f"led_kind {kind!r} must be one of {LED_KINDS}")
    if kind == "pwm":
        return False, (1, 1, 1)
    value = settings.get("led_colour", DEFAULT_MONO_COLOUR)
    if len(value) != 3 or not all(0 <= m <= 1 for m in value) or not any(value):
        raise ValueError(f"led_colour {value!r} must be three multipliers 0..1, not all 0")
    return True, (value[0], value[1], value[2])


class Leds:
    """Holds the lit LEDs' colours and writes every change to the hardware layer's LED driver."""

    def __init__(self, driver: "LedDriver") -> None:
        self.driver = driver
        self.count = driver.count
        self.colours: "dict[int, tuple[int, int, int]]" = {}
        self.in_colour = False  # the colours are the host's (SET_LEDS_RGB), not the board's own
        self.tag = 0
        driver.write({}, False)

    def show(self, tag: int, levels: list) -> None:
        """Light exactly ``levels`` ([(index, 0..255)]) in the board's own colour; nothing
        changes if one is invalid."""
        r, g, b = self.driver.mono_colour
        pattern: "dict[int, tuple[int, int, int]]" = {}
        seen: "set[int]" = set()
        for index, level in levels:
            self._check(index, seen)
            colour = (round(level * r), round(level * g), round(level * b))
            if colour != (0, 0, 0):
                pattern[index] = colour
        self._light(tag, pattern, False)

    def show_colours(self, tag: int, colours: list) -> None:
        """Light exactly ``colours`` ([(index, red, green, blue 0..255)]); refused, changing
        nothing, on LEDs of one colour each or when one entry is invalid."""
        if not self.driver.rgb:
            raise CommandError(protocol.E_NOT_SUPPORTED,
                               "these LEDs have one colour each: use SET_LEDS")
        pattern: "dict[int, tuple[int, int, int]]" = {}
        seen: "set[int]" = set()
        for index, red, green, blue in colours:
            self._check(index, seen)
            if red or green or blue:
                pattern[index] = (red, green, blue)
        self._light(tag, pattern, True)

    def off(self) -> None:
        self._light(0, {}, False)

    def _check(self, index: int, seen: "set[int]") -> None:
        if index >= self.count:
            raise CommandError(protocol.E_BAD_ARGUMENT,
                               f"LED {index} does not exist (board has {self.count})")
        if index in seen:
            raise CommandError(protocol.E_BAD_ARGUMENT, f"LED {index} given twice")
        seen.add(index)

    def _light(self, tag: int, pattern: "dict[int, tuple[int, int, int]]",
               in_colour: bool) -> None:
        in_colour = in_colour and bool(pattern)
        self.driver.write(pattern, in_colour)
        self.colours = pattern
        self.in_colour = in_colour
        self.tag = tag if pattern else 0
