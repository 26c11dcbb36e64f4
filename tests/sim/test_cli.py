"""``focuslock sim stack`` and ``focuslock sim montage`` through the real command line parser."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from controller.cli import main
from controller.stackio import read_stack
from tests.cli_run import run_cli


def test_sim_stack_writes_a_readable_stack_with_its_truth_and_a_montage(tmp_path, capsys):
    out = tmp_path / "cells.ome.tif"
    png = tmp_path / "cells.png"
    code = main(["sim", "stack", str(out), "--sample", "sparse-cells", "--seed", "4",
                 "--size", "64", "96", "--z-range", "-3", "3", "--z-step", "1.5",
                 "--focus-z", "0.5", "--patterns", "autofocus,dpc-bottom",
                 "--param", "density_per_mm2=2000", "--montage", str(png)])
    assert code == 0
    captured = capsys.readouterr()
    assert "rendering plane 10/10" in captured.err
    stack = read_stack(out)
    assert stack.images.shape == (2, 5, 64, 96)
    np.testing.assert_allclose(stack.z_um, [-3, -1.5, 0, 1.5, 3])
    assert stack.focus_z_um == 0.5
    assert stack.metadata["sample"]["params"]["density_per_mm2"] == 2000
    assert stack.metadata["sample"]["seed"] == 4
    with Image.open(png) as image:
        assert image.size[0] > image.size[1] > 0

    sheet = tmp_path / "one.png"
    assert main(["sim", "montage", str(out), "--out", str(sheet), "--channel", "dpc-bottom",
                 "--max-planes", "3", "--tile", "50"]) == 0
    with Image.open(sheet) as image:
        assert image.size == (3 * 50, 33 + 14)  # 96x64 frames: 50x33 tiles, label strips
        pixels = np.asarray(image)
    assert pixels[:33].std() > 10  # the planes are drawn, not blank


def test_sim_reports_bad_configurations_as_one_line_errors(tmp_path, capsys):
    out = str(tmp_path / "x.ome.tif")
    cases = [
        (["--na", "1.1"], "must be smaller than the immersion index"),
        (["--size", "-5"], "pixel counts of at least 8"),
        (["--z-range", "2", "1"], "must not exceed"),
        (["--sample", "plankton"], "unknown sample kind"),
        (["--patterns", "autofocus,ring"], "unknown pattern 'ring'"),
        (["--param", "oops"], "KEY=VALUE"),
    ]
    for extra, message in cases:
        code = main(["sim", "stack", out, "--size", "32", "--z-range", "0", "1", *extra])
        err = capsys.readouterr().err
        assert code == 2, extra
        assert message in err, (extra, err)
        assert "Traceback" not in err
    assert not (tmp_path / "x.ome.tif").exists()


def test_sim_warns_when_the_camera_pixel_is_coarser_than_nyquist(tmp_path, capsys):
    out = tmp_path / "coarse.ome.tif"
    assert main(["sim", "stack", str(out), "--size", "32", "--z-range", "0", "0",
                 "--camera-pixel-um", "20"]) == 0
    assert "coarser than the coherent Nyquist limit" in capsys.readouterr().err


def test_sim_montage_of_a_missing_stack_is_a_clear_error(tmp_path, capsys):
    assert main(["sim", "montage", str(tmp_path / "none.ome.tif"), "--out",
                 str(tmp_path / "m.png")]) == 2
    assert "no such stack file" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), [
    (["--size", "100000"], "would need 2.64e+03 GiB of memory, the machine has"),
    (["--oversample", "1000"], "oversampled 1000x) would need"),
    (["--z-step", "1e-9"], "the z range and step give 3e+10 planes; a stack has at most 100000"),
    (["--z-range", "-1000000000", "1000000000"], "give 2e+09 planes"),
    (["--z-range", "0", "1e308", "--z-step", "1e-300"], "give inf planes"),
    (["--bandwidth-nm", "400"], "--bandwidth-nm must be in [0, 265)"),
    (["--led-radius-na", "0.5"], "argument --led-radius-na: must be in [0, 0.1]"),
    (["--size", "7"], "pixel counts of at least 8"),
])
def test_sim_stack_refuses_work_beyond_the_machine_before_allocating(tmp_path, capsys, extra,
                                                                    message):
    out = tmp_path / "x.ome.tif"
    code, err = run_cli(["sim", "stack", str(out), "--z-range", "-15", "15", *extra], capsys)
    assert code == 2
    assert message in err
    assert "rendering plane" not in err  # refused before any work
    assert not out.exists()


def test_sim_stack_refuses_an_output_it_could_not_write_before_rendering(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for out, message in ((tmp_path, "is a folder"),
                         (blocker / "x.ome.tif", "cannot create the folder")):
        assert main(["sim", "stack", str(out), "--size", "32", "--z-range", "0", "0"]) == 2
        err = capsys.readouterr().err
        assert message in err and "rendering plane" not in err


def test_sim_stack_warns_that_a_short_stack_serves_predict_only(tmp_path, capsys):
    out = tmp_path / "short.ome.tif"
    assert main(["sim", "stack", str(out), "--size", "32", "--z-range", "-2", "2"]) == 0
    err = capsys.readouterr().err
    assert "has 5 plane(s): predict reads it" in err and "need at least 7" in err
    assert read_stack(out).images.shape == (2, 5, 32, 32)
    assert main(["sim", "stack", str(out), "--size", "32", "--z-range", "-3", "3"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_sim_stack_of_the_colour_preset_has_its_patterns_and_draws_its_raw_frames_in_colour(
        tmp_path, capsys):
    out = tmp_path / "colour.ome.tif"
    png = tmp_path / "colour.png"
    assert main(["sim", "stack", str(out), "--preset", "pi-hq-colour", "--size", "64",
                 "--z-range", "-6", "6", "--z-step", "6", "--montage", str(png)]) == 0
    assert "2 channel(s) x 3 planes" in capsys.readouterr().out
    stack = read_stack(out)
    assert stack.channel_names == ["parallax", "dpc-bottom"]
    assert stack.optics.colour_filter == "RGGB"
    assert [led.wavelength_um for led in stack.channels[0].leds] == [0.625, 0.465]
    with Image.open(png) as image:
        assert image.mode == "RGB"
        assert image.size == (3 * 160, 2 * (160 + 14))  # one pixel per 2x2 cell, scaled
        tiles = np.asarray(image, dtype=float)[:160]
    # Out of focus the red and blue views part: the parallax row's red and blue differ there.
    far = tiles[:, :160]
    assert np.abs(far[..., 0] - far[..., 2]).mean() > 10
