"""``focuslock sim families`` and ``sim stack --instrument-seed`` through the real parser."""

from __future__ import annotations

import numpy as np
from PIL import Image

from controller.cli import main
from controller.sim import SAMPLE_KINDS
from controller.sim.instrument import InstrumentVariation
from controller.sim.montage import LABEL_PX
from controller.stackio import read_stack
from tests.cli_run import run_cli


def test_sim_families_lists_every_family_with_its_parameters(capsys):
    assert main(["sim", "families"]) == 0
    listing = capsys.readouterr().out
    for kind, family in SAMPLE_KINDS.items():
        assert f"{kind}\n" in listing
        assert ", ".join(sorted(family.params)) in listing


def test_sim_families_draws_a_sheet_of_the_families_asked_for(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    code, err = run_cli(["sim", "families", "--out", str(out), "--sample", "red-cells",
                         "--sample", "beads", "--size", "64", "--tile", "32",
                         "--defocus", "2", "-2", "0"], capsys)
    assert code == 0, err
    assert "rendering beads" in err
    with Image.open(out) as image:
        # two families across, each: ground truth at focus + three defoci of 32 px tiles
        assert image.size == (2 * 4 * 32, LABEL_PX + 32 + LABEL_PX)
        pixels = np.asarray(image)
    assert pixels[2 * LABEL_PX:, :32].std() > 5  # drawn, not blank


def test_sim_families_refuses_what_it_cannot_draw_naming_it(tmp_path, capsys):
    out = str(tmp_path / "sheet.png")
    for extra, message in [(["--sample", "plankton"], "unknown sample kind 'plankton'"),
                           (["--sample", "pictures"], "give images=FOLDER"),
                           (["--images", str(tmp_path / "none"), "--sample", "pictures"],
                            "is not a folder holding pictures"),
                           (["--size", "4"], "--size"),
                           (["--defocus", *["1"] * 12], "at most 11 defoci")]:
        code, err = run_cli(["sim", "families", "--out", out, "--size", "32", *extra], capsys)
        assert code == 2, (extra, err)
        assert message in err, (extra, err)


def test_sim_stack_on_a_drawn_instrument_records_it(tmp_path, capsys):
    out = tmp_path / "stack.ome.tif"
    code, err = run_cli(["sim", "stack", str(out), "--sample", "bacteria", "--size", "48",
                         "--z-range", "-1", "1", "--instrument-seed", "3"], capsys)
    assert code == 0, err
    stack = read_stack(out)
    assert stack.metadata["instrument"] == InstrumentVariation().draw(3).to_dict()
    assert stack.metadata["sample"]["kind"] == "bacteria"
