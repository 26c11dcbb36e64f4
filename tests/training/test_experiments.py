"""Each of the paper's analyses end to end at the tiny size (a few 128² stacks, 2 epochs):
`focuslock experiment NAME --size tiny` writes its table (CSV, markdown) and its figure, with
the expected rows and finite RMSEs. The numbers mean nothing at this size; docs/experiments.md
has the small size's."""

import csv
import math

import numpy as np
import pytest

from controller.cli import main
from controller.features import FeatureError, FeatureSpec, featurize
from controller.optics import preset
from training.experiments.command import EXPERIMENTS, experiment_module
from training.experiments.na_sweep import LED_NA
from training.experiments.patterns import TINY as TINY_PATTERNS
from training.experiments.representation import ARMS as REPRESENTATIONS
from training.experiments.saliency import ARMS as SALIENCY_CROPS
from training.experiments.saliency import (
    REGIONS,
    SaliencyMap,
    bin_centres_na,
    region_rows,
    regions,
)

EXPECTED_ROWS = {
    "stack-count": ["2 stacks", "4 stacks"],
    "representation": [arm.label for arm in REPRESENTATIONS],
    "na-sweep": [f"NA {na:.2f}{c}" for na in LED_NA["tiny"] for c in ("", " compensated")],
    "patterns": list(TINY_PATTERNS),
    "generalisation": ["cells → cells", "cells → tissue",
                       "cells, fine-tuned on tissue → cells",
                       "cells, fine-tuned on tissue → tissue"],
}


def test_every_experiment_has_its_expected_rows():
    assert set(EXPECTED_ROWS) | {"saliency"} == set(EXPERIMENTS)


def run_tiny(name, tmp_path):
    """Run the experiment at the tiny size; its CSV rows, after checking that its markdown table
    and its figure are there."""
    out = tmp_path / name
    assert main(["experiment", name, "--out", str(out), "--size", "tiny"]) == 0
    module = experiment_module(name)
    with (out / f"{module.NAME}.csv").open() as f:
        rows = list(csv.DictReader(f))
    markdown = (out / f"{module.NAME}.md").read_text()
    assert "--size tiny" in markdown and markdown.count("\n|") == len(rows) + 2
    png = (out / f"{module.NAME}.png").read_bytes()
    assert png.startswith(b"\x89PNG") and 5_000 < len(png) < 200_000
    return rows


@pytest.mark.training
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_experiment_writes_a_sane_table_and_figure(name, tmp_path):
    rows = run_tiny(name, tmp_path)
    assert [row["arm"] for row in rows] == EXPECTED_ROWS[name]
    for row in rows:
        assert math.isfinite(float(row["rmse_um"])) and float(row["rmse_um"]) > 0
        assert int(row["frames"]) > 0 and int(row["test_stacks"]) > 0


@pytest.mark.training
@pytest.mark.slow
def test_saliency_shares_out_the_whole_crop_among_the_circles_regions(tmp_path):
    rows = run_tiny("saliency", tmp_path)
    assert [(r["crop"], r["region"]) for r in rows] == \
        [(crop, region) for crop in SALIENCY_CROPS for region in REGIONS]
    for crop in SALIENCY_CROPS:
        mine = [r for r in rows if r["crop"] == crop]
        for share in ("area_share", "saliency_share"):
            assert sum(float(r[share]) for r in mine) == pytest.approx(1.0)
        assert all(0 <= float(r["saliency_share"]) <= 1 for r in mine)
        assert math.isfinite(float(mine[0]["rmse_um"]))
    # the paper's tall strip reaches beyond the lens, across the circles' edges
    paper = {r["region"]: r for r in rows if r["crop"] == "paper crop"}
    assert int(paper["edge"]["bins"]) > 0 and int(paper["elsewhere"]["bins"]) > 0
    with (tmp_path / "saliency" / "saliency-map.csv").open() as f:
        cells = list(csv.DictReader(f))
    assert len(cells) == sum(int(r["bins"]) for r in rows)
    assert all(float(c["saliency"]) >= 0 for c in cells)


def test_phase_and_real_part_are_an_experiment_option_beside_the_box_magnitude():
    frame = np.random.default_rng(0).poisson(100, (128, 128)).astype(np.uint16)
    box = FeatureSpec(patch=128)
    assert "representation" not in box.to_dict()  # records and stores of the box unchanged
    phase = FeatureSpec(patch=128, representation="phase", log=False)
    assert FeatureSpec.from_dict(phase.to_dict()) == phase
    for spec in (box, phase, FeatureSpec(patch=128, representation="real", log=False)):
        assert np.isfinite(featurize(frame, spec)).all()
    assert (featurize(frame, phase) < 0).any()  # signed: no log of it
    with pytest.raises(FeatureError, match="takes no log"):
        FeatureSpec(patch=128, representation="real")


def test_a_features_saliency_lands_on_the_frequency_it_reads():
    """bin_centres_na maps each feature back to the spectrum as featurize lays it out: a pure
    cosine's feature peak sits at the pooled bin whose centre is the cosine's NA."""
    optics = preset("paper").optics
    spec = FeatureSpec(patch=128, log=False)
    y, x = np.mgrid[:128, :128]
    for cycles_y, cycles_x in ((8, 4), (-9, 10), (3, 1)):
        frame = 1000 + 500 * np.cos(2 * np.pi * (cycles_y * y + cycles_x * x) / 128)
        peak = np.argmax(featurize(frame, spec)[0, 0])
        row, col = divmod(int(peak), spec.cols_kept)
        na_y, na_x, step = bin_centres_na(spec, optics, None)
        assert abs(na_y[row] - cycles_y * step) <= spec.pool_y * step / 2
        assert abs(na_x[col] - cycles_x * step) <= spec.pool_x * step / 2


def test_each_bin_is_on_an_edge_in_the_lens_or_elsewhere():
    system = preset("paper")
    led = system.autofocus.leds[0]
    # bins at: the origin (inside both circles), on the upper circle's lower edge
    # (na_y = led - NA), and beyond the lens along y inside the upper circle only
    na_y = np.array([0.0, led.na_y - system.optics.na, led.na_y])
    saliency = SaliencyMap(np.ones((3, 1)), na_y, np.array([0.0]), (0.02, 0.02), 1)
    labels = regions(saliency, system.optics, system.autofocus)
    assert [REGIONS[i] for i in labels[:, 0]] == ["lens", "edge", "elsewhere"]
    rows = region_rows(SaliencyMap(np.array([[1.0], [3.0], [0.0]]), na_y, np.array([0.0]),
                                   (0.02, 0.02), 1), labels)
    assert [r["saliency_share"] for r in rows] == [0.75, 0.25, 0.0]
    assert rows[0]["enrichment"] == pytest.approx(0.75 * 3)
