"""One LED from near the axis to beyond the objective's NA (the paper's Fig. 4a; paper, 0.5 NA
objective: fine up to NA ≈ 0.58, 12-17 µm from NA ≈ 0.68), with the LED's brightness as is and
with the paper's exposure compensation (1/cos θ).
Run:  focuslock experiment na-sweep --out DIR [--full]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.optics import Led, Pattern, Preset, preset
from training.experiments.runner import (
    CELLS,
    RMSE_COLUMNS,
    Arm,
    Column,
    Size,
    compensated_brightness,
    run_arm,
    write_figure,
    write_table,
)

NAME = "na-sweep"
TITLE = "One LED's NA, with and without exposure compensation (paper Fig. 4a)"
LED_NA = {"tiny": (0.2, 0.6), "small": (0.1, 0.3, 0.45, 0.55, 0.7),
          "full": (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65,
                   0.7, 0.75)}


NaVector = tuple[float, float]


def sweep_arms(nas: Sequence[NaVector], compensations: Sequence[bool] = (False, True),
               kinds: tuple[str, ...] = CELLS, system: Preset | None = None
               ) -> list[tuple[NaVector, bool, Arm]]:
    """One arm per LED (its NA vector) and exposure: the LED as is, or with the paper's 1/cos θ
    compensation; on the paper's microscope, or on ``system`` (a user's, for the designer)."""
    out = []
    for na in nas:
        for compensated in compensations:
            magnitude = math.hypot(*na)
            brightness = compensated_brightness(magnitude) if compensated else 1.0
            where = f"NA {magnitude:.2f}" if na[0] == 0 else f"NA ({na[0]:+.2f}, {na[1]:+.2f})"
            label = where + (" compensated" if compensated else "")
            pattern = Pattern("autofocus", (Led(na[0], na[1], brightness),))
            out.append((na, compensated, Arm(label, kinds=kinds, autofocus=pattern,
                                             system=system)))
    return out


COLUMNS = (Column("led_na", "LED NA", "{:.2f}"), Column("compensated", "1/cos θ exposure"),
           *RMSE_COLUMNS)


def sweep_row(na: NaVector, compensated: bool, reading: dict[str, Any]) -> dict[str, Any]:
    return {"led_na": math.hypot(*na), "led_na_x": na[0], "led_na_y": na[1],
            "compensated": compensated, **reading}


def draw_sweep(axes: Any, rows: Sequence[dict[str, Any]], objective_na: float) -> None:
    """RMSE against the LED's NA, a line per exposure, the objective's NA marked."""
    for compensated, style in ((False, "o-"), (True, "s--")):
        part = [r for r in rows if r["compensated"] == compensated]
        if part:
            axes.plot([r["led_na"] for r in part], [r["rmse_um"] for r in part], style,
                      label="1/cos θ exposure" if compensated else "same exposure")
    axes.axvline(objective_na, color="grey", lw=1, ls=":", label="objective NA")
    axes.set_xlabel("LED NA")
    axes.set_ylabel("held-out RMSE (µm)")
    axes.legend(fontsize=8)


def run(out: Path, size: Size, command: str) -> list[dict[str, Any]]:
    rows = [sweep_row(na, compensated, run_arm(out, arm, size))
            for na, compensated, arm in sweep_arms([(0.0, na) for na in LED_NA[size.name]])]
    write_table(out, NAME, TITLE, rows, COLUMNS, size, command)
    objective_na = preset("paper").optics.na
    write_figure(out, NAME, lambda axes: draw_sweep(axes, rows, objective_na),
                 "single-LED NA sweep", size)
    return rows
