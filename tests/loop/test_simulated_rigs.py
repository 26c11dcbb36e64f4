"""Simulator truth: on both simulated rigs (the in-process virtual devices, and the focus board's
driver talking to the real firmware under MicroPython) the virtual microscope sees what the
devices did. That any rig keeps the device interfaces is tests/hardware/test_device_interface.py.
"""

import time

import pytest

from controller.config import SimSettings, config_from_dict
from controller.hardware.interfaces import CameraTimeout, DriveFault
from controller.hardware.rig import open_rig
from controller.optics import preset
from controller.sim.rigs import virtual_rig
from controller.sim.twin import open_twin

FRAME = (128, 128)
DARK_OFFSET = 100  # counts the virtual camera adds to every pixel


@pytest.fixture(params=["virtual", pytest.param("twin", marks=pytest.mark.firmware)])
def rig(request, tmp_path):
    if request.param == "virtual":
        yield virtual_rig(preset("paper"), SimSettings(start_z_um=0.0), frame_shape=FRAME)
        return
    twin = open_twin(preset("paper"), SimSettings(start_z_um=0.0), frame_shape=FRAME,
                     workdir=tmp_path)
    yield twin.rig
    twin.close()


def test_the_sample_defocus_follows_the_drive(rig):
    rig.drive.move_by(12.3)
    assert rig.scope.defocus_um() == pytest.approx(-12.3, abs=0.05)
    rig.drive.move_to(-4.0)
    assert rig.scope.defocus_um() == pytest.approx(4.0, abs=0.05)


def test_a_refused_move_leaves_the_focus_alone(rig):
    rig.drive.move_to(1.0)
    with pytest.raises(DriveFault):
        rig.drive.move_to(rig.drive.travel_um[1] + 10.0)
    assert rig.scope.defocus_um() == pytest.approx(-1.0, abs=0.05)


def test_the_dark_frame_is_the_camera_offset_and_the_lit_one_far_above(rig):
    rig.illuminator.show(rig.preset.autofocus)
    lit = rig.camera.capture()
    rig.illuminator.off()
    dark = rig.camera.capture()
    assert lit.image.mean() > 50 * max(dark.image.mean() - DARK_OFFSET, 1)


def test_a_dead_camera_times_out(rig):
    rig.camera.dead = True
    start = time.monotonic()
    with pytest.raises(CameraTimeout):
        rig.camera.capture(timeout_s=0.2)
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("backend", ["virtual", pytest.param("firmware-sim",
                                                             marks=pytest.mark.firmware)])
def test_a_simulated_drive_has_the_travel_the_config_gives(backend):
    """Every window is checked against the config's travel; a simulated drive enforces the same
    numbers (the twin's firmware gets them as its soft limits, as a real board does)."""
    config = config_from_dict({"board": {"backend": backend, "travel_min_um": -30.0,
                                         "travel_max_um": 70.0},
                               "lock": {"travel_window_um": 50.0},
                               "focus": {"search_window_um": 50.0},
                               "sim": {"frame_size": 128}})
    rig = open_rig(config)
    try:
        assert rig.drive.travel_um == (-30.0, 70.0)
        with pytest.raises(DriveFault):
            rig.drive.move_to(80.0)
    finally:
        rig.close()
