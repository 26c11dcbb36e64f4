"""Where in the spectrum the network looks (the paper's Fig. 3b: the pupil circles' edges carry
the information).

Networks are trained on cells under the paper preset's single LED (the runner's cells arm), and
their float weights (the bundle's ``weights.npz``) are rebuilt in TensorFlow. Over every held-out
patch, GradientTape gives |∂ defocus / ∂ input| for each input feature (the standardised
features the network reads, so every bin is judged on the scale the network sees it); the mean
over patches is the saliency of that feature. controller/features.py lays the features out as
the crop's pooled frequency bins, rows (f_y from -crop_y up) by columns (f_x from 0 up), so each
value maps back onto a rectangle of the spectrum; the half with f_x < 0 is the mirror image
(|F(-f)| = |F(f)| for a real frame) and is drawn as such.

Two networks: one reading the box's features (a crop mostly inside the lens where the circles
overlap) and one reading the paper's tall strip, which crosses the circles' edges along the
LED's tilt. Each pooled bin is put in one region of the two-circle geometry (discs of radius
NA centred at ± each LED's NA vector, as controller/frame_views.py draws them): on an *edge*
(its centre within one pooled bin of either circle), in the *lens* (inside both discs), or
*elsewhere* (inside one disc only, or neither). The table gives each region's share of the
crop's bins and of the saliency; their ratio says where the network looks more than an even
spread would.
Run:  focuslock experiment saliency --out DIR [--full]
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.features import FeatureSpec, Standardizer
from controller.frame_views import na_per_bin
from controller.model import read_record
from controller.optics import Optics, Pattern
from training.experiments import runner
from training.experiments.runner import Arm, Column, Size

NAME = "saliency"
TITLE = "Where the network looks: saliency over the two pupil circles (paper Fig. 3b)"
# the box's crop (mostly inside the lens) and the paper's tall strip (|f_y| < 0.3, f_x < 0.05
# of the sampling frequency), which reaches well beyond the lens along the LED's tilt
ARMS = {"box crop": Arm("cells"),
        "paper crop": Arm("cells, paper crop", spec_changes=(("crop_y", 0.3), ("crop_x", 0.05)))}
REGIONS = ("edge", "lens", "elsewhere")
BATCH = 4096  # patches per gradient batch


@dataclass(frozen=True)
class SaliencyMap:
    """Mean |∂ defocus / ∂ input| per pooled frequency bin of the crop, and where each bin is."""

    values: np.ndarray  # (rows_kept, cols_kept), rows along f_y, columns along f_x
    na_y: np.ndarray  # (rows_kept,) each row's centre, in NA
    na_x: np.ndarray  # (cols_kept,) each column's centre, in NA
    bin_na: tuple[float, float]  # a pooled bin's size (along y, along x), in NA
    patches: int  # held-out patches averaged over


def input_gradients(bundle: Path, features: np.ndarray) -> np.ndarray:
    """|∂ defocus / ∂ input| of the bundle's float network for each row of raw features,
    with respect to the standardised features it reads: float32 (rows, n_features)."""
    import tensorflow as tf

    from training.export import load_float_weights
    from training.network import HyperParams, build, weights_from_arrays

    record = read_record(bundle)
    hp = HyperParams.from_dict(record["hyperparameters"])
    model = build(int(features.shape[-1]), hp)
    weights_from_arrays(model, load_float_weights(bundle, record))
    standardised = Standardizer.from_dict(record["standardizer"]).apply(features)
    out = np.empty_like(standardised)
    for start in range(0, len(standardised), BATCH):
        x = tf.constant(standardised[start:start + BATCH])
        with tf.GradientTape() as tape:
            tape.watch(x)
            defocus = model(x, training=False)[:, 0]
        out[start:start + BATCH] = np.abs(tape.gradient(defocus, x).numpy())
    return out


def bin_centres_na(spec: FeatureSpec, optics: Optics, wavelength_um: float | None
                   ) -> tuple[np.ndarray, np.ndarray, float]:
    """The NA of each pooled row's and column's centre, and one frequency bin in NA (the
    patch's spectrum: bin k is k / patch of the sampling frequency, controller/features.py)."""
    step = na_per_bin(optics, spec.patch, wavelength_um)
    rows = np.arange(spec.rows_kept) * spec.pool_y - spec.half_rows + (spec.pool_y - 1) / 2
    cols = np.arange(spec.cols_kept) * spec.pool_x + (spec.pool_x - 1) / 2
    return rows * step, cols * step, step


def saliency_map(bundle: Path, data: Path) -> SaliencyMap:
    """The bundle's mean input saliency over every held-out patch of ``data``."""
    from training.dataset import load_training_data

    record = read_record(bundle)
    spec = FeatureSpec.from_dict(record["feature_spec"])
    dataset = load_training_data(data, spec, progress=False).originals()
    features = dataset.features.reshape(-1, spec.n_features)
    mean = input_gradients(bundle, features).mean(axis=0)
    optics = Optics.from_dict(record["optics"])
    pattern = Pattern.from_dict(record["illumination"])
    na_y, na_x, step = bin_centres_na(spec, optics, pattern.leds[0].wavelength_um)
    return SaliencyMap(mean.reshape(spec.rows_kept, spec.cols_kept), na_y, na_x,
                       (spec.pool_y * step, spec.pool_x * step), len(features))


def circles(optics: Optics, pattern: Pattern) -> list[tuple[float, float]]:
    """The pupil circles' centres in NA, (na_x, na_y): ± each LED's vector; radius optics.na."""
    return [(sign * led.na_x, sign * led.na_y) for led in pattern.leds for sign in (1, -1)]


def regions(saliency: SaliencyMap, optics: Optics, pattern: Pattern) -> np.ndarray:
    """Two networks: one reading the box's features (a crop mostly inside the lens where the circles
overlap) and one reading the paper's tall strip, which crosses the circles' edges along the
LED's tilt. Each pooled bin's region (an index into REGIONS): edge (its centre within one pooled bin
    of a circle), lens (inside both circles of an LED) or elsewhere."""
    x, y = np.meshgrid(saliency.na_x, saliency.na_y)
    band = max(saliency.bin_na)
    centres = circles(optics, pattern)
    distance = [np.hypot(x - cx, y - cy) for cx, cy in centres]
    edge = np.any([np.abs(d - optics.na) <= band for d in distance], axis=0)
    lens = np.any([(distance[i] < optics.na) & (distance[i + 1] < optics.na)
                   for i in range(0, len(distance), 2)], axis=0)
    return np.where(edge, 0, np.where(lens, 1, 2))


def region_rows(saliency: SaliencyMap, labels: np.ndarray) -> list[dict[str, Any]]:
    """Per region: its bins, their share of the crop, its share of the saliency, and the ratio
    (above 1: the network looks there more than an even spread would)."""
    total = float(saliency.values.sum())
    rows = []
    for index, region in enumerate(REGIONS):
        inside = labels == index
        area = float(inside.mean())
        share = float(saliency.values[inside].sum()) / total if total > 0 else 0.0
        rows.append({"region": region, "bins": int(inside.sum()), "area_share": area,
                     "saliency_share": share, "enrichment": share / area if area else None})
    return rows


COLUMNS = (Column("crop", "crop"), Column("region", "region"),
           Column("bins", "pooled bins"), Column("area_share", "share of the crop", "{:.1%}"),
           Column("saliency_share", "share of the saliency", "{:.1%}"),
           Column("enrichment", "saliency / area", "{:.2f}"),
           Column("rmse_um", "held-out RMSE µm", "{:.2f}"))


def run(out: Path, size: Size, command: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    maps = []
    notes = []
    for crop, arm in ARMS.items():
        training = runner.store(out, arm, size, count=size.train_stacks, seed=0, role="train")
        bundle = runner.train_bundle(out, arm.label, training, size)
        held_out = runner.test_store(out, arm, size)
        reading = runner.rmse_on(bundle, held_out)
        saliency = saliency_map(bundle, held_out)
        record = read_record(bundle)
        optics = Optics.from_dict(record["optics"])
        pattern = Pattern.from_dict(record["illumination"])
        for row in region_rows(saliency, regions(saliency, optics, pattern)):
            rows.append({"arm": f"{crop}, {row['region']}", "crop": crop, **row,
                         "rmse_um": reading["rmse_um"]})
        maps.append((crop, saliency, optics, pattern))
        notes.append(f"{crop}: trained on {runner.stacks_done(training)} stacks of cells, saliency "
                     f"averaged over {saliency.patches} held-out patches ({reading['frames']} "
                     f"frames), edge band {max(saliency.bin_na):.3f} NA")
    runner.write_table(out, NAME, TITLE, rows, COLUMNS, size, command)
    with (out / f"{NAME}.md").open("a") as f:
        f.write("\n" + "; ".join(notes) + ".\n")
    _write_maps(out, maps)

    reach = 1.4 * max(max(abs(m.na_y).max(), m.na_x.max()) for _, m, _, _ in maps)

    def draw(panels: list[Any]) -> None:
        for axes, (crop, saliency, optics, pattern) in zip(panels, maps, strict=True):
            _draw_map(axes, saliency, optics, pattern, reach)
            axes.set_title(crop, fontsize=9)

    runner.write_figure(out, NAME, draw, "saliency over the pupil circles", size, panels=len(maps))
    return rows


def _draw_map(axes: Any, saliency: SaliencyMap, optics: Optics, pattern: Pattern,
              reach: float) -> None:
    """The map in NA (its mirror image left of f_x = 0), scaled to its maximum, with the pupil
    circles over it, within ±``reach`` NA."""
    import matplotlib.patches

    image = saliency.values / saliency.values.max()
    mirrored = image[::-1, ::-1]  # |F(-f)| = |F(f)|: the f_x < 0 half is the mirror image
    half_y, half_x = saliency.bin_na[0] / 2, saliency.bin_na[1] / 2
    y0, y1 = saliency.na_y[0] - half_y, saliency.na_y[-1] + half_y
    x1 = saliency.na_x[-1] + half_x
    shown = axes.imshow(np.concatenate((mirrored, image), axis=1), origin="lower",
                        extent=(-x1, x1, y0, y1), cmap="magma", interpolation="nearest")
    axes.figure.colorbar(shown, ax=axes, label="mean |∂ defocus / ∂ input| (max 1)")
    axes.axvline(0, color="white", lw=0.5, ls=":")
    for cx, cy in circles(optics, pattern):
        axes.add_patch(matplotlib.patches.Circle((cx, cy), optics.na, fill=False,
                                                 color="tab:cyan", lw=1.2))
    axes.set_xlim(-reach, reach)
    axes.set_ylim(-reach, reach)
    axes.set_aspect("equal")
    axes.set_xlabel("NA x (left of 0: the mirror image)")
    axes.set_ylabel("NA y (the LED's tilt)")


def _write_maps(out: Path, maps: list[tuple[str, SaliencyMap, Optics, Pattern]]) -> None:
    """The maps themselves (``saliency-map.csv``: crop, NA of each bin's centre, its saliency),
    for a reader who wants to draw them differently."""
    with (out / f"{NAME}-map.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["crop", "na_x", "na_y", "saliency"])
        for crop, saliency, _, _ in maps:
            for i, na_y in enumerate(saliency.na_y):
                for j, na_x in enumerate(saliency.na_x):
                    writer.writerow([crop, f"{na_x:.5f}", f"{na_y:.5f}",
                                     f"{saliency.values[i, j]:.6g}"])
