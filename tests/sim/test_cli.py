"""``focuslock sim stack`` and ``focuslock sim montage`` through the real command line parser."""

from __future__ import annotations

import numpy as np
from PIL import Image

from controller.cli import main
from controller.stackio import read_stack


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
