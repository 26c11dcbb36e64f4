"""Data collection writes stacks in the training format, sharpest where the focus really is."""

import numpy as np
import pytest

from controller.collect import collect
from controller.config import SimSettings
from controller.optics import preset
from controller.sim import make_sample
from controller.sim.rigs import virtual_rig
from controller.stackio import read_stack


def test_collected_stacks_are_training_data(make_rig, tmp_path):
    rig = make_rig(start_z_um=3.0, backlash_um=0.4)
    seen = []

    def next_position(i: int) -> None:
        seen.append(i)
        rig.scope.replace_sample(make_sample("sparse-cells", rig.camera.shape,
                                             rig.preset.optics.pixel_um, seed=10 + i))

    paths = collect(rig, tmp_path, positions=2, offsets_um=np.arange(-6.0, 6.5, 1.0).tolist(),
                    next_position=next_position)
    assert seen == [0, 1] and [p.name for p in paths] == ["position-000.ome.tif",
                                                         "position-001.ome.tif"]
    stack = read_stack(paths[1])
    assert stack.channel_names == ["autofocus", "dpc-bottom"]
    np.testing.assert_allclose(stack.z_um, np.arange(-3.0, 9.5, 1.0), atol=0.05)
    assert stack.focus_z_um == pytest.approx(0.0)
    assert stack.metadata["position"] == 1
    # the incoherent channel is sharpest at the true focus (what training's ground truth uses):
    # the half-annulus image of a phase sample shows the most high-frequency power there
    dpc = stack.channel("dpc-bottom").astype(float)
    power = [np.abs(np.fft.rfft2(p - p.mean()))[20:, 20:].sum() for p in dpc]
    assert abs(stack.z_um[int(np.argmax(power))] - 0.0) <= 1.0
    assert rig.drive.position_um() == pytest.approx(3.0)  # back where it started
    assert rig.illuminator.pattern is None


@pytest.mark.parametrize(("name", "channels"), [
    ("paper-pair", ["autofocus", "dpc-bottom", "parallax-first", "parallax-second"]),
    ("pi-hq-colour", ["parallax", "dpc-bottom"]),
])
def test_collected_stacks_carry_every_pattern_of_the_preset_for_the_parallax_calibration(
        name, channels, tmp_path):
    system = preset(name)
    rig = virtual_rig(system, SimSettings(start_z_um=0.0), frame_shape=(64, 64))
    (path,) = collect(rig, tmp_path, positions=1, offsets_um=[-4.0, 0.0, 4.0],
                      next_position=lambda i: None)
    stack = read_stack(path)
    assert stack.channel_names == channels
    assert list(stack.channels) == list(system.patterns)  # colours and angles recorded
    assert stack.optics.colour_filter == system.optics.colour_filter
    if system.parallax is not None and not system.parallax.one_frame:
        # two frames: the first view's LED is the autofocus one, the second its mirror image
        auto = stack.channel("autofocus").astype(float)
        same = np.abs(stack.channel("parallax-first") - auto).mean()
        assert np.abs(stack.channel("parallax-second") - auto).mean() > 5 * same
    else:
        # one raw Bayer frame: red and blue sites lit by the two LEDs, green sites dim
        frame = stack.channel("parallax")[1].astype(float)
        assert frame[0::2, 0::2].mean() > 1.5 * frame[0::2, 1::2].mean()
        assert frame[1::2, 1::2].mean() > 1.5 * frame[1::2, 0::2].mean()
