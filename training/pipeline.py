"""Training and evaluation runs: data -> bundle + report, bundle + data -> report.

The data is a folder of focal stacks or a dataset store built by ``focuslock dataset build``;
either is read in blocks of whole stacks (training/batches.py), so the same data gives the same
model from both. The steps live in their own modules (dataset, batches, network, export, report);
this one only strings them together and writes down what it did, so a bundle can say how it was
made.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from controller import __version__
from controller.confidence import Calibration, DistanceTable, Familiarity
from controller.features import FeatureSpec, Standardizer
from controller.files import replaced_dir, require_writable_dir
from controller.model import (
    BUNDLE_FORMAT,
    RECORD_FILE,
    FocusModel,
    ModelError,
    check_fit,
    read_record,
)
from training.batches import Batches, fit_standardizer, predict_rows
from training.confidence_fit import UNFAMILIARITY_QUANTILE, percentile_table
from training.dataset import Dataset, load_training_data
from training.export import (
    DEFAULT_MAX_SIGN_AMBIGUITY,
    DEFAULT_MAX_UNFAMILIARITY,
    DEFAULT_MIN_CONFIDENCE,
    FAMILIARITY_COMPONENTS,
    FINE_FILE,
    amend_record,
    load_float_weights,
    representative_positions,
    run_tflite,
    to_tflite,
    write_bundle,
)
from training.network import (
    HEADS,
    HyperParams,
    TrainingError,
    build,
    fit,
    weights_from_arrays,
    weights_to_arrays,
)
from training.readings import READINGS_FILE, family_table, frame_groups, frame_readings
from training.report import metrics, write_report

log = logging.getLogger(__name__)
INT8_TOLERANCE = 0.05  # the int8 model may be this much worse than the float one (relative RMSE)
# The fine network answers within ±(range - margin): it regresses towards the middle near the
# edges of its trained range (6 µm frames routed to a ±6 µm network read 4.4 µm), and the main
# network's own error near focus (about 0.5 µm) must not carry a frame there.
FINE_MARGIN_UM = 3.0
MAX_FINE_RANGE_UM = 100.0  # the near-focus network's ±range; the main one's is about ±30 µm
FAMILIARITY_ROWS = 5000  # training rows (a seeded sample) that span the familiarity subspace
MIN_ROWS_PER_FEATURE = 2  # fewer rows cannot say how a new field of a sample scores


def folder_name(path: Path) -> str:
    """How records and reports name a data folder or a bundle: by its own name, never by where
    it lay on the machine that made them (the bundle travels; that machine's paths do not)."""
    return path.resolve().name


def code_version() -> str:
    """The package version plus the git commit the code came from, when there is one."""
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=5, cwd=Path(__file__).parent, check=True)
        return f"{__version__}+{commit.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def per_frame(dataset: Dataset, patch_out: np.ndarray) -> dict[str, np.ndarray]:
    """Median over each frame's patches of one network's signed predictions, with the labels
    (``patch_out``: a row per patch, the signed head first)."""
    groups = frame_groups(dataset)
    signed = np.asarray(patch_out).reshape(dataset.n_rows, -1)[:, 0]
    return {"predicted": np.array([np.median(signed[g]) for g in groups]),
            "label": np.array([dataset.defocus_um[g[0]] for g in groups], np.float64)}


def _truth_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any] | None:
    known = np.isfinite(truth)
    if not known.any():
        return None
    return metrics(truth[known], predicted[known])


def _ground_truth_error(dataset: Dataset) -> dict[str, float] | None:
    """How far the incoherent-channel focus was from the simulator's, per stack (µm)."""
    _, first = np.unique(dataset.stack, return_index=True)  # a row of each stack
    truth = dataset.true_defocus_um[first]
    known = np.isfinite(truth)
    if not known.any():
        return None
    e = np.abs(dataset.defocus_um[first][known] - truth[known]).astype(np.float64)
    return {"n_stacks": int(e.size), "median_um": float(np.median(e)),
            "p90_um": float(np.percentile(e, 90)), "max_um": float(e.max())}


def check_bundle_target(out: Path, force: bool) -> None:
    """Before any work: ``out`` can become the new bundle. An existing bundle is replaced only
    with ``force``; a file, or a folder holding something else, never (nothing is lost)."""
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out}: is a file, not a bundle folder; choose another name")
    if out.is_dir():
        if not force:
            raise TrainingError(f"--out {out}: a bundle folder already exists; pass --force to "
                                f"replace it, or choose another name")
        if any(out.iterdir()) and not (out / RECORD_FILE).is_file():
            raise TrainingError(f"--out {out}: the folder is not a model bundle (no "
                                f"{RECORD_FILE}); refusing to replace it, even with --force")
    require_writable_dir(out.parent)


def check_training_numbers(fine_range_um: float | None, min_confidence: float | None,
                           validation_fraction: float, workers: int) -> None:
    """The numbers ``train`` takes besides the hyper-parameters, checked before any work."""
    if not 0.0 < validation_fraction < 1.0:
        raise TrainingError(f"--validation-fraction must be in (0, 1), got {validation_fraction}")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise TrainingError(f"--min-confidence must be in [0, 1], got {min_confidence}")
    if fine_range_um is not None and not FINE_MARGIN_UM < fine_range_um <= MAX_FINE_RANGE_UM:
        raise TrainingError(f"--fine-range-um must be in ({FINE_MARGIN_UM:g}, "
                            f"{MAX_FINE_RANGE_UM:g}] µm, got {fine_range_um}")
    if workers < 1:
        raise TrainingError(f"--workers must be at least 1, got {workers}")


def train(data_dir: Path, out: Path, *, spec: FeatureSpec, hp: HyperParams, force: bool = False,
          finetune: Path | None = None, fine_range_um: float | None = None, mirror: bool = False,
          min_confidence: float | None = None, validation_fraction: float = 0.15,
          workers: int = 1, cache_dir: Path | None = None, hold_out_kinds: Sequence[str] = (),
          verbose: int = 2) -> dict[str, Any]:
    """Train (or fine-tune) on a folder of stacks or a dataset store and write a verified bundle
    with its report.

    With ``fine_range_um`` a second network is trained on the frames within that distance of
    focus (from scratch, also when fine-tuning); the controller switches to it when the main
    network puts a frame within ``fine_range_um - FINE_MARGIN_UM``. ``min_confidence`` is the
    threshold the bundle carries (None: the fine-tuned bundle's, else DEFAULT_MIN_CONFIDENCE).
    The bundle is written to a new folder beside ``out`` and switched in once verified; an
    existing ``out`` is replaced only with ``force``. Stacks of the ``hold_out_kinds`` take no
    part (neither training nor validation), for testing on a sample kind never seen.
    """
    check_training_numbers(fine_range_um, min_confidence, validation_fraction, workers)
    check_bundle_target(out, force)
    base: dict[str, Any] | None = None
    fine_tuned_from: dict[str, Any] | None = None
    threshold = DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence
    if finetune is not None:
        base = read_record(finetune)
        fine_tuned_from = {"bundle": folder_name(finetune),
                           "weights_sha256": base.get("weights_sha256"),
                           "data": base.get("data", {}).get("folder"),
                           "patch_rmse_um": patch_rmse_floor(base)}
        if min_confidence is None:
            threshold = float(base["min_confidence"])
        spec = FeatureSpec.from_dict(base["feature_spec"])  # fine-tuning keeps the features ...
        arch = {k: base["hyperparameters"][k]
                for k in ("depth", "width", "dropout", "output_scale_um")}
        hp = replace(hp, **arch)
    data = load_training_data(data_dir, spec, cache_dir=cache_dir, workers=workers,
                              mirror=mirror)
    if base is not None:
        check_fit(base, data.optics, data.pattern)
        standardizer = Standardizer.from_dict(base["standardizer"])  # ... and the normalisation
    calibration = Calibration(DEFAULT_MAX_SIGN_AMBIGUITY, DEFAULT_MAX_UNFAMILIARITY, None,
                              "defaults: not calibrated on unseen families")
    if base is not None and base.get("confidence") is not None:
        calibration = Calibration.from_dict(base["confidence"])
    learning = data.without_kinds(hold_out_kinds) if hold_out_kinds else data
    train_set, val_set = learning.split(validation_fraction, hp.seed)
    val_set = val_set.originals()  # mirrored frames teach; validation judges real frames only
    if base is None:
        standardizer = fit_standardizer(train_set)
    model = build(spec.n_features, hp)
    if finetune is not None and base is not None:
        weights_from_arrays(model, load_float_weights(finetune, base))
    history = fit(model, hp, Batches(train_set, standardizer, hp.batch_size, seed=hp.seed),
                  Batches(val_set, standardizer, hp.batch_size, shuffle=False), verbose=verbose)

    float_patch, int8_model, int8_patch = export_network(model, train_set, val_set, standardizer,
                                                  hp.seed)
    float_m = metrics(*_label_pred(per_frame(val_set, float_patch)))
    int8_m = metrics(*_label_pred(per_frame(val_set, int8_patch)))
    int8_ok = _int8_check("main", float_m["rmse_um"], int8_m["rmse_um"])
    fine: dict[str, Any] | None = None
    fine_model: bytes | None = None
    if fine_range_um is not None:
        fine, fine_model = _train_fine(fine_range_um, spec, hp, train_set, val_set, standardizer,
                                       verbose)
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
        "min_confidence": threshold,
        "outputs": list(HEADS),
        "familiarity": familiarity_of(train_set, standardizer, hp.seed).to_dict(),
        "confidence": calibration.to_dict(),
        "data": {
            "folder": folder_name(data_dir),
            "train": train_set.summary(),
            "validation": val_set.summary(),
            "validation_fraction": validation_fraction,
            "held_out_kinds": sorted(hold_out_kinds),
            "mirror_augmentation": mirror,
            "ground_truth_vs_simulator": _ground_truth_error(data),
        },
        "fine_tuned_from": fine_tuned_from,
        "hyperparameters": hp.to_dict(),
        "training": {"epochs_run": len(history.val_rmse_um),
                     "best_epoch": history.best_epoch + 1,
                     "train_rmse_um": history.train_rmse_um,
                     "val_rmse_um": history.val_rmse_um},
        "metrics": {
            "patch_rmse_um": _patch_rmse(int8_patch, val_set),
            "float32_patch_rmse_um": _patch_rmse(float_patch, val_set),
            "float32": float_m,
            "int8": int8_m,
            "int8_within_5_percent_of_float32": bool(int8_ok),
        },
        "fine": fine,
    }
    with replaced_dir(out) as staging:
        write_bundle(staging, int8_model, weights_to_arrays(model), record, fine_model)
        # The controller's own loader must accept what was written and give the same answers.
        loaded = FocusModel.load(staging, optics=data.optics, pattern=data.pattern)
        if not np.allclose(predict_rows(val_set, loaded.predict_features), int8_patch,
                           atol=1e-4):
            raise ModelError(f"{out}: the controller's predictions differ from the exporter's")
        frames = frame_readings(val_set, loaded)
        record["metrics"]["bundle"] = metrics(frames.label, frames.predicted)
        record["metrics"]["bundle_distance_rmse_um"] = float(
            np.sqrt(np.mean((frames.distance - np.abs(frames.label)) ** 2)))
        record["metrics"]["bundle_vs_simulated_truth"] = _truth_metrics(frames.truth,
                                                                        frames.predicted)
        if base is not None:
            scores, distance = new_field_scores(train_set, standardizer, hp.seed)
            record["confidence"] = familiar_to_its_own_sample(
                calibration, np.concatenate([scores, frames.unfamiliarity]),
                np.concatenate([distance, np.abs(frames.label)])).to_dict()
        write_bundle(staging, int8_model, weights_to_arrays(model), record, fine_model)
        if finetune is not None and base is not None and base.get("pair") is not None:
            record = carry_pair(finetune, base, staging)
        write_report(staging / "report", frames.label, frames.predicted,
                     f"{folder_name(out)}: validation, int8" + (" coarse + fine" if fine else ""),
                     {"bundle": folder_name(out), "data": folder_name(data_dir)},
                     (history.train_rmse_um, history.val_rmse_um), list(frames.stack))
    return record


def familiar_to_its_own_sample(calibration: Calibration, unfamiliarity: np.ndarray,
                               distance_um: np.ndarray) -> Calibration:
    """A fine-tuned bundle's unfamiliarity limits: at least the 99th percentile of the scores
    new fields of its own sample get (``new_field_scores`` and the validation frames, at their
    distances from focus), overall and by distance (``percentile_table``), never below the
    limits it inherited. Its familiarity is fitted to a few stacks, and a new field of the very
    sample it was fine-tuned on scores beyond their edge, near focus most of all: the edge of
    one validation stack refused six new red-cell fields at 13 % of their frames, 47 % within
    5 µm of focus, where the lock works. By distance, because near focus a new field scores
    twice what it does far from it: one limit for all would wave through, far from focus,
    samples stranger still."""
    known = np.isfinite(unfamiliarity)
    scores, distance = unfamiliarity[known], distance_um[known]
    if not scores.size:
        return calibration
    edge = max(float(np.percentile(scores, UNFAMILIARITY_QUANTILE)),
               calibration.max_unfamiliarity)
    table = percentile_table(scores, distance, UNFAMILIARITY_QUANTILE, empty=edge, floor=0.0)
    inherited = tuple(calibration.unfamiliarity_limit(low) for low in table.edges_um)
    limits = tuple(max(pair) for pair in zip(table.values, inherited, strict=True))
    if limits == inherited and edge == calibration.max_unfamiliarity:
        return calibration
    return replace(calibration, max_unfamiliarity=edge,
                   unfamiliarity_by_distance=DistanceTable(table.edges_um, limits),
                   calibrated_on=f"{calibration.calibrated_on}; the unfamiliarity limits raised "
                                 f"to the 99th percentile of new fields of the fine-tuning's "
                                 f"sample, by distance from focus")


def new_field_scores(train_set: Dataset, standardizer: Standardizer, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Each training frame's unfamiliarity (the median over its patches, as the box scores it)
    under a familiarity fitted without its stack, and its distance from focus: how a new field
    of the same sample scores. Empty where that cannot be measured: one stack alone, or the
    others' rows too few to describe the features (fewer than ``MIN_ROWS_PER_FEATURE`` per
    feature, where a subspace fits its own rows' noise and scores every other row in the
    hundreds)."""
    stacks = np.unique(train_set.stack)
    n_features = standardizer.mean.size
    others = [train_set.rows_where(train_set.stack != stack) for stack in stacks]
    if stacks.size < 2 or min(o.n_rows for o in others) < MIN_ROWS_PER_FEATURE * n_features:
        return np.empty(0), np.empty(0)
    scores: list[float] = []
    distance: list[float] = []
    for stack, rest in zip(stacks, others, strict=True):
        familiarity = familiarity_of(rest, standardizer, seed)
        held_out = train_set.rows_where((train_set.stack == stack) & ~train_set.mirrored)
        rows = familiarity.score(standardizer.apply(held_out.features))
        for group in frame_groups(held_out):
            scores.append(float(np.median(rows[group])))
            distance.append(abs(float(held_out.defocus_um[group[0]])))
    return np.array(scores), np.array(distance)


def patch_rmse_floor(base: dict[str, Any]) -> dict[str, float]:
    """The per-patch error below which a bundle fine-tuned from ``base`` never sets its
    confidence scale (controller/model.py), by network: the base's own, measured on many stacks,
    or the floor the base itself had. A calibration validates on one stack, too few fields to
    say how far a new field's patches may disagree: a red-cell calibration validated at 1.0 µm
    and refused most of the twin's good readings (within 0.5 µm from 10 % of starts; with the
    base's 3.2 µm, 50 %)."""
    inherited = (base.get("fine_tuned_from") or {}).get("patch_rmse_um", {})
    floor = {"main": max(float(base["metrics"]["patch_rmse_um"]), inherited.get("main", 0.0))}
    if base.get("fine") is not None:
        floor["fine"] = max(float(base["fine"]["metrics"]["patch_rmse_um"]),
                            inherited.get("fine", 0.0))
    return floor


def carry_pair(base_bundle: Path, base: dict[str, Any], staging: Path) -> dict[str, Any]:
    """A fine-tuned bundle keeps its base's probe pair network: fine-tuning keeps the features
    it reads, and what it learned across families is what a new sample needs most."""
    name = str(base["pair"]["file"])
    shutil.copyfile(base_bundle / name, staging / name)
    return amend_record(staging, "pair", base["pair"])


def _label_pred(frames: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return frames["label"], frames["predicted"]


def _patch_rmse(patch_out: np.ndarray, dataset: Dataset) -> float:
    """RMSE of the signed head over every patch."""
    return float(np.sqrt(np.mean((patch_out[:, 0] - dataset.defocus_um) ** 2)))


def familiarity_of(train_set: Dataset, standardizer: Standardizer, seed: int) -> Familiarity:
    """The training features' subspace, from a seeded sample of their rows."""
    rng = np.random.default_rng([seed, 1])
    positions = np.sort(rng.choice(train_set.n_rows, min(FAMILIARITY_ROWS, train_set.n_rows),
                                   replace=False))
    return Familiarity.fit(standardizer.apply(train_set.features_of(positions)),
                           FAMILIARITY_COMPONENTS)


def export_network(model: Any, train_set: Dataset, val_set: Dataset, standardizer: Standardizer,
            seed: int) -> tuple[np.ndarray, bytes, np.ndarray]:
    """Float32 validation predictions, the int8 model and its validation predictions."""
    float_patch = predict_rows(val_set, partial(run_tflite, to_tflite(model)), standardizer)
    positions = representative_positions(train_set.n_rows, seed)
    order = np.argsort(positions)
    representative = np.empty((positions.size, standardizer.mean.size), np.float32)
    representative[order] = standardizer.apply(train_set.features_of(positions[order]))
    int8_model = to_tflite(model, representative)
    return float_patch, int8_model, predict_rows(val_set, partial(run_tflite, int8_model),
                                                 standardizer)


def _int8_check(name: str, float_rmse: float, int8_rmse: float) -> bool:
    ok = int8_rmse <= (1 + INT8_TOLERANCE) * float_rmse
    if not ok:
        log.warning("!!! %s network: the int8 model's validation RMSE %.3f µm is more than %d %% "
                    "worse than the float model's %.3f µm: check the representative data !!!",
                    name, int8_rmse, round(100 * INT8_TOLERANCE), float_rmse)
    return ok


def _train_fine(range_um: float, spec: FeatureSpec, hp: HyperParams, train_set: Dataset,
                val_set: Dataset, standardizer: Standardizer, verbose: int
                ) -> tuple[dict[str, Any], bytes]:
    """The near-focus network: same features and normalisation, rows within ``range_um``."""
    near_train = train_set.rows_where(np.abs(train_set.defocus_um) <= range_um)
    near_val = val_set.rows_where(np.abs(val_set.defocus_um) <= range_um)
    fine_hp = replace(hp, output_scale_um=range_um / 2)
    model = build(spec.n_features, fine_hp)
    history = fit(model, fine_hp, Batches(near_train, standardizer, hp.batch_size, seed=hp.seed),
                  Batches(near_val, standardizer, hp.batch_size, shuffle=False), verbose=verbose)
    float_patch, int8_model, int8_patch = export_network(model, near_train, near_val, standardizer,
                                                  hp.seed)
    float_rmse = _patch_rmse(float_patch, near_val)
    int8_rmse = _patch_rmse(int8_patch, near_val)
    return {
        "file": FINE_FILE,
        "range_um": [-range_um, range_um],
        "switch_um": range_um - FINE_MARGIN_UM,
        "hyperparameters": fine_hp.to_dict(),
        "training": {"epochs_run": len(history.val_rmse_um),
                     "best_epoch": history.best_epoch + 1,
                     "val_rmse_um": history.val_rmse_um},
        "metrics": {"patch_rmse_um": int8_rmse, "float32_patch_rmse_um": float_rmse,
                    "int8_within_5_percent_of_float32": _int8_check("fine", float_rmse,
                                                                    int8_rmse)},
    }, int8_model


def evaluate(bundle: Path, data_dir: Path, report_dir: Path, *, workers: int = 1,
             cache_dir: Path | None = None) -> dict[str, Any]:
    """The bundle's accuracy on a folder of stacks or a dataset store (per frame, patches
    combined by median, the bundle's gates applied), overall and by sample family; every
    frame's reading is kept in the report (``READINGS_FILE``)."""
    record = read_record(bundle)
    spec = FeatureSpec.from_dict(record["feature_spec"])
    data = load_training_data(data_dir, spec, cache_dir=cache_dir, workers=workers)
    model = FocusModel.load(bundle, optics=data.optics, pattern=data.pattern)
    frames = frame_readings(data, model)
    summary = {"bundle": folder_name(bundle), "data": folder_name(data_dir),
               "stacks": data.summary()["n_stacks"],
               "skipped": data.summary()["skipped"],
               "vs_simulated_truth": _truth_metrics(frames.truth, frames.predicted),
               "by_family": family_table(frames)}
    write_report(report_dir, frames.label, frames.predicted,
                 f"{folder_name(bundle)} on {folder_name(data_dir)}", summary, None,
                 list(frames.stack))
    frames.save(report_dir / READINGS_FILE)
    return {**summary, **metrics(frames.label, frames.predicted)}
