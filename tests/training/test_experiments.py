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
from training.experiments.command import EXPERIMENTS, experiment_module
from training.experiments.na_sweep import LED_NA
from training.experiments.patterns import TINY as TINY_PATTERNS
from training.experiments.representation import ARMS as REPRESENTATIONS

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
    assert set(EXPECTED_ROWS) == set(EXPERIMENTS)


@pytest.mark.training
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_writes_a_sane_table_and_figure(name, tmp_path):
    out = tmp_path / name
    assert main(["experiment", name, "--out", str(out), "--size", "tiny"]) == 0
    module = experiment_module(name)
    with (out / f"{module.NAME}.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [row["arm"] for row in rows] == EXPECTED_ROWS[name]
    for row in rows:
        assert math.isfinite(float(row["rmse_um"])) and float(row["rmse_um"]) > 0
        assert int(row["frames"]) > 0 and int(row["test_stacks"]) > 0
    markdown = (out / f"{module.NAME}.md").read_text()
    assert "--size tiny" in markdown and markdown.count("\n|") == len(rows) + 2
    png = (out / f"{module.NAME}.png").read_bytes()
    assert png.startswith(b"\x89PNG") and 5_000 < len(png) < 200_000


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
