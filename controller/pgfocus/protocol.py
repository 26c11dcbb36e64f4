"""The pgFocus serial protocol as Micro-Manager's pgFocus adapter speaks it: pure functions that
read a command line and write the reply lines, and the unit conversions between the lock (µm)
and the pgFocus (sensor pixels, DAC units, microns per volt).

What the adapter expects, from its source (mmCoreAndDevices DeviceAdapters/pgFocus): commands
end with ``\\r``, replies with ``\\r\\n``; its monitoring thread splits replies at ``\\r`` and reads
each line's first word: ``STATS:`` (ten space-separated numbers, in this order: running time
ms, loop time µs, light min, light max, DAC units, sensor offset px, slope DAU/px, exposure µs,
ADC units, ADC difference; integers except offset and slope), ``VERSION:``, ``SLOPE:``,
``GAIN:``, ``MPV:``, ``INTERCEPT:``, ``RESIDUALS:``, ``LIGHT:``, ``INFO:``, ``ERROR:``; it
ignores other lines (the firmware's ``OK``). A ``GAIN:`` or ``MPV:`` line makes it send the value
back as ``gain x`` / ``mpv x``, so a setting is answered ``OK``, never echoed.

Its "Standard Deviation nM" is the sample standard deviation of the offsets of its last 31
``STATS:`` lines × slope / 1638 DAU per volt × microns per volt × 1000; so a slope of
``um_per_pixel × 1638 / mpv`` DAU per pixel makes it read the lock's jitter in nm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BAUD = 57600
COMMAND_END = b"\r"
REPLY_END = b"\r\n"
MAX_LINE_CHARS = 128  # the longest command the adapter sends is "offset 127.999..."
IDENTITY = "BIG-pgFocus"  # the adapter's device detection wants exactly this answer to "i"
SENSOR_PIXELS = 128  # the adapter accepts offsets in [0, 128)
CENTRE_PX = SENSOR_PIXELS / 2  # the lock's offset 0 µm
DAU_PER_VOLT = 1638  # the adapter's DAUPERVOLT
MAX_DAU = 16384  # the adapter's 14-bit DAC: 0 .. 16383 is -5 .. +5 V
DEFAULT_MPV = 10  # the adapter's and the firmware's microns per volt at start
ADAPTER_QUEUE = 31  # offsets the adapter keeps for its standard deviation
SILENT = frozenset({"e", "E"})  # auto exposure off / on: the firmware answers nothing


class ProtocolError(ValueError):
    """A command line the bridge refuses; the message is the ``ERROR:`` line's text."""


@dataclass(frozen=True)
class Command:
    """One command: its word (``v``, ``offset`` ...) and its argument text ('' for a query)."""

    word: str
    argument: str = ""


# The adapter's single-letter commands and the firmware's query words; a word in SETTABLE takes
# a number too ("offset 64", "mpv 10").
LETTERS = frozenset({"f", "s", "v", "i", "l", "c", "e", "E"})
QUERIES = frozenset({"version", "slope", "gain", "intercept", "residuals", "offset", "mpv",
                     "exposure"})
SETTABLE = frozenset({"offset", "gain", "mpv", "exposure"})


def parse_command(line: str) -> Command:
    """One command line (without its ``\\r``); ProtocolError naming what is wrong."""
    text = line.strip()
    if not text.isprintable() or not text.isascii():
        raise ProtocolError("not a command: unprintable characters")
    if len(text) > MAX_LINE_CHARS:
        raise ProtocolError(f"not a command: longer than {MAX_LINE_CHARS} characters")
    if text in SILENT:
        return Command(text)
    if text.lower() in LETTERS:
        return Command(text.lower())
    word, _, argument = text.lower().partition(" ")
    argument = argument.strip()
    if word in SETTABLE and argument:
        return Command(word, argument)
    if word in QUERIES and not argument:
        return Command(word)
    raise ProtocolError(f"unknown command {text[:40]!r}")


def number(argument: str, low: float, high: float, *, high_open: bool = False) -> float:
    """The argument as a finite number in [low, high] (or [low, high)); ProtocolError
    ("Out of Range", the firmware's words) otherwise. Unlike the firmware's atof, text that is
    not a number is refused, not read as 0."""
    try:
        value = float(argument)
    except ValueError:
        raise ProtocolError(f"not a number: {argument[:40]!r}") from None
    inside = low <= value < high if high_open else low <= value <= high
    if not (math.isfinite(value) and inside):
        raise ProtocolError("Out of Range")
    return value


def clean(text: str) -> str:
    """Text for one reply line: no line ends or other control characters inside it."""
    return "".join(c if c.isprintable() else " " for c in text)


def info(text: str) -> str:
    return f"INFO: {clean(text)}"


def error(text: str) -> str:
    return f"ERROR: {clean(text)}"


def reply(lines: list[str]) -> bytes:
    """Reply lines as they go on the wire."""
    return b"".join(line.encode("ascii", "replace") + REPLY_END for line in lines)


# -- units ------------------------------------------------------------------------------------


def slope_dau_per_px(um_per_pixel: float, mpv: int) -> float:
    """The slope that makes the adapter's nm readings the lock's: its DAU per sensor pixel."""
    return um_per_pixel * DAU_PER_VOLT / mpv


def px_from_um(um: float, um_per_pixel: float) -> float:
    """A position relative to focus (µm) as a sensor pixel; offset 0 µm is the centre pixel."""
    return CENTRE_PX + um / um_per_pixel


def um_from_px(px: float, um_per_pixel: float) -> float:
    return (px - CENTRE_PX) * um_per_pixel


def dau_from_z(z_um: float, mpv: int) -> int:
    """The drive's z as the adapter's DAC units, so its "Output nM" reads z in nm (clipped to
    the DAC's ±5 V, ±5 × mpv µm)."""
    dau = round((z_um / mpv + 5) * MAX_DAU / 10)
    return min(max(dau, 0), MAX_DAU - 1)


@dataclass(frozen=True)
class Stats:
    """One ``STATS:`` line's values (the adapter's order)."""

    time_ms: int
    loop_us: int
    dau: int
    offset_px: float
    slope: float
    exposure_us: int
    light_min: int = 0
    light_max: int = 0
    adc: int = 0
    adc_difference: int = 0


def stats_line(stats: Stats) -> str:
    return (f"STATS: {stats.time_ms} {stats.loop_us} {stats.light_min} {stats.light_max} "
            f"{stats.dau} {stats.offset_px:.4f} {stats.slope:.4f} {stats.exposure_us} "
            f"{stats.adc} {stats.adc_difference}")


def light_line(time_ms: int) -> str:
    """The light profile: the box's camera has no line sensor, so every pixel reads 0."""
    return "LIGHT: " + " ".join([str(time_ms)] + ["0"] * SENSOR_PIXELS)
