"""Generalisation across sample types (the paper's Fig. 2c; paper: trained on cells, tissue
sections read 18.2 µm; fine-tuned with 130 tissue stacks, 1.75 µm).

A bundle trained on cells reads held-out cells and held-out tissue; it is then fine-tuned
(``focuslock train --finetune``) on a few tissue stacks, about a third as many as the cells it
learned from (the paper: 130 against 440), and reads both again.
Run:  focuslock experiment generalisation --out DIR [--full]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.experiments import runner
from training.experiments.runner import Arm, Size

NAME = "generalisation"
TITLE = "Cells to tissue, then fine-tuned on a little tissue (paper Fig. 2c)"
CELLS, TISSUE = Arm("cells"), Arm("tissue", kinds=("tissue",))


def run(out: Path, size: Size, command: str) -> list[dict[str, Any]]:
    cells = runner.store(out, CELLS, size, count=size.train_stacks, seed=0, role="train")
    tissue = runner.store(out, TISSUE, size, count=max(4, size.train_stacks * 3 // 10), seed=0,
                   role="train")
    tests = {"cells": runner.test_store(out, CELLS, size),
             "tissue": runner.test_store(out, TISSUE, size)}
    base = runner.train_bundle(out, "cells", cells, size)
    tuned = runner.train_bundle(out, "cells+tissue", tissue, size, finetune=base)
    rows = []
    for trained, bundle, stacks in (("cells", base, cells), ("cells, fine-tuned on tissue",
                                                             tuned, tissue)):
        for tested, data in tests.items():
            rows.append({"arm": f"{trained} → {tested}", "trained": trained, "tested": tested,
                         "train_stacks": runner.stacks_done(stacks),
                         **runner.rmse_on(bundle, data)})
    columns = (runner.Column("trained", "trained on"), runner.Column("tested", "tested on"),
               *runner.RMSE_COLUMNS)
    runner.write_table(out, NAME, TITLE, rows, columns, size, command)

    def draw(axes: Any) -> None:
        width = 0.38
        for k, tested in enumerate(tests):
            part = [r for r in rows if r["tested"] == tested]
            bars = axes.bar([i + (k - 0.5) * width for i in range(len(part))],
                            [r["rmse_um"] for r in part], width, label=f"tested on {tested}")
            axes.bar_label(bars, fmt="%.1f", fontsize=8)
        axes.set_xticks([0, 1], ["trained on cells", "+ fine-tuned on tissue"], fontsize=8)
        axes.set_ylabel("held-out RMSE (µm)")
        axes.legend(fontsize=8)

    runner.write_figure(out, NAME, draw, "cells → tissue", size)
    return rows
