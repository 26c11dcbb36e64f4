"""One interface suite, run against every backend that can run here (python-microscope's habit):
the in-process virtual devices, and the focus board's driver talking to the real firmware under
MicroPython (the digital twin). The loop relies on exactly these behaviours."""

import time

import pytest

from controller.config import SimSettings
from controller.hardware.interfaces import CameraTimeout, DriveFault, HardwareError
from controller.optics import Led, Pattern, preset
from controller.sim.rigs import virtual_rig
from controller.sim.twin import open_twin

FRAME = (128, 128)


@pytest.fixture(params=["virtual", pytest.param("twin", marks=pytest.mark.firmware)])
def rig(request, tmp_path):
    if request.param == "virtual":
        yield virtual_rig(preset("paper"), SimSettings(start_z_um=0.0), frame_shape=FRAME)
        return
    twin = open_twin(preset("paper"), SimSettings(start_z_um=0.0), frame_shape=FRAME,
                     workdir=tmp_path)
    yield twin.rig
    twin.close()


# -- FocusDrive -----------------------------------------------------------------------------

def test_relative_and_absolute_moves_land_where_asked(rig):
    drive = rig.drive
    assert drive.move_by(12.3) == pytest.approx(12.3, abs=0.05)
    assert drive.position_um() == pytest.approx(12.3, abs=0.05)
    assert drive.move_by(-2.3) == pytest.approx(10.0, abs=0.05)
    assert drive.move_to(-4.0) == pytest.approx(-4.0, abs=0.05)
    # and the focus really went there: the sample's defocus follows the drive
    assert rig.scope.defocus_um() == pytest.approx(4.0, abs=0.05)


def test_settled_at_marks_the_end_of_each_move(rig):
    before = rig.clock.now()
    rig.drive.move_by(5.0)
    settled = rig.drive.settled_at
    assert before < settled <= rig.clock.now()


def test_moves_beyond_the_travel_limits_are_refused(rig):
    low, high = rig.drive.travel_um
    rig.drive.move_to(1.0)
    with pytest.raises(DriveFault):
        rig.drive.move_to(high + 10.0)
    with pytest.raises(DriveFault):
        rig.drive.move_by(low - 10.0)
    assert rig.drive.position_um() == pytest.approx(1.0, abs=0.05)
    assert rig.scope.defocus_um() == pytest.approx(-1.0, abs=0.05)


def test_stop_on_an_idle_drive_is_harmless(rig):
    rig.drive.stop()
    assert rig.drive.move_by(1.0) == pytest.approx(1.0, abs=0.05)


# -- Illuminator and Camera together: the camera sees what the LEDs light ----------------------

def test_camera_sees_the_lit_pattern_and_darkness(rig):
    rig.illuminator.show(rig.preset.autofocus)
    lit = rig.camera.capture()
    rig.illuminator.off()
    dark = rig.camera.capture()
    assert lit.image.dtype.name == "uint16" and lit.image.shape == rig.camera.shape == FRAME
    assert lit.image.mean() > 50 * max(dark.image.mean() - 100, 1)  # offset 100 counts
    assert dark.sequence == lit.sequence + 1


def test_a_pattern_the_array_cannot_show_is_refused(rig):
    with pytest.raises(HardwareError, match="NA"):
        rig.illuminator.show(Pattern("impossible", (Led(0.123, 0.456),)))


def test_frames_are_exposed_after_not_before(rig):
    rig.illuminator.show(rig.preset.autofocus)
    not_before = rig.clock.now() + 0.05
    frame = rig.camera.capture(not_before=not_before)
    assert frame.exposure_start >= not_before
    assert frame.exposure_start + frame.exposure_s <= rig.clock.now() + 1e-9


def test_a_dead_camera_times_out(rig):
    rig.camera.dead = True
    start = time.monotonic()
    with pytest.raises(CameraTimeout):
        rig.camera.capture(timeout_s=0.2)
    assert time.monotonic() - start < 1.0
