"""Calibrate a bundle's confidence on readings of sample families it never saw.

The readings come from leave-one-family-out: for each family, a network trained on all the
others reads that family's frames (benchmarks/bench_lofo.py saves them). From them:

- ``max_unfamiliarity``: the 99th percentile of those readings' unfamiliarity. A new family is
  what the network must cope with; the gate is there for what is stranger still (an empty or
  foreign field, a fault), not for every sample it has not seen;
- ``max_sign_ambiguity``: the largest limit (in steps of 0.05) under which the network's own sign
  is wrong for at most ``MAX_WRONG_SIGN`` of the readings beyond ±2 µm that the gates pass; more
  ambiguous readings have their sign found by a probe move. When no limit does (not even 0:
  a network confidently wrong), None: the network's sign is never trusted, every sign probed;
- the expected error: the 95th percentile of |error| of what the loop acts on, by predicted
  distance (``DISTANCE_EDGES_UM``).

How honest the stated error is, is measured the same way, one level deeper: for each family the
limits and the table are fitted on the other families' readings and checked on that family's
(``cross_checked``): the share of its passed readings within their stated error, per family and
per distance bin (the reliability curve of the report).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import numpy as np

from controller.confidence import (
    EXPECTED_ERROR_QUANTILE,
    Calibration,
    DistanceTable,
    Familiarity,
)
from controller.model import FocusModel
from training.export import amend_record
from training.readings import Readings
from training.report import SIGN_MARGIN_UM

MAX_WRONG_SIGN = 0.005  # issue 12: wrong sign beyond ±2 µm among passed readings
UNFAMILIARITY_QUANTILE = 99.0
DISTANCE_EDGES_UM = (0.0, 2.0, 5.0, 10.0, 20.0)
AMBIGUITY_STEPS = np.round(np.arange(0.0, 1.0001, 0.05), 2)
MIN_BIN_READINGS = 20  # fewer readings in a distance bin: it takes the overall percentile
TRUSTED_SIGN = 1.0  # a limit on the sign ambiguity that every reading is within
TRAINING_EDGE = 1.0  # the unfamiliarity of the training rows' 99th percentile


def fit(readings: Readings, description: str) -> Calibration:
    """The limits and the expected error from held-out readings (see the module's docstring)."""
    base = readings.trusted & np.isfinite(readings.predicted)
    unfamiliarity = readings.unfamiliarity[base & np.isfinite(readings.unfamiliarity)]
    max_unfamiliarity = float(np.percentile(unfamiliarity, UNFAMILIARITY_QUANTILE)) \
        if unfamiliarity.size else float("inf")
    familiar = base & ~(readings.unfamiliarity > max_unfamiliarity)
    far = familiar & (np.abs(readings.label) > SIGN_MARGIN_UM)
    max_ambiguity: float | None = None
    for limit in AMBIGUITY_STEPS:
        acted = far & ~(readings.ambiguity > limit)
        wrong = np.sign(readings.predicted[acted]) != np.sign(readings.label[acted])
        if wrong.size and wrong.mean() <= MAX_WRONG_SIGN:
            max_ambiguity = float(limit)
    limits = Calibration(max_ambiguity, max_unfamiliarity, None, description)
    passed = judged(readings, limits)
    return Calibration(max_ambiguity, max_unfamiliarity, _table(passed), description)


def judged(readings: Readings, limits: Calibration, *, passed_only: bool = True) -> Readings:
    """The readings as a bundle with these limits would have judged them (only those the gates
    pass, unless not ``passed_only``)."""
    ambiguous = np.array([limits.sign_is_ambiguous(float(a)) for a in readings.ambiguity], bool)
    limit = np.array([limits.unfamiliarity_limit(d) for d in _distance(readings)])
    passed = readings.trusted & ~(readings.unfamiliarity > limit)
    result = Readings(**{**readings.__dict__, "sign_ambiguous": ambiguous, "passed": passed})
    table = limits.expected_error
    if table is not None:
        result.expected_error = np.array([table.at(d) for d in _distance(result)])
    return result.where(passed) if passed_only else result


def _distance(r: Readings) -> np.ndarray:
    return np.where(np.isfinite(r.distance), r.distance, np.abs(r.predicted))


def _table(passed: Readings) -> DistanceTable:
    # "higher": at least 95 % of the errors within
    return percentile_table(passed.acted_error, _distance(passed), EXPECTED_ERROR_QUANTILE,
                            method="higher", empty=1.0, floor=1e-3)


def percentile_table(values: np.ndarray, distance_um: np.ndarray, quantile: float, *,
                     method: Literal["linear", "higher"] = "linear", empty: float,
                     floor: float) -> DistanceTable:
    """The ``quantile`` of ``values`` in each bin of ``DISTANCE_EDGES_UM`` (a bin with fewer than
    ``MIN_BIN_READINGS`` takes the overall one; none at all, ``empty``), at least ``floor``."""
    def at(inside: np.ndarray) -> float:
        return float(np.percentile(inside, quantile, method=method))

    overall = at(values) if values.size else empty
    edges = (*DISTANCE_EDGES_UM, np.inf)
    bounds = []
    for low, high in itertools.pairwise(edges):
        inside = values[(distance_um >= low) & (distance_um < high)]
        bounds.append(at(inside) if inside.size >= MIN_BIN_READINGS else overall)
    return DistanceTable(DISTANCE_EDGES_UM, tuple(max(b, floor) for b in bounds))


def cross_checked(readings: Readings) -> dict[str, Any]:
    """For each family: limits fitted on the others, checked on it (see the docstring)."""
    result: dict[str, Any] = {}
    stated, observed = [], []
    for kind in sorted(set(readings.kind)):
        mine = readings.kind == kind
        limits = fit(readings.where(~mine), f"all families but {kind}")
        passed = judged(readings.where(mine), limits)
        within = passed.acted_error <= passed.expected_error
        far = np.abs(passed.label) > SIGN_MARGIN_UM
        decided = far & ~passed.sign_ambiguous
        wrong = np.sign(passed.predicted[decided]) != np.sign(passed.label[decided])
        result[kind] = {
            "passed": float(passed.label.size / max(int(mine.sum()), 1)),
            "within_stated_error": float(within.mean()) if within.size else None,
            "wrong_sign_passed_unambiguous": float(wrong.mean()) if wrong.size else None,
            "sign_ambiguous": float(passed.sign_ambiguous.mean()) if passed.label.size else None,
        }
        stated.append(passed.expected_error)
        observed.append(passed.acted_error)
    result["reliability"] = reliability(np.concatenate(stated), np.concatenate(observed))
    return result


def reliability(stated: np.ndarray, observed: np.ndarray) -> list[dict[str, float]]:
    """Per stated bound: how many readings stated it, and the share within it (0.95 is
    honest) with the observed 95th percentile."""
    rows = []
    for bound in np.unique(np.round(stated, 3)):
        inside = np.round(stated, 3) == bound
        rows.append({"stated_um": float(bound), "n": int(inside.sum()),
                     "within": float(np.mean(observed[inside] <= stated[inside])),
                     "observed_p95_um": float(np.percentile(observed[inside],
                                                            EXPECTED_ERROR_QUANTILE))})
    return rows


def plot_reliability(rows: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stated = [r["stated_um"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 5), dpi=80)
    top = max([*stated, *(r["observed_p95_um"] for r in rows)]) * 1.1
    ax.plot([0, top], [0, top], "k-", lw=0.8, label="honest")
    ax.scatter(stated, [r["observed_p95_um"] for r in rows],
               s=[max(8.0, r["n"] / 20) for r in rows])
    for r in rows:
        ax.annotate(f"{r['within']:.0%}", (r["stated_um"], r["observed_p95_um"]), fontsize=7)
    ax.set(xlabel="stated 95 % error (µm)", ylabel="observed 95th percentile |error| (µm)",
           title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def install(bundle: Path, calibration: Calibration) -> dict[str, Any]:
    """Write the calibration into the bundle's record (the weights are untouched) and check
    that the controller loads it."""
    return amend_record(bundle, "confidence",
                        Calibration.from_dict(calibration.to_dict()).to_dict())


def install_familiarity(bundle: Path, data: Path) -> Familiarity:
    """Fit the bundle's training-data subspace from ``data`` (a store or folder of stacks drawn
    as its training data was) and write it into its record, for a bundle trained before bundles
    carried one. A bundle not yet calibrated on unseen families gets the unfamiliarity gate at
    the edge of that data (score 1: its 99th percentile), its sign trusted as before: it refuses
    samples stranger than what it learned instead of reading them (docs/training.md)."""
    from training.dataset import load_training_data
    from training.pipeline import familiarity_of

    model = FocusModel.load(bundle)
    dataset = load_training_data(data, model.spec, progress=False)
    familiarity = familiarity_of(dataset, model.standardizer, seed=0)
    amend_record(bundle, "familiarity", familiarity.to_dict())
    if model.calibration is None:
        present = dataset.present()
        kinds = ", ".join(sorted({dataset.samples[i] for i in present}))
        install(bundle, Calibration(
            TRUSTED_SIGN, TRAINING_EDGE, None,
            f"no unseen family: the unfamiliarity gate at the edge of the features of "
            f"{len(present)} stacks of {kinds} ({data.name})"))
    return familiarity
