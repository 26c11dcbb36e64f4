"""The command's one error path: a user's mistake is one line and exit status 2, a bug is one
line naming its crash log and exit status 1, never a traceback on stderr; and the resource guards
of ``predict`` (image headers weighed before decoding)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import controller.commands.sim
from controller.cli import main

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "controller" / "models" / "default"


@pytest.fixture(autouse=True)
def crash_home(tmp_path, monkeypatch):
    """Crash logs go to a folder of the test's own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "focuslock"


def test_a_user_error_is_one_line_and_exit_status_2(tmp_path, capsys, crash_home):
    code = main(["sim", "montage", str(tmp_path / "none.ome.tif"), "--out",
                 str(tmp_path / "m.png")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("focuslock sim: error: ")
    assert "no such stack file" in err
    assert not crash_home.exists()  # not a bug: no crash log


def test_a_bug_is_reported_with_its_crash_log_and_exit_status_1(tmp_path, capsys, monkeypatch,
                                                               crash_home):
    def broken(args):
        raise ZeroDivisionError("a bug in montage")

    monkeypatch.setattr(controller.commands.sim, "run_montage", broken)
    argv = ["sim", "montage", str(tmp_path / "s.ome.tif"), "--out", str(tmp_path / "m.png")]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("focuslock sim: internal error: ZeroDivisionError: a bug in montage; "
                          "this is a bug, please report it with ")
    log = Path(err.strip().rsplit(" ", 1)[1])
    assert log.parent == crash_home and log.name.startswith("crash-")
    text = log.read_text()
    assert "Traceback" in text and "a bug in montage" in text and " ".join(argv) in text


def test_output_whose_reader_went_away_is_not_a_bug(tmp_path, crash_home):
    """``focuslock sim families | head``: the pipe closes before the command writes; it ends
    quietly with the shell's status for a cut pipeline, no crash log."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte
    done = subprocess.run([sys.executable, "-m", "controller.cli", "sim", "families"],
                          stdout=write, stderr=subprocess.PIPE, text=True, timeout=120,
                          env=os.environ | {"XDG_STATE_HOME": str(crash_home.parent)})
    os.close(write)
    assert done.returncode == 141 and done.stderr == ""
    assert not crash_home.exists()


def test_two_bugs_in_one_second_keep_two_crash_logs(tmp_path, capsys, monkeypatch, crash_home):
    def broken(args):
        raise RuntimeError("again")

    monkeypatch.setattr(controller.commands.sim, "run_montage", broken)
    for _ in range(2):
        assert main(["sim", "montage", "s.ome.tif", "--out", str(tmp_path / "m.png")]) == 1
    assert len(list(crash_home.glob("crash-*.log"))) == 2


@pytest.mark.parametrize(("argv", "message"), [
    (["sim", "stack", "x.ome.tif", "--z-step", "nan"], "argument --z-step: must be a finite"),
    (["sim", "stack", "x.ome.tif", "--focus-z", "inf"], "argument --focus-z: must be a finite"),
    (["sim", "stack", "x.ome.tif", "--na=-inf"], "argument --na: must be a finite"),
    (["sim", "stack", "x.ome.tif", "--z-range", "0", "nan"], "argument --z-range: must be a"),
    (["sim", "stack", "x.ome.tif", "--seed", "-1"], "argument --seed: must be in"),
    (["sim", "stack", "x.ome.tif", "--oversample", "0"], "argument --oversample: must be at"),
    (["sim", "montage", "s.ome.tif", "--out", "m.png", "--tile", "100000"], "argument --tile"),
    (["train", "data", "--out", "b", "--learning-rate", "nan"], "argument --learning-rate"),
    (["train", "data", "--out", "b", "--feature-log", "maybe"], "expected true or false"),
    (["train", "data", "--out", "b", "--workers", "0"], "argument --workers: must be in"),
    (["evaluate", "b", "data", "--workers", "100000"], "argument --workers: must be in"),
    (["train-data", "out", "--z-step", "inf"], "argument --z-step: must be a finite"),
    (["train-data", "out", "--count", "0"], "argument --count: must be at least 1"),
])
def test_non_finite_and_out_of_range_numbers_stop_at_the_parser(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert message in err and "Traceback" not in err


def _bomb(path: Path, side: int) -> Path:
    """A TIFF whose header claims side x side pixels (written sparse: no pixels stored)."""
    tifffile.imwrite(path, shape=(side, side), dtype="uint8")
    return path


@pytest.mark.parametrize("side", [20000, 10000])  # beyond PIL's error, and its warning, limit
def test_predict_refuses_an_image_whose_header_claims_too_many_pixels(tmp_path, capsys, side):
    code = main(["predict", str(DEFAULT_BUNDLE), str(_bomb(tmp_path / "bomb.tif", side))])
    err = capsys.readouterr().err
    assert code == 2
    assert "bomb.tif: refused, a damaged file or a decompression bomb" in err
    assert "Traceback" not in err


def test_predict_refuses_a_stack_whose_header_needs_more_than_the_free_memory(tmp_path, capsys):
    record = {"focuslock_stack": 1}
    path = tmp_path / "huge.ome.tif"
    tifffile.imwrite(path, shape=(2, 50000, 2048, 2048), dtype="uint16", ome=True,
                     metadata={"axes": "CZYX", "Description": json.dumps(record)})
    code = main(["predict", str(DEFAULT_BUNDLE), str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "huge.ome.tif (2x50000x2048x2048 pixels) would need 781 GiB of memory" in err


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + bytes(40)])
def test_predict_names_an_unreadable_image(tmp_path, capsys, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    assert main(["predict", str(DEFAULT_BUNDLE), str(path)]) == 2
    err = capsys.readouterr().err
    assert "broken.png: not a readable image" in err and "Traceback" not in err


def test_predict_reads_an_ordinary_colour_image(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "frame.png"
    Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)).save(path)
    assert main(["predict", str(DEFAULT_BUNDLE), str(path), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["file"] == str(path) and row["plane"] == 0


def test_predict_accepts_a_one_plane_stack_as_a_single_image(tmp_path, capsys):
    stack = tmp_path / "one.ome.tif"
    assert main(["sim", "stack", str(stack), "--size", "512", "--z-range", "2", "2"]) == 0
    assert "a single image" in capsys.readouterr().err  # sim stack warned at write
    assert main(["predict", str(DEFAULT_BUNDLE), str(stack), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["plane"], r["z_um"]) for r in rows] == [(0, 2.0)]


def test_a_bug_report_falls_back_to_stderr_when_no_crash_log_can_be_written(
        tmp_path, capsys, monkeypatch):
    def broken(args):
        raise KeyError("lost")

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    monkeypatch.setattr(controller.commands.sim, "run_montage", broken)
    assert main(["sim", "montage", "s.ome.tif", "--out", str(tmp_path / "m.png")]) == 1
    err = capsys.readouterr().err
    assert "KeyError: 'lost'" in err  # the traceback is kept, on the only channel left
    assert err.rstrip().endswith("this is a bug, please report it with <stderr>")
