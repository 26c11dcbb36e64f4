"""What one setting may be: a numeric range, text, or one of a few choices.

Each rule says whether it admits a value and, in words, what it requires; the same words follow
"must be" in a config error and appear beside the setting in the example config
(controller/config.py holds which setting has which rule).
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

MAX_TEXT_CHARS = 4096  # PATH_MAX on Linux: no setting's text is longer
MAX_HOST_CHARS = 253  # DNS's longest name
HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")


class Rule(Protocol):
    """What one setting may be: the check, and the words for the error and the example."""

    def admits(self, value: Any) -> bool: ...

    @property
    def requirement(self) -> str: ...  # follows "must be"


def _number(value: float) -> str:
    """A bound as people write it: 100000 rather than 1e+05."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


@dataclass(frozen=True)
class Within:
    """A closed interval (open at the low end if ``open_low``) in ``unit``; ``or_zero``: 0 too,
    for settings where 0 means "the default of the hardware"."""

    low: float
    high: float
    unit: str = ""
    open_low: bool = False
    or_zero: bool = False

    def admits(self, value: Any) -> bool:
        above = self.low < value if self.open_low else self.low <= value
        return bool((above and value <= self.high) or (self.or_zero and value == 0))

    @property
    def requirement(self) -> str:
        interval = f"{'(' if self.open_low else '['}{_number(self.low)}, {_number(self.high)}]"
        unit = f" {self.unit}" if self.unit else ""
        return f"{'0 or ' if self.or_zero else ''}in {interval}{unit}"


@dataclass(frozen=True)
class Text:
    """A string a file name or an address can be: no NUL character, at most ``max_chars``."""

    required: bool = False
    max_chars: int = MAX_TEXT_CHARS

    def admits(self, value: Any) -> bool:
        return (bool(value) or not self.required) and len(value) <= self.max_chars \
            and "\0" not in value

    @property
    def requirement(self) -> str:
        return f"text of {1 if self.required else 0} to {self.max_chars} characters without NUL"


@dataclass(frozen=True)
class OneOf:
    """One of a few names that are not a type's closed set (the optics presets)."""

    choices: tuple[str, ...]

    def admits(self, value: Any) -> bool:
        return value in self.choices

    @property
    def requirement(self) -> str:
        return f"one of {', '.join(map(repr, self.choices))}"


@dataclass(frozen=True)
class HostNames:
    """Names an HTTP Host header may carry: DNS names or IP addresses (IPv6 with or without
    brackets), without a port or a scheme, so ``box:8470`` or ``http://box`` is refused."""

    def admits(self, value: Any) -> bool:
        return all(is_host_name(name) for name in value)

    @property
    def requirement(self) -> str:
        return "a list of host names or IP addresses, without port or scheme"


def is_host_name(name: str) -> bool:
    """A DNS name or an IP address (IPv6 possibly in brackets), nothing more."""
    if not 0 < len(name) <= MAX_HOST_CHARS:
        return False
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ipaddress.ip_address(bare)
        return True
    except ValueError:
        return bare == name and HOST_NAME.fullmatch(name) is not None


def shown(value: Any) -> str:
    """A value as an error message quotes it: short, even for a 5000-digit integer (which
    Python would refuse to turn into text)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:
        return f"an integer of about {round(value.bit_length() * math.log10(2))} digits"
    text = repr(list(value) if isinstance(value, tuple) else value)  # a tuple was a TOML array
    if isinstance(value, float) and text.endswith(".0"):
        text = text[:-2]  # as the file most likely wrote it: 3 for a gain read as 3.0
    return text if len(text) <= 60 else f"{text[:50]}… ({len(text)} characters)"
