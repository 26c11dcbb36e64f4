"""Multi-LED autofocus patterns (the paper's Fig. 4c; paper: LEDs in an asymmetric line win).

Patterns along y in NA space, on the paper's 0.5 NA microscope: a single LED, a symmetric pair,
a symmetric line, asymmetric lines (all on one side of the axis) and an L of two lines. LEDs
are mutually incoherent: their images add.
Run:  focuslock experiment patterns --out DIR [--full]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.optics import Led, Pattern
from training.experiments import runner
from training.experiments.runner import Arm, Size

NAME = "patterns"
TITLE = "Multi-LED autofocus patterns (paper Fig. 4c)"


def _pattern(*nas: tuple[float, float]) -> Pattern:
    return Pattern("autofocus", tuple(Led(x, y) for x, y in nas))


PATTERNS = {
    "single 0.35": _pattern((0.0, 0.35)),
    "pair ±0.35": _pattern((0.0, -0.35), (0.0, 0.35)),
    "line -0.3..0.3": _pattern(*((0.0, y / 10) for y in range(-3, 4))),
    "asym. line 0.25..0.45": _pattern(*((0.0, y / 20) for y in range(5, 10))),
    "two lines (L)": _pattern(*((0.0, y / 10) for y in range(1, 5)),
                              *((x / 10, 0.0) for x in range(1, 5))),
}
TINY = ("single 0.35", "asym. line 0.25..0.45")


COLUMNS = (runner.Column("arm", "pattern"), runner.Column("leds", "LEDs"), *runner.RMSE_COLUMNS)


def pattern_row(pattern: Pattern, reading: dict[str, Any]) -> dict[str, Any]:
    return {"leds": len(pattern.leds), **reading}


def candidate_patterns(candidates: Sequence[tuple[float, float]], best: tuple[float, float],
                       objective_na: float, tolerance_na: float = 0.02) -> dict[str, Pattern]:
    """The paper's families of patterns built from the LEDs a user can have (their NA vectors):
    the best single LED, the pair it makes with the LED mirrored across the axis, the
    asymmetric line of brightfield LEDs along its direction on its side (0.5-0.95 of the
    objective's NA, the paper's winner: 0.25-0.45 at NA 0.5), the symmetric line through
    the axis (within 0.6 of the NA each way) and the row of brightfield LEDs that share its
    larger NA component (an LED array's row or column: all on its side of the axis). A family
    the candidates cannot make is left out, as is a repeat of one already made."""
    length = math.hypot(*best)
    ux, uy = (best[0] / length, best[1] / length) if length else (0.0, 1.0)

    def along(c: tuple[float, float]) -> float:
        return c[0] * ux + c[1] * uy

    def on_line(c: tuple[float, float]) -> bool:
        return abs(c[1] * ux - c[0] * uy) <= tolerance_na

    def leds(chosen: Sequence[tuple[float, float]]) -> tuple[Led, ...]:
        return tuple(Led(x, y) for x, y in sorted(set(chosen), key=lambda c: (along(c), c)))

    families = {"single": leds([best])}
    mirror = min(candidates, key=lambda c: math.hypot(c[0] + best[0], c[1] + best[1]))
    if math.hypot(mirror[0] + best[0], mirror[1] + best[1]) <= tolerance_na and length:
        families["pair"] = leds([best, mirror])
    families["asymmetric line"] = leds([c for c in candidates if on_line(c)
                                        and 0.5 * objective_na <= along(c)
                                        <= 0.95 * objective_na])
    families["symmetric line"] = leds([c for c in candidates if on_line(c)
                                       and abs(along(c)) <= 0.6 * objective_na])
    axis = 1 if abs(best[1]) >= abs(best[0]) else 0
    families["row across the tilt"] = leds([c for c in candidates
                                            if abs(c[axis] - best[axis]) <= tolerance_na
                                            and math.hypot(*c) < objective_na])
    out: dict[str, Pattern] = {}
    for name, chosen in families.items():
        if (len(chosen) >= (1 if name == "single" else 2)
                and chosen not in [p.leds for p in out.values()]):
            out[name] = Pattern("autofocus", chosen)
    return out


def run(out: Path, size: Size, command: str) -> list[dict[str, Any]]:
    names = TINY if size.name == "tiny" else tuple(PATTERNS)
    rows = [pattern_row(PATTERNS[n], runner.run_arm(out, Arm(n, autofocus=PATTERNS[n]), size))
            for n in names]
    runner.write_table(out, NAME, TITLE, rows, COLUMNS, size, command)
    runner.write_figure(out, NAME, runner.bar_figure(rows), "autofocus patterns", size)
    return rows
