"""The device interface suite (python-microscope's habit): what the loop relies on from any
Camera, FocusDrive and Illuminator, using nothing but those interfaces and the rig's clock.

It runs against the simulated backends here and against a real box with
``pytest tests/hardware --rig-config /etc/focuslock/focuslock.toml``; moves stay within a few
tens of µm of where the drive starts, and it is put back there afterwards. That the simulators
match the physics is tested apart (tests/loop/test_simulated_rigs.py).
"""

from __future__ import annotations

import pytest

from controller.hardware.interfaces import DriveFault, HardwareError
from controller.optics import Led, Pattern

# -- FocusDrive -----------------------------------------------------------------------------


def test_relative_and_absolute_moves_land_where_asked(rig, step_um):
    drive = rig.drive
    start = drive.position_um()
    assert drive.move_by(12.3) == pytest.approx(start + 12.3, abs=step_um)
    assert drive.position_um() == pytest.approx(start + 12.3, abs=step_um)
    assert drive.move_by(-2.3) == pytest.approx(start + 10.0, abs=step_um)
    assert drive.move_to(start - 4.0) == pytest.approx(start - 4.0, abs=step_um)
    assert drive.position_um() == pytest.approx(start - 4.0, abs=step_um)


def test_settled_at_marks_the_end_of_each_move(rig):
    before = rig.clock.now()
    rig.drive.move_by(5.0)
    assert before < rig.drive.settled_at <= rig.clock.now()


def test_moves_beyond_the_travel_limits_are_refused(rig, step_um):
    low, high = rig.drive.travel_um
    here = rig.drive.move_by(1.0)
    with pytest.raises(DriveFault):
        rig.drive.move_to(high + 10.0)
    with pytest.raises(DriveFault):
        rig.drive.move_by(low - 10.0 - here)
    assert rig.drive.position_um() == pytest.approx(here, abs=step_um)


def test_stop_on_an_idle_drive_is_harmless(rig, step_um):
    start = rig.drive.position_um()
    rig.drive.stop()
    assert rig.drive.move_by(1.0) == pytest.approx(start + 1.0, abs=step_um)


# -- Illuminator and Camera together: the camera sees what the LEDs light ----------------------

def test_camera_sees_the_lit_pattern_and_darkness(rig):
    rig.illuminator.show(rig.preset.autofocus)
    lit = rig.camera.capture()
    rig.illuminator.off()
    dark = rig.camera.capture()
    assert lit.image.dtype.name == "uint16" and lit.image.shape == rig.camera.shape
    assert rig.camera.shape == rig.preset.optics.frame_shape
    assert lit.image.mean() > 2 * dark.image.mean()
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
    rig.illuminator.off()
