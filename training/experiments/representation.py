"""Fourier magnitude against phase and real part as the network's input (the paper's Fig. 3a;
paper: magnitude 3.65 µm, real part 16.2 µm).

The same stacks featurised four ways (``FeatureSpec.representation``, an option for this
experiment only: the box reads the magnitude): the box's features (magnitude, log), the
magnitude without log (the fair match for the others, which take no log), the phase (the
argument, radians) and the real part.
Run:  focuslock experiment representation --out DIR [--full]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.experiments.runner import (
    RMSE_COLUMNS,
    Arm,
    Column,
    Size,
    bar_figure,
    run_arm,
    write_figure,
    write_table,
)

NAME = "representation"
TITLE = "The spectrum's magnitude, phase or real part as input (paper Fig. 3a)"
ARMS = (Arm("magnitude (box, log)"),
        Arm("magnitude", spec_changes=(("log", False),)),
        Arm("phase", spec_changes=(("representation", "phase"), ("log", False))),
        Arm("real part", spec_changes=(("representation", "real"), ("log", False))))


def run(out: Path, size: Size, command: str) -> list[dict[str, Any]]:
    rows = [run_arm(out, arm, size) for arm in ARMS]
    write_table(out, NAME, TITLE, rows, (Column("arm", "input"), *RMSE_COLUMNS), size, command)
    write_figure(out, NAME, bar_figure(rows), "network input", size)
    return rows
