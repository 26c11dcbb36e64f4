"""Training the probe pair network (controller/probe_pair.py) into a bundle.

Every plane of a stack is paired with the plane ``probe_um`` above it in z (its defocus lower by
``probe_um``), patch by patch and mirror with mirror, from the features the store already holds:
the pairs need no new rendering. The network is the main network's (training/network.py), with
twice the inputs; it learns across every sample family of the data, so the sign it reads rests
on what the families share (the defocus transfer), not on what one of them looks like.

``focuslock pair-probe BUNDLE DATA`` trains it and writes it into the bundle beside the main
network: the file is named by its checksum and the record switched to it atomically, so a
running service sees the old pair or the new one, never half of either.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from controller.model import FocusModel, sha256_of
from controller.probe_pair import PairNetwork, pair_input
from training.batches import Batches, fit_standardizer, stack_runs
from training.dataset import Dataset, DatasetError, FeaturesInMemory, load_training_data
from training.export import amend_record
from training.network import HyperParams, build, fit
from training.pipeline import export_network, folder_name
from training.readings import frame_groups
from training.report import metrics

PAIR_TOLERANCE_UM = 0.3  # a plane this close to z + probe_um is the probe's second frame
DEFAULT_PROBE_UM = 3.0  # the loop's default probe (focus.probe_um, lock.probe_um)


def pair_dataset(data: Dataset, probe_um: float) -> Dataset:
    """The pairs of ``data``: a row per (patch of a plane, same patch ``probe_um`` above it), its
    features ``[low, upper - low]`` in memory, labelled with the lower plane's defocus; the
    lower plane's stack, plane id and mirroring."""
    features = data.features
    low_rows: list[np.ndarray] = []
    upper_rows: list[np.ndarray] = []
    for start, end in zip(*stack_runs(data), strict=True):
        for mirrored in (False, True):
            rows = start + np.flatnonzero(data.mirrored[start:end] == mirrored)
            if rows.size == 0:
                continue
            planes, first = np.unique(data.plane[rows], return_index=True)
            per_plane = np.split(rows[np.argsort(data.plane[rows], kind="stable")],
                                 first[1:])
            defocus = data.defocus_um[rows[first]].astype(np.float64)
            order = np.argsort(defocus)
            for a in range(planes.size):
                wanted = defocus[a] - probe_um
                k = int(np.clip(np.searchsorted(defocus[order], wanted), 1, planes.size - 1))
                b = min(order[k - 1], order[k], key=lambda i: abs(defocus[i] - wanted))
                if abs(defocus[b] - wanted) <= PAIR_TOLERANCE_UM and \
                        per_plane[a].size == per_plane[b].size:
                    low_rows.append(per_plane[a])
                    upper_rows.append(per_plane[b])
    if not low_rows:
        raise DatasetError(f"no pair of planes {probe_um:g} µm apart in the data: its planes "
                           f"must be spaced so that z + {probe_um:g} µm is one of them")
    low = np.concatenate(low_rows)
    upper = np.concatenate(upper_rows)
    pairs = pair_input(features[low], features[upper])
    return Dataset(np.arange(low.size), data.defocus_um[low], data.true_defocus_um[low],
                   data.stack[low], data.plane[low], data.mirrored[low], data.names,
                   data.samples, data.optics, data.pattern, FeaturesInMemory(pairs),
                   data.skipped)


def pair_frames(pairs: Dataset, network: PairNetwork) -> dict[str, np.ndarray]:
    """Each lower frame's reading by ``network`` (median over its patches), with its label and
    sample family: what the report and the benchmark judge."""
    out = network.read_rows(pairs.features)
    groups = frame_groups(pairs)
    return {"predicted": np.array([np.median(out[g, 0]) for g in groups]),
            "distance": np.array([np.median(out[g, 1]) for g in groups]),
            "label": np.array([pairs.defocus_um[g[0]] for g in groups], np.float64),
            "kind": np.array([pairs.samples[pairs.stack[g[0]]] for g in groups])}


def pair_metrics(frames: dict[str, np.ndarray]) -> dict[str, Any]:
    """training/report.py's figures (RMSE by |defocus|, wrong signs) and the distance head's
    RMSE."""
    return {**metrics(frames["label"], frames["predicted"]),
            "distance_rmse_um": float(np.sqrt(np.mean(
                (frames["distance"] - np.abs(frames["label"])) ** 2)))}


def train_pair(bundle: Path, data_dir: Path, *, probe_um: float = DEFAULT_PROBE_UM,
               hp: HyperParams | None = None, mirror: bool = False,
               validation_fraction: float = 0.15, hold_out_kinds: Sequence[str] = (),
               verbose: int = 2) -> dict[str, Any]:
    """Train the pair network on ``data_dir`` (a store or folder of stacks; with ``mirror``,
    its planes' x-mirrors too) for ``bundle``'s features and write it into the bundle; returns
    its record entry. Stacks of ``hold_out_kinds`` take no part (for leave-one-family-out)."""
    if not (np.isfinite(probe_um) and probe_um > 0):
        raise DatasetError(f"--probe-um must be a positive number of µm, got {probe_um}")
    hp = hp or HyperParams()
    model = FocusModel.load(bundle)
    data = load_training_data(data_dir, model.spec, progress=False, mirror=mirror)
    learning = data.without_kinds(hold_out_kinds) if hold_out_kinds else data
    train_set, val_set = pair_dataset(learning, probe_um).split(validation_fraction, hp.seed)
    val_set = val_set.originals()
    standardizer = fit_standardizer(train_set)
    network = build(2 * model.spec.n_features, hp)
    history = fit(network, hp, Batches(train_set, standardizer, hp.batch_size, seed=hp.seed),
                  Batches(val_set, standardizer, hp.batch_size, shuffle=False), verbose=verbose)
    _, int8_model, _ = export_network(network, train_set, val_set, standardizer, hp.seed)
    entry: dict[str, Any] = {
        "probe_um": probe_um,
        "standardizer": standardizer.to_dict(),
        "data": {"folder": folder_name(data_dir), "train": train_set.summary(),
                 "held_out_kinds": sorted(hold_out_kinds), "mirror_augmentation": mirror},
        "hyperparameters": hp.to_dict(),
        "training": {"epochs_run": len(history.val_rmse_um),
                     "best_epoch": history.best_epoch + 1,
                     "val_rmse_um": history.val_rmse_um},
    }
    installed = install_pair(bundle, int8_model, entry)
    pair = FocusModel.load(bundle).pair
    assert pair is not None
    installed["metrics"] = pair_metrics(pair_frames(val_set, pair))
    return dict(amend_record(bundle, "pair", installed)["pair"])


def install_pair(bundle: Path, int8_model: bytes, entry: dict[str, Any]) -> dict[str, Any]:
    """Write the int8 pair network under a name of its checksum, switch the record to it, then
    remove the pair files the record no longer names; the bundle loads at every moment.
    Returns the record's new entry."""
    staged = bundle / "pair.staged"
    staged.write_bytes(int8_model)
    digest = sha256_of(staged)
    name = f"pair-{digest[:12]}.tflite"
    staged.replace(bundle / name)
    installed = {**entry, "file": name, "sha256": digest}
    amend_record(bundle, "pair", installed)
    for old in bundle.glob("pair-*.tflite"):
        if old.name != name:
            old.unlink()
    return installed
