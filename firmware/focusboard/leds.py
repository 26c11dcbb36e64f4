"""The LED pattern the host asked for, checked against the LEDs this board really has."""

from . import protocol
from .errors import CommandError

TYPE_CHECKING = False  # mypy reads the imports below; MicroPython has no typing module
if TYPE_CHECKING:
    from .hal import LedDriver


class Leds:
    """Holds the lit LEDs and writes every change to the hardware layer's LED driver."""

    def __init__(self, driver: "LedDriver") -> None:
        self.driver = driver
        self.count = driver.count
        self.levels: "dict[int, int]" = {}
        self.tag = 0
        driver.write({})

    def show(self, tag: int, levels: list) -> None:
        """Light exactly ``levels`` ([(index, 0..255)]); nothing changes if one is invalid."""
        pattern: "dict[int, int]" = {}
        for index, brightness in levels:
            if index >= self.count:
                raise CommandError(protocol.E_BAD_ARGUMENT,
                                   f"LED {index} does not exist (board has {self.count})")
            if index in pattern:
                raise CommandError(protocol.E_BAD_ARGUMENT, f"LED {index} given twice")
            if brightness:
                pattern[index] = brightness
        self.driver.write(pattern)
        self.levels = pattern
        self.tag = tag if pattern else 0

    def off(self) -> None:
        self.driver.write({})
        self.levels = {}
        self.tag = 0
