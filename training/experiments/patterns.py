"""Multi-LED autofocus patterns (the paper's Fig. 4c; paper: LEDs in an asymmetric line win).

Patterns along y in NA space, on the paper's 0.5 NA microscope: a single LED, a symmetric pair,
a symmetric line, asymmetric lines (all on one side of the axis) and an L of two lines. LEDs
are mutually incoherent: their images add.
Run:  focuslock experiment patterns --out DIR [--full]
"""

from __future__ import annotations

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


def run(out: Path, size: Size, command: str) -> list[dict[str, Any]]:
    names = TINY if size.name == "tiny" else tuple(PATTERNS)
    rows = [{"leds": len(PATTERNS[n].leds),
             **runner.run_arm(out, Arm(n, autofocus=PATTERNS[n]), size)} for n in names]
    columns = (runner.Column("arm", "pattern"), runner.Column("leds", "LEDs"),
               *runner.RMSE_COLUMNS)
    runner.write_table(out, NAME, TITLE, rows, columns, size, command)
    runner.write_figure(out, NAME, runner.bar_figure(rows), "autofocus patterns", size)
    return rows
