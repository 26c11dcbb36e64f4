"""RMSE against the number of training stacks (the paper's Fig. 2b).

One training store of cells grows through the counts (a build extends it: stack i is always
the same stack), a bundle is trained at each count and read on the same held-out stacks.
Run:  focuslock experiment stack-count --out DIR [--full]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.experiments.runner import (
    RMSE_COLUMNS,
    Arm,
    Size,
    rmse_on,
    stacks_done,
    store,
    test_store,
    train_bundle,
    write_figure,
    write_table,
)

NAME = "stack-count"
TITLE = "RMSE against the number of training stacks (paper Fig. 2b)"


def run(out: Path, size: Size, command: str) -> list[dict[str, Any]]:
    arm = Arm("cells")
    held_out = test_store(out, arm, size)
    rows = []
    for count in size.stack_counts:
        training = store(out, arm, size, count=count, seed=0, role="train")
        bundle = train_bundle(out, f"cells-{count}", training, size)
        rows.append({"arm": f"{count} stacks", "train_stacks": stacks_done(training),
                     **rmse_on(bundle, held_out)})
    write_table(out, NAME, TITLE, rows, RMSE_COLUMNS, size, command)

    def draw(axes: Any) -> None:
        counts = [r["train_stacks"] for r in rows]
        axes.plot(counts, [r["rmse_um"] for r in rows], "o-", label="±range")
        axes.plot(counts, [r["rmse_within_5um"] for r in rows], "s--", label="within ±5 µm")
        axes.set_xscale("log")
        axes.set_xlabel("training stacks")
        axes.set_ylabel("held-out RMSE (µm)")
        axes.legend(fontsize=8)

    write_figure(out, NAME, draw, "RMSE vs training stacks", size)
    return rows
