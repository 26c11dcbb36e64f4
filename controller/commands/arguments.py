"""argparse types for the number and flag arguments of every command: a value that is not
what the option takes is refused while the command line is read (exit status 2, one line naming
the option), before any work, file or move."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def finite_float(text: str) -> float:
    """An argparse type: a float that is a real number (not NaN, not an infinity)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def bounded_float(low: float, high: float, *, open_low: bool = False,
                  open_high: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float in [low, high], either end open when asked."""
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"

    def parse(text: str) -> float:
        value = finite_float(text)
        above_low = value > low if open_low else value >= low
        below_high = value < high if open_high else value <= high
        if not (above_low and below_high):
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {text}")
        return value
    return parse


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``low`` (and at most ``high``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"must be at least {low}, got {text}" if high is None
                else f"must be in [{low}, {high}], got {text}")
        return value
    return parse


def yes_no(text: str) -> bool:
    """An argparse type for a flag given a value: true/false, yes/no, 1/0."""
    word = text.strip().lower()
    if word in ("true", "yes", "1", "on"):
        return True
    if word in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
