"""Accuracy figures and plots a person can look at: metrics.json, predictions.csv and PNGs.

Errors grow with the distance from focus, so a single RMSE hides what matters to a focus lock;
every report also gives the RMSE per |defocus| bin and the fraction of wrong signs away from focus.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

BIN_EDGES_UM = (0.0, 2.0, 5.0, 10.0, 20.0, math.inf)
SIGN_MARGIN_UM = 2.0  # below this |defocus| a wrong sign is within the depth of field


def metrics(true_um: np.ndarray, predicted_um: np.ndarray) -> dict[str, Any]:
    """RMSE overall and by |defocus| bin, mean absolute error, wrong-sign fraction."""
    true_um = np.asarray(true_um, np.float64)
    error = np.asarray(predicted_um, np.float64) - true_um
    far = np.abs(true_um) > SIGN_MARGIN_UM
    bins = []
    for low, high in itertools.pairwise(BIN_EDGES_UM):
        inside = (np.abs(true_um) >= low) & (np.abs(true_um) < high)
        if inside.any():
            bins.append({"abs_defocus_um": [low, high if math.isfinite(high) else None],
                         "n": int(inside.sum()),
                         "rmse_um": float(np.sqrt(np.mean(error[inside] ** 2)))})
    wrong = np.sign(predicted_um[far]) != np.sign(true_um[far]) if far.any() else np.array([])
    return {
        "n": int(true_um.size),
        "rmse_um": float(np.sqrt(np.mean(error**2))),
        "mae_um": float(np.mean(np.abs(error))),
        "median_abs_error_um": float(np.median(np.abs(error))),
        "wrong_sign_fraction_beyond_2um": float(np.mean(wrong)) if wrong.size else None,
        "by_abs_defocus": bins,
    }


def write_report(folder: Path, true_um: np.ndarray, predicted_um: np.ndarray, title: str,
                 summary: dict[str, Any], curve: tuple[Sequence[float], Sequence[float]] | None
                 = None, stack_names: Sequence[str] | None = None) -> list[Path]:
    """metrics.json (``summary`` plus the metrics), predictions.csv and the plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    m = metrics(true_um, predicted_um)
    written = [folder / "metrics.json", folder / "predictions.csv"]
    (folder / "metrics.json").write_text(json.dumps({**summary, **m}, indent=1) + "\n")
    names = stack_names if stack_names is not None else [""] * len(true_um)
    lines = ["stack,true_defocus_um,predicted_defocus_um"]
    lines += [f"{n},{t:.4f},{p:.4f}" for n, t, p in zip(names, true_um, predicted_um, strict=True)]
    (folder / "predictions.csv").write_text("\n".join(lines) + "\n")

    limit = float(np.max(np.abs(true_um))) * 1.1
    fig, ax = plt.subplots(figsize=(5, 5), dpi=80)
    ax.plot(true_um, predicted_um, ".", ms=2, alpha=0.4)
    ax.plot([-limit, limit], [-limit, limit], "k-", lw=0.8)
    ax.set(xlabel="true defocus (µm)", ylabel="predicted defocus (µm)",
           title=f"{title}\nRMSE {m['rmse_um']:.2f} µm (n = {m['n']})")
    fig.tight_layout()
    fig.savefig(folder / "pred_vs_true.png")
    plt.close(fig)
    written.append(folder / "pred_vs_true.png")

    fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
    ax.plot(true_um, np.asarray(predicted_um) - true_um, ".", ms=2, alpha=0.4)
    for b in m["by_abs_defocus"]:
        low, high = b["abs_defocus_um"]
        high = limit if high is None else min(high, limit)
        for sign in (-1, 1):
            ax.hlines([b["rmse_um"], -b["rmse_um"]], sign * low, sign * high, colors="C3")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="true defocus (µm)", ylabel="error (µm)",
           title="error vs defocus (red: ±RMSE per |defocus| bin)")
    fig.tight_layout()
    fig.savefig(folder / "error_vs_defocus.png")
    plt.close(fig)
    written.append(folder / "error_vs_defocus.png")

    if curve is not None:
        train, val = curve
        fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
        ax.semilogy(np.arange(1, len(train) + 1), train, label="train (with dropout)")
        ax.semilogy(np.arange(1, len(val) + 1), val, label="validation")
        best = int(np.argmin(val))
        ax.plot(best + 1, val[best], "ko", label=f"kept: epoch {best + 1}")
        ax.set(xlabel="epoch", ylabel="RMSE per patch (µm)", title="training curve")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "training_curve.png")
        plt.close(fig)
        written.append(folder / "training_curve.png")
    return written
