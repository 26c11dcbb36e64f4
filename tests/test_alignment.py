"""The alignment check on the virtual microscope with its LEDs misplaced through the config
(``[sim] led_shift_na_x/y``), as a retrofit's would be: the fitted LED must land within
ALIGNMENT_TOLERANCE_NA of where the simulator put it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from controller.alignment import AlignmentError, check_alignment, led_distance_mm
from controller.cli import main
from controller.config import config_from_dict
from controller.hardware.rig import open_rig
from controller.optics import Led, Optics, Pattern, preset

ALIGNMENT_TOLERANCE_NA = 0.005  # issue 17: a 0.03 NA misplacement diagnosed within this
DEFOCI_UM = (-15.0, 5.0, 25.0)  # defocus changes what fills the circles, not where they end
PAPER = preset("paper")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and what the command printed (stdout and stderr); no traceback."""
    code = main(argv)
    out = capsys.readouterr()
    assert "Traceback" not in out.err, out.err
    return code, out.out + out.err


def rig_config(shift: tuple[float, float], sample: str = "sparse-cells", seed: int = 3):
    return config_from_dict({"sim": {"frame_size": 512, "sample": sample, "seed": seed,
                                     "focus_z_um": 0.0, "led_shift_na_x": shift[0],
                                     "led_shift_na_y": shift[1]}})


def rig_frames(config, pattern: Pattern | None = None) -> tuple[list[np.ndarray], Optics]:
    """Frames of the virtual rig at three defoci under ``pattern`` (default: the autofocus)."""
    rig = open_rig(config)
    try:
        rig.illuminator.show(pattern or rig.preset.autofocus)
        frames = []
        for defocus in DEFOCI_UM:
            rig.drive.move_to(-defocus)  # defocus = z_focus - z
            frames.append(rig.camera.capture(not_before=rig.clock.now()).image)
        return frames, rig.preset.optics
    finally:
        rig.close()


@pytest.mark.parametrize("shift, sample", [
    ((0.03, 0.0), "sparse-cells"), ((-0.03, 0.0), "dense-cells"),
    ((0.0, 0.03), "dense-cells"), ((0.0, -0.03), "sparse-cells")])
def test_a_misplaced_led_is_found_within_tolerance(shift, sample):
    frames, optics = rig_frames(rig_config(shift, sample))
    result = check_alignment(frames, optics, PAPER.autofocus, 60.0)
    error = math.hypot(result.offset_na[0] - shift[0], result.offset_na[1] - shift[1])
    assert error <= ALIGNMENT_TOLERANCE_NA, (result.to_json(), error)
    assert not result.aligned
    # 0.03 NA at 60 mm is about 1.9 mm (60 · 0.03 / cos³ at the LED's 0.37 NA along y)
    move_x, move_y = result.move_mm
    if shift[0]:
        # an LED sits opposite its light's NA: too much +NA means too far toward -x, so +x
        side = "right" if shift[0] > 0 else "left"
        assert math.copysign(1, move_x) == math.copysign(1, shift[0])
        assert 1.4 < abs(move_x) < 2.4 and f"toward the camera's {side} edge" in result.advice
    else:
        side = "bottom" if shift[1] > 0 else "top"
        assert 1.7 < abs(move_y) < 3.0 and f"toward the camera's {side} edge" in result.advice
    assert result.advice.startswith("move the LED ")


def test_a_well_placed_led_reads_as_aligned():
    frames, optics = rig_frames(rig_config((0.0, 0.0), "dense-cells", seed=4))
    result = check_alignment(frames, optics, PAPER.autofocus, 60.0)
    assert result.aligned, result.to_json()
    assert math.hypot(*result.offset_na) <= ALIGNMENT_TOLERANCE_NA
    assert result.advice.startswith("the LED is aligned")


def test_an_empty_field_has_no_pupil_circles():
    config = rig_config((0.0, 0.0))
    rig = open_rig(config)
    try:
        assert rig.scope is not None
        rig.scope.empty_field = True
        rig.illuminator.show(rig.preset.autofocus)
        frame = rig.camera.capture(not_before=rig.clock.now()).image
    finally:
        rig.close()
    with pytest.raises(AlignmentError, match="cannot see the pupil circles"):
        check_alignment([frame], rig.preset.optics, PAPER.autofocus, 60.0)


@pytest.mark.parametrize("lit", [PAPER.ground_truth, Pattern("on-axis", (Led(0.0, 0.0),))])
def test_another_pattern_has_no_autofocus_circles(lit):
    frames, optics = rig_frames(rig_config((0.0, 0.0)), lit)
    with pytest.raises(AlignmentError, match="cannot see the pupil circles"):
        check_alignment(frames[:1], optics, PAPER.autofocus, 60.0)


def test_patterns_the_check_cannot_read_are_refused():
    optics = PAPER.optics
    frame = np.zeros((128, 128), dtype=np.uint16)
    with pytest.raises(AlignmentError, match="needs one LED lit"):
        check_alignment([frame], optics, PAPER.ground_truth, 60.0)
    with pytest.raises(AlignmentError, match="off-axis brightfield LED"):
        check_alignment([frame], optics, Pattern("dark", (Led(0.0, 0.7),)), 60.0)
    with pytest.raises(AlignmentError, match="too small"):
        check_alignment([frame[:32, :32]], optics, PAPER.autofocus, 60.0)


def test_the_led_distance_is_the_configs_or_the_presets():
    assert led_distance_mm(0.0, PAPER) == 60.0
    assert led_distance_mm(45.0, PAPER) == 45.0
    assert led_distance_mm(0.0, preset("pi-hq")) == 40.0


def test_check_alignment_cli_on_the_live_rig_and_on_saved_frames(tmp_path, capsys):
    config = tmp_path / "focuslock.toml"
    config.write_text('[sim]\nframe_size = 512\nsample = "dense-cells"\nseed = 4\n'
                      'start_z_um = 10.0\nled_shift_na_y = -0.03\n'
                      '[optics]\nled_distance_mm = 50.0\n')
    code, out = run_cli(["check-alignment", "--config", str(config), "--json"], capsys)
    assert code == 1, out
    record = json.loads(out)
    assert abs(record["offset_na"][1] + 0.03) <= ALIGNMENT_TOLERANCE_NA, record
    assert record["led_distance_mm"] == 50.0 and record["frames"] == 3
    assert "toward the camera's top edge" in record["advice"]

    from PIL import Image

    frames, _ = rig_frames(rig_config((0.0, 0.0), "dense-cells", seed=4))
    paths = []
    for i, frame in enumerate(frames):
        paths.append(tmp_path / f"frame{i}.tif")
        Image.fromarray(frame).save(paths[-1])
    code, out = run_cli(["check-alignment", "--frame", *map(str, paths)], capsys)
    assert code == 0, out
    assert "the LED is aligned" in out

    empty = tmp_path / "empty.tif"
    Image.fromarray(np.full((512, 512), 1000, dtype=np.uint16)).save(empty)
    code, out = run_cli(["check-alignment", "--frame", str(empty)], capsys)
    assert code == 2 and "cannot see the pupil circles" in out
