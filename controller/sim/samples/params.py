"""A family's parameters: the given value or a seeded draw from a realistic range, validated and
recorded back into the parameters so the sample's record says what was used."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from controller.sim.errors import SimError


def param(params: dict[str, Any], name: str, draw: Callable[[], Any]) -> Any:
    """The given value, else a seeded draw; the result is recorded back into ``params``."""
    if name not in params or params[name] is None:
        params[name] = draw()
    value = params[name]
    if isinstance(value, np.generic):
        value = value.item()
    params[name] = value
    return value


def param_range(params: dict[str, Any], name: str,
                default: tuple[float, float]) -> tuple[float, float]:
    """A (low, high) range parameter; a single number means exactly that value."""
    value = param(params, name, lambda: list(default))
    try:
        low, high = (float(value), float(value)) if isinstance(value, int | float) else \
            (float(value[0]), float(value[1]))
    except (TypeError, ValueError, IndexError):
        raise SimError(f"sample: {name} must be a number or [low, high], got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise SimError(f"sample: {name} must be finite with low <= high, got {value!r}")
    return low, high


def positive(name: str, value: float) -> float:
    """``value`` as a float, refused unless finite and > 0 (sizes, densities, thicknesses)."""
    if not (math.isfinite(value) and value > 0):
        raise SimError(f"sample: {name} must be positive, got {value}")
    return float(value)


def slices_of(params: dict[str, Any], default: int) -> int:
    """The ``slices`` parameter: 1 is a thin sample (a projection), more a sliced volume."""
    slices = int(param(params, "slices", lambda: default))
    if slices < 1:
        raise SimError(f"sample: slices must be >= 1, got {slices}")
    return slices


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A draw spread evenly over orders of magnitude (densities, sizes, stain strengths)."""
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def choice(params: dict[str, Any], name: str, options: tuple[str, ...],
           rng: np.random.Generator) -> str:
    """A named option, given or drawn uniformly; anything else is refused naming the options."""
    value = param(params, name, lambda: options[int(rng.integers(len(options)))])
    if value not in options:
        raise SimError(f"sample: {name} must be one of {list(options)}, got {value!r}")
    return str(value)
