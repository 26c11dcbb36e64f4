"""``focuslock calibrate`` end to end on the digital twin (the real firmware under MicroPython
driving the focus, the virtual microscope rendering), at a tiny size: the tiny bundle of
conftest.py, trained on cells, is installed, then calibrated on beads, a sample it never saw.

The run is seeded and deterministic; at this size (256² frames, one feature patch, five stacks
of 21 planes) the fine-tuned bundle reads the held-out stack clearly better than the base. A
bundle made worse on purpose (one epoch at a learning rate of 1) is refused unless forced."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from controller.cli import main
from controller.installed_models import CURRENT, PREVIOUS
from controller.model import read_record
from controller.stackio import write_stack
from tests.conftest import sim_stack

pytestmark = [pytest.mark.training, pytest.mark.slow, pytest.mark.firmware]

TWIN = """\
log_dir = "{root}/runs"
[model]
bundle = "installed"
store = "{root}/models"
[board]
backend = "firmware-sim"
[sim]
frame_size = 256
sample = "beads"
seed = 7
start_z_um = 0.0
settle_s = 0.0
"""
TINY_RUN = ["--stacks", "6", "--range", "10", "--no-reload"]


def links(root: Path) -> tuple[str, str | None]:
    store = root / "models"
    previous = os.readlink(store / PREVIOUS) if os.path.lexists(store / PREVIOUS) else None
    return os.readlink(store / CURRENT), previous


@pytest.fixture(scope="module")
def twin(bundle, tmp_path_factory):
    """The twin's config with the tiny bundle installed, and one calibration run on it."""
    root = tmp_path_factory.mktemp("box")
    config = root / "twin.toml"
    config.write_text(TWIN.format(root=root))
    assert main(["model", "install", str(bundle), "--config", str(config), "--no-reload"]) == 0
    base = links(root)[0]
    code = main(["calibrate", "--config", str(config), "--out", str(root / "run"), *TINY_RUN])
    return root, config, base, code


def test_calibrate_collects_fine_tunes_and_installs_a_better_bundle(twin, capsys):
    root, _, base, code = twin
    assert code == 0
    run = root / "run"
    assert sorted(p.name for p in (run / "stacks").iterdir()) == [
        f"position-{i:03d}.ome.tif" for i in range(6)]
    assert [p.name for p in (run / "held-out").glob("*.ome.tif")] == ["position-005.ome.tif"]
    assert len(list((run / "train").glob("*.ome.tif"))) == 5
    summary = json.loads((run / "calibration.json").read_text())
    assert summary["held_out"] == ["position-005.ome.tif"] and summary["frames"] == 21
    assert summary["after"]["rmse_um"] < summary["before"]["rmse_um"] and summary["improved"]
    for which in ("before", "after"):  # what each bundle's gates made of the held-out frames
        evaluation = json.loads((run / which / "metrics.json").read_text())
        share = evaluation["by_family"]["all"]["rejected"]
        assert summary[which]["refused"] == share and 0.0 <= share <= 1.0
    current, previous = links(root)
    assert previous == base and current == summary["installed"] != base
    installed = root / "models" / current
    assert read_record(installed) == read_record(run / "calibrated")
    assert read_record(installed)["fine_tuned_from"]["bundle"] == base
    # as the base was made: the paper's pattern is symmetric under x -> -x, so mirrors are
    # trained on too; the tiny base has no near-focus network, so neither has its calibration
    assert read_record(installed)["data"]["mirror_augmentation"] is True
    assert read_record(installed)["fine"] is None
    note = json.loads((installed / "installed.json").read_text())["note"]
    assert note.startswith("calibrate: held-out RMSE") and "position-005" in note
    for report in ("before", "after"):
        assert (run / report / "metrics.json").is_file()


def test_a_worse_bundle_is_not_installed_unless_forced(twin, capsys):
    root, config, _, _ = twin
    kept = links(root)
    worse = ["calibrate", "--config", str(config), "--from", str(root / "run" / "stacks"),
             "--learning-rate", "1", "--max-epochs", "1", "--no-reload"]
    assert main([*worse, "--out", str(root / "worse")]) == 1
    out = capsys.readouterr().out
    summary = json.loads((root / "worse" / "calibration.json").read_text())
    assert f"not installed: {summary['verdict']}" in out
    assert "no better than the base" in summary["verdict"] or \
        "worse than not moving at all" in summary["verdict"]
    for which, name in (("before", "base"), ("after", "fine-tuned")):
        assert f"{name} {summary[which]['rmse_um']:.2f} µm (its gates refuse " \
               f"{summary[which]['refused']:.0%} of the frames)" in out
    assert not summary["improved"] and summary["installed"] is None
    assert links(root) == kept
    assert main([*worse, "--out", str(root / "forced"), "--force"]) == 0
    summary = json.loads((root / "forced" / "calibration.json").read_text())
    assert not summary["improved"] and links(root) == (summary["installed"], kept[0])


def test_a_stack_without_a_focus_inside_it_is_never_held_out(bundle, train_dir, tmp_path,
                                                              capsys):
    """The last stack (in name order) lies wholly above its focus: the one before it is held
    out instead, and the run goes on; with no other stack to hold out it is refused."""
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for name in sorted(p.name for p in train_dir.glob("*.ome.tif"))[:4]:
        (stacks / name).symlink_to(train_dir / name)
    write_stack(stacks / "zz-far.ome.tif", sim_stack("beads", 3, half_range=4, focus_um=9.0))
    code = main(["calibrate", "--from", str(stacks), "--base", str(bundle), "--no-install",
                 "--out", str(tmp_path / "run"), "--max-epochs", "2"])
    assert code in (0, 1)  # better or not: what matters is what was compared
    out = capsys.readouterr().out
    assert "left out zz-far.ome.tif: the sharpest plane" in out
    assert "on 3 stacks" in out  # the four before it: one held out, three to fine-tune on
    summary = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert summary["held_out"] == [sorted(p.name for p in train_dir.glob("*.ome.tif"))[3]]
    assert sorted(p.name for p in (tmp_path / "run" / "train").glob("*.ome.tif")) == sorted(
        p.name for p in train_dir.glob("*.ome.tif"))[:3]

    lonely = tmp_path / "lonely"
    lonely.mkdir()
    for name in ("a", "b", "c"):
        (lonely / f"{name}.ome.tif").symlink_to(stacks / "zz-far.ome.tif")
    assert main(["calibrate", "--from", str(lonely), "--base", str(bundle), "--no-install",
                 "--out", str(tmp_path / "run2")]) == 2
    assert "a focus was found in only 0 of the 3 stacks" in capsys.readouterr().err


def test_collect_only_stops_after_collecting_and_says_how_to_go_on(bundle, tmp_path, capsys):
    config = tmp_path / "virtual.toml"
    config.write_text(TWIN.format(root=tmp_path).replace("firmware-sim", "virtual"))
    assert main(["calibrate", "--config", str(config), "--out", str(tmp_path / "run"),
                 "--collect-only", "--stacks", "1", "--range", "2"]) == 0
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["stacks"]
    assert len(list((tmp_path / "run" / "stacks").iterdir())) == 1
    out = capsys.readouterr().out
    assert "focuslock calibrate --from stacks --base BASE --no-install" in out
    assert f"focuslock model install bundle --config {config}" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "STACKS", "--stacks", "3"], "--from takes stacks collected before; --stacks"),
    (["--stacks", "2"], "calibration needs at least 3 stacks (1 held out, 2 to fine-tune"),
    (["--base", "NOWHERE"], "not a model bundle"),
    (["--from", "NOWHERE"], "no such data folder"),
    (["--from", "STACKS", "--hold-out", "5"], "calibration needs at least 7 stacks"),
])
def test_bad_requests_are_refused_before_anything_is_collected(twin, args, message, tmp_path,
                                                                capsys):
    root, config, _, _ = twin
    kept = links(root)
    given = [a.replace("STACKS", str(root / "run" / "stacks"))
             .replace("NOWHERE", str(tmp_path / "nowhere")) for a in args]
    out = tmp_path / "out"
    assert main(["calibrate", "--config", str(config), "--out", str(out), *given]) == 2
    assert message in capsys.readouterr().err
    assert links(root) == kept and not out.exists()


def test_calibration_fine_tunes_as_the_base_was_made():
    from controller.model import DEFAULT_BUNDLE
    from controller.optics import Led, Pattern
    from training.calibrate import recipe_of

    shipped = read_record(DEFAULT_BUNDLE)
    assert recipe_of(shipped) == {"mirror": True, "fine_range_um": 6.0}
    one_side = Pattern("autofocus", (Led(0.2, 0.1),)).to_dict()  # a retrofit's LED off the y axis
    assert recipe_of({**shipped, "illumination": one_side, "fine": None}) == {
        "mirror": False, "fine_range_um": None}


def test_a_bundle_worse_than_not_moving_is_no_improvement(tmp_path):
    """Better than a poor base is not enough: a bundle whose held-out error exceeds the frames'
    own distance from focus would drive the focus away on average (eight twin bead stacks read
    26.3 -> 23.3 µm, where not moving leaves 19.3 µm)."""
    import math

    from training.calibrate import CalibrationRun, no_move_rmse

    report = tmp_path / "after"
    report.mkdir()
    (report / "predictions.csv").write_text(
        "stack,true_defocus_um,predicted_defocus_um\n"
        "a.ome.tif,3.0,1.0\na.ome.tif,-4.0,-2.0\n")
    assert no_move_rmse(report) == pytest.approx(math.sqrt((9 + 16) / 2))

    def run(before: float, after: float, no_move: float) -> CalibrationRun:
        return CalibrationRun(tmp_path, tmp_path / "base", tmp_path / "calibrated", ("a",),
                              before, after, None, no_move_rmse_um=no_move)

    worse_than_still = run(26.3, 23.3, 19.3)
    assert not worse_than_still.improved
    assert "worse than not moving at all would leave them (19.30 µm" in \
        worse_than_still.verdict
    assert run(13.2, 1.1, 17.0).improved and "better (1.10 µm)" in run(13.2, 1.1, 17.0).verdict
    assert not run(1.0, 1.2, 17.0).improved and "no better than the base (1.00 µm)" in \
        run(1.0, 1.2, 17.0).verdict
    assert not run(1.0, math.nan, 17.0).improved
    assert run(13.2, 1.1, math.nan).improved  # no frame to say what standing still leaves
