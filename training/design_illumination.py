"""``focuslock design-illumination --optics FILE [--sample FAMILY] --out DIR``: where to put
the autofocus LEDs of a microscope that is not built yet (docs/design-illumination.md).

The paper answered that for its microscope with an NA sweep of one LED (Fig. 4a) and a
comparison of multi-LED patterns (Fig. 4c); this runs compact versions of both
(training/experiments/na_sweep.py and patterns.py, on the same runner) on the virtual
microscope given the user's optics and LEDs (training/optics_file.py) and sample family:

1. one LED at a few NAs from near the axis to beyond the objective's (up to 1.4 times it),
   each chosen among the candidates, with the paper's 1/cos θ exposure compensation;
2. the patterns the candidates make around the best brightfield LED of the sweep (a pair, an
   asymmetric and a symmetric line);
3. the recommendation: the lowest held-out RMSE, with the exposure it needs against a
   brightfield frame under one on-axis LED (rendered frames' mean: each LED at full drive
   delivers cos θ of the light per sample area; darkfield images are dim).

Writes ``design.md``, ``design.json`` and ``design.png`` into --out, with the stores and
bundles it made (a rerun reuses the stores). Progress goes to stdout, a line per arm.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from controller.errors import FocuslockError
from controller.optics import Led, Optics, Pattern
from training.experiments.runner import (
    CELLS,
    RMSE_COLUMNS,
    TEST_SEED,
    Column,
    Size,
    compensated_brightness,
)
from training.optics_file import DesignOptics, design_system

NAME = "design"
# the single LEDs of the sweep: this many, up to this many times the objective's NA
SWEEP_LEDS = {"tiny": 2, "small": 5, "full": 14}
SWEEP_REACH = 1.4
EXPOSURE_SAMPLES = 2  # samples of each kind whose rendered frames give a pattern's exposure


class DesignError(FocuslockError, ValueError):
    """A design that cannot run as asked."""


def families() -> dict[str, tuple[str, ...]]:
    """What --sample accepts: ``cells`` (the paper's: sparse and dense cells) or one kind."""
    from controller.sim.samples import SAMPLE_KINDS

    return {"cells": CELLS, **{kind: (kind,) for kind in SAMPLE_KINDS}}


def sweep_nas(candidates: Sequence[tuple[float, float]], objective_na: float, count: int
              ) -> list[tuple[float, float]]:
    """Up to ``count`` LEDs of distinct NA from near the axis to ``SWEEP_REACH`` times the
    objective's NA, spread evenly over the candidates' NAs (the first and the last always
    among them), each the one nearest the +y axis among the candidates of its NA."""
    by_na: dict[float, tuple[float, float]] = {}
    for c in candidates:
        na = round(math.hypot(*c), 3)
        if na <= SWEEP_REACH * objective_na and (
                na not in by_na or math.hypot(c[0], c[1] - na) < math.hypot(
                    by_na[na][0], by_na[na][1] - na)):
            by_na[na] = c
    nas = sorted(by_na)
    if len(nas) <= count:
        return [by_na[na] for na in nas]
    picks = sorted({round(i) for i in np.linspace(0, len(nas) - 1, count)})
    return [by_na[nas[i]] for i in picks]


def relative_exposure(optics: Optics, pattern: Pattern, kinds: Sequence[str], size: Size
                      ) -> float:
    """The exposure ``pattern`` needs for the frame mean of one on-axis LED (every LED at full
    drive, delivering cos θ of its light per sample area): rendered frames of a few held-out
    samples of each kind, at focus and half the range either side."""
    from controller.sim.imaging import Imager
    from controller.sim.samples import make_sample

    cosines = [1.0 / compensated_brightness(led.na) for led in pattern.leds]
    lit = Pattern(pattern.name, tuple(replace(led, brightness=c)
                                      for led, c in zip(pattern.leds, cosines, strict=True)))
    axial = Pattern("axial", (Led(0.0, 0.0),))
    planes = (-size.z_range_um / 2, 0.0, size.z_range_um / 2)
    axial_mean = lit_mean = 0.0
    for kind in kinds:
        for seed in range(TEST_SEED, TEST_SEED + EXPOSURE_SAMPLES):
            imager = Imager(optics, make_sample(kind, (size.frame, size.frame), optics.pixel_um,
                                                seed))
            axial_mean += float(np.mean([f.mean() for f in imager.planes(axial, planes)]))
            # the imager normalises by the summed brightness: undo it for the absolute light
            lit_mean += sum(cosines) * float(np.mean([f.mean()
                                                      for f in imager.planes(lit, planes)]))
    return axial_mean / lit_mean if lit_mean > 0 else math.inf


def design_illumination(design: DesignOptics, family: str, kinds: tuple[str, ...], size: Size,
                        out: Path, command: str, progress: Callable[[str], None]
                        ) -> dict[str, Any]:
    """Sweep, compare, recommend; write the report and return it (design.json's content)."""
    from training.experiments.na_sweep import sweep_arms, sweep_row
    from training.experiments.patterns import candidate_patterns, pattern_row
    from training.experiments.runner import Arm, run_arm

    system = design_system(design)
    objective_na = design.optics.na
    singles = sweep_arms(sweep_nas(design.candidates, objective_na, SWEEP_LEDS[size.name]),
                         (True,), kinds, system)
    rows: list[dict[str, Any]] = []
    for i, (na, compensated, arm) in enumerate(singles, 1):
        progress(f"NA sweep {i}/{len(singles)}: one LED at {arm.label} ...")
        assert arm.autofocus is not None
        rows.append({**sweep_row(na, compensated, run_arm(out, arm, size)), "family": "single",
                     "leds": 1, "led_nas": [list(na)],
                     "exposure": relative_exposure(design.optics, arm.autofocus, kinds, size)})
    brightfield = [r for r in rows if r["led_na"] < objective_na] or rows
    best = min(brightfield, key=lambda r: r["rmse_um"])
    patterns = {name: pattern for name, pattern in
                candidate_patterns(design.candidates, tuple(best["led_nas"][0]),
                                   objective_na).items() if name != "single"}
    for i, (name, pattern) in enumerate(patterns.items(), 1):
        progress(f"patterns {i}/{len(patterns)}: {name} of {len(pattern.leds)} LEDs ...")
        arm = Arm(name, kinds=kinds, autofocus=pattern, system=system)
        rows.append({**pattern_row(pattern, run_arm(out, arm, size)), "family": name,
                     "led_na": None, "compensated": False,
                     "led_nas": [[led.na_x, led.na_y] for led in pattern.leds],
                     "exposure": relative_exposure(design.optics, pattern, kinds, size)})
    report = _report(design, family, size, command, rows, objective_na)
    _write(out, report, rows, size, objective_na)
    return report


COLUMNS = (Column("arm", "LEDs lit"), Column("family", "family"), Column("leds", "LEDs"),
           *RMSE_COLUMNS, Column("exposure_text", "exposure (on-axis LED = 1)"))


def exposure_text(exposure: float) -> str:
    """Two decimals below 10 (a brightfield pattern), whole numbers above (darkfield)."""
    return f"{exposure:.2f}" if exposure < 10 else f"{exposure:.0f}"


def _report(design: DesignOptics, family: str, size: Size, command: str,
            rows: list[dict[str, Any]], objective_na: float) -> dict[str, Any]:
    winner = min(rows, key=lambda r: r["rmse_um"])
    nas = ", ".join(f"({x:+.2f}, {y:+.2f})" for x, y in winner["led_nas"])
    advice = (f"recommended: {winner['arm']} ({winner['leds']} LED"
              f"{'s' if winner['leds'] > 1 else ''} at NA {nas}): expected RMSE "
              f"{winner['rmse_um']:.1f} µm over ±{size.z_range_um:g} µm "
              f"({winner['rmse_within_5um']:.1f} µm within ±5 µm) at the {size.name} size, "
              f"with {exposure_text(winner['exposure'])} times the exposure of a brightfield "
              f"frame under one on-axis LED")
    optics = design.optics
    return {
        "optics_file": design.name, "sample": family, "size": size.name, "command": command,
        "optics": {"na": optics.na, "magnification": optics.magnification,
                   "camera_pixel_um": optics.camera_pixel_um,
                   "wavelength_um": optics.wavelength_um,
                   "immersion_index": optics.immersion_index},
        "candidates": {"source": design.source, "count": len(design.candidates)},
        "rows": [{k: r.get(k) for k in ("arm", "family", "leds", "led_nas", "rmse_um",
                                         "rmse_within_5um", "wrong_sign_beyond_2um", "frames",
                                         "train_stacks", "test_stacks", "exposure")}
                 for r in rows],
        "recommendation": {"arm": winner["arm"], "led_nas": winner["led_nas"],
                           "rmse_um": winner["rmse_um"],
                           "rmse_within_5um": winner["rmse_within_5um"],
                           "exposure": winner["exposure"], "advice": advice},
        "notes": list(design.notes),
        "objective_na": objective_na,
    }


def _write(out: Path, report: dict[str, Any], rows: list[dict[str, Any]], size: Size,
           objective_na: float) -> None:
    from training.experiments.na_sweep import draw_sweep
    from training.experiments.runner import bar_figure, write_figure, write_table

    title = (f"Autofocus illumination for {report['optics_file']} "
             f"(NA {objective_na:g}, {report['sample']})")
    write_table(out, NAME, title, [{**r, "exposure_text": exposure_text(r["exposure"])}
                                   for r in rows], COLUMNS, size, report["command"])
    with (out / f"{NAME}.md").open("a") as f:
        f.write("\n" + report["recommendation"]["advice"][0].upper()
                + report["recommendation"]["advice"][1:] + ".\n")
        for note in report["notes"]:
            f.write(f"\nNote: {note}.\n")
    (out / f"{NAME}.json").write_text(json.dumps(report, indent=2) + "\n")
    singles = [r for r in rows if r["family"] == "single"]
    bars = [min(singles, key=lambda r: r["rmse_um"]),
            *(r for r in rows if r["family"] != "single")]

    def draw(panels: list[Any]) -> None:
        draw_sweep(panels[0], singles, objective_na)
        panels[0].set_title("one LED", fontsize=9)
        bar_figure(bars)(panels[1])
        panels[1].set_title("patterns (and the best single LED)", fontsize=9)

    write_figure(out, NAME, draw, title, size, panels=2)
