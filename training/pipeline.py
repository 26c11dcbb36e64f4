"""Training and evaluation runs: data folder -> bundle + report, bundle + data folder -> report.

The steps live in their own modules (dataset, network, export, report); this one only strings them
together and writes down what it did, so a bundle can say how it was made.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from controller import __version__
from controller.features import FeatureSpec, Standardizer
from controller.model import BUNDLE_FORMAT, FocusModel, ModelError, check_fit, read_record
from training.dataset import Dataset, load_dataset
from training.export import (
    load_float_weights,
    representative_rows,
    run_tflite,
    to_tflite,
    write_bundle,
)
from training.network import HyperParams, build, fit, weights_from_arrays, weights_to_arrays
from training.report import metrics, write_report

log = logging.getLogger(__name__)
INT8_TOLERANCE = 0.05  # the int8 model may be this much worse than the float one (relative RMSE)


def code_version() -> str:
    """The package version plus the git commit the code came from, when there is one."""
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=5, cwd=Path(__file__).parent, check=True)
        return f"{__version__}+{commit.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def per_frame(dataset: Dataset, patch_um: np.ndarray) -> dict[str, np.ndarray]:
    """Median over each frame's patches, as the controller combines them, with the labels."""
    order = np.argsort(dataset.plane, kind="stable")
    _, starts = np.unique(dataset.plane[order], return_index=True)
    groups = np.split(order, starts[1:])
    return {
        "predicted": np.array([np.median(patch_um[g]) for g in groups]),
        "label": np.array([dataset.defocus_um[g[0]] for g in groups], np.float64),
        "truth": np.array([dataset.true_defocus_um[g[0]] for g in groups], np.float64),
        "stack": np.array([dataset.names[dataset.stack[g[0]]] for g in groups]),
    }


def _truth_metrics(frames: dict[str, np.ndarray]) -> dict[str, Any] | None:
    known = np.isfinite(frames["truth"])
    if not known.any():
        return None
    return metrics(frames["truth"][known], frames["predicted"][known])


def _ground_truth_error(dataset: Dataset) -> dict[str, float] | None:
    """How far the incoherent-channel focus was from the simulator's, per stack (µm)."""
    errors = []
    for i in np.unique(dataset.stack):
        row = np.flatnonzero(dataset.stack == i)[0]
        if np.isfinite(dataset.true_defocus_um[row]):
            errors.append(abs(float(dataset.defocus_um[row] - dataset.true_defocus_um[row])))
    if not errors:
        return None
    e = np.array(errors)
    return {"n_stacks": int(e.size), "median_um": float(np.median(e)),
            "p90_um": float(np.percentile(e, 90)), "max_um": float(e.max())}


def train(data_dir: Path, out: Path, *, spec: FeatureSpec, hp: HyperParams,
          finetune: Path | None = None, validation_fraction: float = 0.15, workers: int = 1,
          cache_dir: Path | None = None, verbose: int = 2) -> dict[str, Any]:
    """Train (or fine-tune) on a folder of stacks and write a verified bundle with its report."""
    base: dict[str, Any] | None = None
    if finetune is not None:
        base = read_record(finetune)
        spec = FeatureSpec.from_dict(base["feature_spec"])  # fine-tuning keeps the features ...
        arch = {k: base["hyperparameters"][k]
                for k in ("depth", "width", "dropout", "output_scale_um")}
        hp = replace(hp, **arch)
    data = load_dataset(data_dir, spec, cache_dir=cache_dir, workers=workers)
    if base is not None:
        check_fit(base, data.optics, data.pattern)
        standardizer = Standardizer.from_dict(base["standardizer"])  # ... and the normalisation
    train_set, val_set = data.split(validation_fraction, hp.seed)
    if base is None:
        standardizer = Standardizer.fit(train_set.features)
    x_train = standardizer.apply(train_set.features)
    x_val = standardizer.apply(val_set.features)
    model = build(spec.n_features, hp)
    if finetune is not None and base is not None:
        weights_from_arrays(model, load_float_weights(finetune, base))
    history = fit(model, hp, x_train, train_set.defocus_um, x_val, val_set.defocus_um,
                  verbose=verbose)

    float_model = to_tflite(model)
    int8_model = to_tflite(model, representative_rows(x_train, hp.seed))
    float_patch = run_tflite(float_model, x_val)
    int8_patch = run_tflite(int8_model, x_val)
    float_frames, int8_frames = per_frame(val_set, float_patch), per_frame(val_set, int8_patch)
    float_m = metrics(float_frames["label"], float_frames["predicted"])
    int8_m = metrics(int8_frames["label"], int8_frames["predicted"])
    int8_ok = int8_m["rmse_um"] <= (1 + INT8_TOLERANCE) * float_m["rmse_um"]
    if not int8_ok:
        log.warning("!!! the int8 model's validation RMSE %.3f µm is more than %d %% worse than "
                    "the float model's %.3f µm: check the representative data and the ranges !!!",
                    int8_m["rmse_um"], round(100 * INT8_TOLERANCE), float_m["rmse_um"])
    labels = train_set.defocus_um
    record: dict[str, Any] = {
        "focuslock_model": BUNDLE_FORMAT,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "feature_spec": spec.to_dict(),
        "standardizer": standardizer.to_dict(),
        "optics": data.optics.to_dict(),
        "illumination": data.pattern.to_dict(),
        "defocus_range_um": [float(labels.min()), float(labels.max())],
        "data": {
            "folder": str(data_dir),
            "train": train_set.summary(),
            "validation": val_set.summary(),
            "validation_fraction": validation_fraction,
            "ground_truth_vs_simulator": _ground_truth_error(data),
        },
        "fine_tuned_from": None if base is None else {
            "bundle": str(finetune), "weights_sha256": base.get("weights_sha256"),
            "data": base.get("data", {}).get("folder")},
        "hyperparameters": hp.to_dict(),
        "training": {"epochs_run": len(history.val_rmse_um),
                     "best_epoch": history.best_epoch + 1,
                     "train_rmse_um": history.train_rmse_um,
                     "val_rmse_um": history.val_rmse_um},
        "metrics": {
            "patch_rmse_um": float(np.sqrt(np.mean((int8_patch - val_set.defocus_um) ** 2))),
            "float32_patch_rmse_um": float(np.sqrt(np.mean((float_patch - val_set.defocus_um)
                                                           ** 2))),
            "float32": float_m,
            "int8": int8_m,
            "int8_within_5_percent_of_float32": bool(int8_ok),
            "int8_vs_simulated_truth": _truth_metrics(int8_frames),
        },
    }
    write_bundle(out, int8_model, weights_to_arrays(model), record)
    # The controller's own loader must accept what was written and give the same answers.
    loaded = FocusModel.load(out, optics=data.optics, pattern=data.pattern)
    if not np.allclose(loaded.predict_features(val_set.features), int8_patch, atol=1e-4):
        raise ModelError(f"{out}: the controller's predictions differ from the exporter's")
    write_report(out / "report", int8_frames["label"], int8_frames["predicted"],
                 f"{out.name}: validation, int8", {"bundle": str(out), "data": str(data_dir)},
                 (history.train_rmse_um, history.val_rmse_um), list(int8_frames["stack"]))
    return record


def evaluate(bundle: Path, data_dir: Path, report_dir: Path, *, workers: int = 1,
             cache_dir: Path | None = None) -> dict[str, Any]:
    """The bundle's accuracy on a folder of stacks (per frame, patches combined by median)."""
    record = read_record(bundle)
    spec = FeatureSpec.from_dict(record["feature_spec"])
    data = load_dataset(data_dir, spec, cache_dir=cache_dir, workers=workers)
    model = FocusModel.load(bundle, optics=data.optics, pattern=data.pattern)
    frames = per_frame(data, model.predict_features(data.features))
    summary = {"bundle": str(bundle), "data": str(data_dir), "stacks": data.summary()["n_stacks"],
               "skipped": data.summary()["skipped"],
               "vs_simulated_truth": _truth_metrics(frames)}
    write_report(report_dir, frames["label"], frames["predicted"],
                 f"{bundle.name} on {data_dir.name}", summary, None, list(frames["stack"]))
    return {**summary, **metrics(frames["label"], frames["predicted"])}
