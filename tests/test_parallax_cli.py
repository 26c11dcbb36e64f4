"""``focuslock parallax calibrate`` and the parallax reading in ``focuslock predict``: the files
a user hands in, the JSON they get back, and one clear line for each mistake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from controller.cli import main
from controller.parallax import ParallaxCalibration
from controller.stackio import FocalStack, write_stack

from .cli_run import run_cli
from .parallax_sim import parallax_stack, reading_frames

BUNDLE = str(Path(__file__).resolve().parents[1] / "controller" / "models" / "default")


@pytest.fixture(autouse=True)
def crash_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("parallax")
    stack = parallax_stack("sparse-cells", 31, np.arange(-12.0, 12.5, 1.0),
                           preset_name="paper-pair", focus_z_um=-0.4)
    out = {"stack": write_stack(folder / "cells.ome.tif", stack)}
    plain = FocalStack(stack.images[:2], stack.z_um, stack.channels[:2], stack.optics,
                       stack.focus_z_um)
    out["plain"] = write_stack(folder / "plain.ome.tif", plain)
    ((a, b),) = reading_frames("tissue", 32, [-7.0], preset_name="paper-pair")
    for name, frame in (("a", a), ("b", b), ("half", a[:256])):
        tifffile.imwrite(folder / f"{name}.tif", frame)
        out[name] = folder / f"{name}.tif"
    ((colour,),) = reading_frames("dense-cells", 33, [12.0], preset_name="pi-hq-colour")
    tifffile.imwrite(folder / "colour.tif", colour)
    out["colour"] = folder / "colour.tif"
    return out


def json_lines(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[dict]:
    assert main(argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_calibrate_writes_the_fit_and_prints_it(files, tmp_path, capsys):
    out = tmp_path / "parallax.json"
    assert main(["parallax", "calibrate", str(files["stack"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    calibration = ParallaxCalibration.load(out)
    assert calibration.source == "cells.ome.tif" and calibration.planes >= 20
    assert f"{calibration.um_per_px:+.5f} µm/px" in printed and "rms residual" in printed
    assert f"wrote {out}" in printed


@pytest.mark.parametrize(("target", "message"), [
    ("plain", "no parallax channels"),
    ("a", "not an OME-TIFF"),
    ("missing", "no such stack file"),
])
def test_calibrate_refuses_a_file_it_cannot_use_in_one_line(files, tmp_path, capsys, target,
                                                             message):
    stack = files.get(target, tmp_path / "missing.ome.tif")
    code, err = run_cli(["parallax", "calibrate", str(stack), "--out",
                         str(tmp_path / "c.json")], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "c.json").exists()


def test_calibrate_refuses_a_folder_as_its_output(files, tmp_path, capsys):
    code, err = run_cli(["parallax", "calibrate", str(files["stack"]), "--out", str(tmp_path)],
                        capsys)
    assert code == 2 and "is a folder" in err


def test_predict_gives_a_pair_its_parallax_reading(files, tmp_path, capsys):
    (line,) = json_lines(capsys, ["predict", BUNDLE, "--pair", str(files["a"]), str(files["b"]),
                                  "--json"])
    assert line["pair"] == [str(files["a"]), str(files["b"])]
    assert {"defocus_um", "confidence", "spread_um", "in_range"} <= set(line)
    parallax = line["parallax"]
    assert parallax["calibrated"] is False and parallax["shift_px"] > 0
    assert parallax["defocus_um"] == pytest.approx(-7.0, abs=1.0)
    fused = line["fused"]  # what the box would act on: the truth, whichever cue said it
    assert fused["trusted"] and fused["cue"] in ("network", "parallax") and fused["why"]
    assert fused["defocus_um"] == pytest.approx(-7.0, abs=1.0)
    calibration = tmp_path / "c.json"
    assert main(["parallax", "calibrate", str(files["stack"]), "--out", str(calibration)]) == 0
    capsys.readouterr()
    (line,) = json_lines(capsys, ["predict", BUNDLE, "--pair", str(files["a"]), str(files["b"]),
                                  "--parallax-calibration", str(calibration), "--json"])
    assert line["parallax"]["calibrated"] is True
    assert line["parallax"]["defocus_um"] == pytest.approx(-7.0, abs=1.0)


def test_predict_keeps_its_output_for_plain_frames_and_stacks(files, capsys):
    (image,) = json_lines(capsys, ["predict", BUNDLE, str(files["a"]), "--json"])
    planes = json_lines(capsys, ["predict", BUNDLE, str(files["plain"]), "--json"])
    for line in (image, *planes):
        assert set(line) == {"file", "plane", "z_um", "defocus_um", "confidence", "spread_um",
                             "in_range"}


def test_predict_reads_parallax_at_every_plane_of_a_stack_that_has_it(files, capsys):
    planes = json_lines(capsys, ["predict", BUNDLE, str(files["stack"]), "--json"])
    assert len(planes) == 25
    for line in planes:
        truth = -0.4 - line["z_um"]
        if abs(truth) >= 4:  # beyond two depths of field: the sign, and the size roughly
            assert line["parallax"]["defocus_um"] == pytest.approx(truth, abs=0.2 * abs(truth))


def test_predict_reads_a_raw_colour_frame(files, capsys):
    (line,) = json_lines(capsys, ["predict", BUNDLE, str(files["colour"]), "--preset",
                                  "pi-hq-colour", "--json"])
    assert line["parallax"]["defocus_um"] == pytest.approx(12.0, abs=3.0)
    assert main(["predict", BUNDLE, str(files["colour"]), "--preset", "pi-hq-colour"]) == 0
    assert "parallax" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    ([], "give image or stack files, or --pair A B"),
    (["--pair", "{a}", "{half}"], "is not the camera's"),
    (["--pair", "{a}", "{b}", "--preset", "pi-hq-colour"], "one colour frame"),
    (["--pair", "{a}", "{b}", "--preset", "paper"], "no parallax views"),
    (["--pair", "{a}", "{b}", "--parallax-calibration", "{b}"], "unreadable parallax calibration"),
])
def test_predict_refuses_what_the_parallax_cue_cannot_read(files, capsys, argv, message):
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    code, err = run_cli(["predict", BUNDLE, *argv], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err
