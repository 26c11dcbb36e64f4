"""`focuslock design-illumination`: an optics file read with errors that name the field, the
candidates turned into a sweep and patterns, and the whole command end to end at the tiny size
(a few 128² stacks per arm: the numbers mean nothing, the report's shape does)."""

import json
import math
from pathlib import Path

import pytest

from controller.cli import main
from controller.optics import preset
from training.design_illumination import sweep_nas
from training.experiments.patterns import candidate_patterns
from training.optics_file import OpticsFileError, design_system, read_optics_file

EXAMPLE = Path(__file__).parents[2] / "docs" / "design-illumination.example.toml"
OPTICS = """[optics]
na = 0.5
magnification = 20
camera_pixel_um = 6.5
wavelength_um = 0.53
"""
CANDIDATES = "[leds]\ncandidates = [[0.0, 0.1], [0.0, 0.3], [0.0, 0.4], [0.0, -0.3], [0.0, 0.7]]\n"


def write(tmp_path, text):
    path = tmp_path / "scope.toml"
    path.write_text(text)
    return path


def test_the_example_file_is_the_pi_hq_retrofit():
    design = read_optics_file(EXAMPLE)
    box = preset("pi-hq")
    assert design.optics.na == box.optics.na and design.optics.pixel_um == box.optics.pixel_um
    assert design.source == "array" and sorted(design.candidates) == sorted(box.leds.nas)


def test_candidates_are_read_as_na_vectors(tmp_path):
    design = read_optics_file(write(tmp_path, OPTICS + CANDIDATES))
    assert design.source == "candidates" and design.candidates[1] == (0.0, 0.3)
    assert design.optics.immersion_index == 1.0  # dry unless given


@pytest.mark.parametrize("text, names", [
    ("[leds]\npitch_mm = 5.0\n", "the [optics] table is missing"),
    (OPTICS.replace("na = 0.5\n", "") + CANDIDATES, "[optics] na is missing"),
    (OPTICS.replace("magnification = 20", 'magnification = "20x"') + CANDIDATES,
     "[optics] magnification must be a number"),
    (OPTICS.replace("na = 0.5", "na = 1.2") + CANDIDATES, "[optics] na 1.2 is beyond physical"),
    (OPTICS + "[leds]\ncandidates = [[0.0, 0.3], [0.8, 0.8]]\n",
     "[leds] candidates[1]: NA 1.13137 is beyond physical"),
    (OPTICS + "[leds]\ncandidates = [[0.0, 0.3], [0.1]]\n",
     "[leds] candidates[1] must be a pair of numbers"),
    (OPTICS + "[leds]\npitch_mm = 5.0\nrows = 8\ncols = 8\n", "[leds] distance_mm is missing"),
    (OPTICS + "[leds]\npitch_mm = 5.0\nrows = 8.5\ncols = 8\ndistance_mm = 40\n",
     "[leds] rows must be a whole number"),
    (OPTICS + "[leds]\npitch_mm = 5\nrows = 8\ncols = 8\ndistance_mm = 40\ncandidates = []\n",
     "gives both candidates and an array's"),
    (OPTICS + "focal_mm = 3\n" + CANDIDATES, "[optics] has unknown field(s) ['focal_mm']"),
    (OPTICS + "[leds\n", "not valid TOML"),
])
def test_a_bad_optics_file_is_refused_naming_the_field(tmp_path, capsys, text, names):
    path = write(tmp_path, text)
    with pytest.raises(OpticsFileError, match=r"scope\.toml"):
        read_optics_file(path)
    code = main(["design-illumination", "--optics", str(path), "--out", str(tmp_path / "r")])
    assert code == 2
    error = capsys.readouterr().err
    assert names in error and "focuslock design-illumination: error:" in error
    assert not (tmp_path / "r").exists()


def test_an_unknown_sample_family_is_refused_with_the_known_ones(tmp_path, capsys):
    code = main(["design-illumination", "--optics", str(EXAMPLE), "--sample", "plankton",
                 "--out", str(tmp_path / "r")])
    assert code == 2
    error = capsys.readouterr().err
    assert "--sample: unknown family 'plankton'" in error and "'tissue'" in error


def test_the_sweep_spreads_its_leds_over_the_candidates_nas():
    candidates = [(0.1, 0.0), (0.0, 0.1), (0.0, 0.2), (0.0, 0.3), (0.0, 0.4), (0.0, -0.3),
                  (0.0, 0.6), (0.0, 0.8)]
    # NA 0.1 twice: the one on the +y axis; 0.8 is beyond 1.4 x 0.5 and left out
    assert sweep_nas(candidates, 0.5, 3) == [(0.0, 0.1), (0.0, 0.3), (0.0, 0.6)]
    assert sweep_nas(candidates, 0.5, 9) == [(0.0, 0.1), (0.0, 0.2), (0.0, 0.3), (0.0, 0.4),
                                             (0.0, 0.6)]


def test_patterns_are_built_from_the_candidates_around_the_best_led():
    candidates = [(0.0, y / 20) for y in range(-8, 13)]  # a column of LEDs, 0.05 NA apart
    made = candidate_patterns(candidates, (0.0, 0.35), objective_na=0.5)
    nas = {name: [led.na_y for led in p.leds] for name, p in made.items()}
    assert nas["single"] == [0.35] and nas["pair"] == [-0.35, 0.35]
    assert nas["asymmetric line"] == pytest.approx([0.25, 0.3, 0.35, 0.4, 0.45])
    assert nas["symmetric line"] == pytest.approx([y / 20 for y in range(-6, 7)])
    assert "row across the tilt" not in made  # one LED in its row
    grid = [(x / 10, y / 10) for x in range(-6, 7) for y in range(-6, 7)]
    row = candidate_patterns(grid, (0.0, 0.3), objective_na=0.5)["row across the tilt"]
    assert [(led.na_x, led.na_y) for led in row.leds] == \
        [(-0.3, 0.3), (-0.2, 0.3), (-0.1, 0.3), (0.0, 0.3), (0.1, 0.3), (0.2, 0.3), (0.3, 0.3)]
    # a candidate list that makes no pair and no line: only the single LED
    assert list(candidate_patterns([(0.0, 0.35), (0.2, 0.0)], (0.0, 0.35), 0.5)) == ["single"]


def test_the_ground_truth_is_placed_for_the_objective(tmp_path):
    for na, brightfield in ((0.5, True), (0.25, False)):
        text = OPTICS.replace("na = 0.5", f"na = {na}") + CANDIDATES
        system = design_system(read_optics_file(write(tmp_path, text)))
        radii = {round(led.na, 6) for led in system.ground_truth.leds}
        assert len(radii) == 1 and (radii.pop() < na) == brightfield
        assert all(led.na_y < 0 for led in system.ground_truth.leds)  # a half annulus


@pytest.mark.training
@pytest.mark.slow
def test_design_illumination_recommends_a_pattern_end_to_end(tmp_path, capsys):
    out = tmp_path / "design"
    assert main(["design-illumination", "--optics", str(EXAMPLE), "--sample", "sparse-cells",
                 "--out", str(out), "--size", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "NA sweep 1/2: one LED at" in printed and "Recommended:" in printed
    report = json.loads((out / "design.json").read_text())
    rows = report["rows"]
    assert [r["family"] for r in rows][:2] == ["single", "single"] and len(rows) >= 3
    for row in rows:
        assert math.isfinite(row["rmse_um"]) and row["rmse_um"] > 0 and row["exposure"] > 0
    best = min(rows, key=lambda r: r["rmse_um"])
    assert report["recommendation"]["arm"] == best["arm"]
    # a darkfield LED of the sweep (1.3 of the NA) needs far more light than the axis
    darkfield = [r for r in rows if math.hypot(*r["led_nas"][0]) > 0.25 and r["leds"] == 1]
    assert darkfield and all(r["exposure"] > 10 for r in darkfield)
    markdown = (out / "design.md").read_text()
    assert "--size tiny" in markdown and markdown.count("\n|") == len(rows) + 2
    png = (out / "design.png").read_bytes()
    assert png.startswith(b"\x89PNG") and 5_000 < len(png) < 300_000
