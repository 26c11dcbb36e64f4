"""One LED from near the axis to beyond the objective's NA (the paper's Fig. 4a; paper, 0.5 NA
objective: fine up to NA ≈ 0.58, 12-17 µm from NA ≈ 0.68), with the LED's brightness as is and
with the paper's exposure compensation (1/cos θ).
Run:  focuslock experiment na-sweep --out DIR [--full]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.optics import preset
from training.experiments.runner import (
    RMSE_COLUMNS,
    Arm,
    Column,
    Size,
    compensated_brightness,
    run_arm,
    single_led,
    write_figure,
    write_table,
)

NAME = "na-sweep"
TITLE = "One LED's NA, with and without exposure compensation (paper Fig. 4a)"
LED_NA = {"tiny": (0.2, 0.6), "small": (0.1, 0.3, 0.45, 0.55, 0.7),
          "full": (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65,
                   0.7, 0.75)}


def arms(size: Size) -> list[tuple[float, bool, Arm]]:
    out = []
    for na in LED_NA[size.name]:
        for compensated in (False, True):
            brightness = compensated_brightness(na) if compensated else 1.0
            label = f"NA {na:.2f}" + (" compensated" if compensated else "")
            out.append((na, compensated, Arm(label, autofocus=single_led(na, brightness))))
    return out


def run(out: Path, size: Size, command: str) -> list[dict[str, Any]]:
    rows = []
    for na, compensated, arm in arms(size):
        rows.append({"led_na": na, "compensated": compensated, **run_arm(out, arm, size)})
    columns = (Column("led_na", "LED NA", "{:.2f}"), Column("compensated", "1/cos θ exposure"),
               *RMSE_COLUMNS)
    write_table(out, NAME, TITLE, rows, columns, size, command)
    objective_na = preset("paper").optics.na

    def draw(axes: Any) -> None:
        for compensated, style in ((False, "o-"), (True, "s--")):
            part = [r for r in rows if r["compensated"] == compensated]
            axes.plot([r["led_na"] for r in part], [r["rmse_um"] for r in part], style,
                      label="1/cos θ exposure" if compensated else "same exposure")
        axes.axvline(objective_na, color="grey", lw=1, ls=":", label="objective NA")
        axes.set_xlabel("LED NA")
        axes.set_ylabel("held-out RMSE (µm)")
        axes.legend(fontsize=8)

    write_figure(out, NAME, draw, "single-LED NA sweep", size)
    return rows
