"""The control law alone: gain, dead band, and the guard's maximum step and travel window."""

import pytest

from controller.loop import TRAVEL_WINDOW, control_move
from controller.move_guard import MoveGuard

WIDE = (-1000.0, 1000.0)


def move(error, z=0.0, gain=0.5, dead_band=0.1, max_step=10.0, window=WIDE):
    return control_move(error, z, gain=gain, dead_band_um=dead_band,
                        guard=MoveGuard(window, max_step, TRAVEL_WINDOW))


def test_gain_scales_the_correction_with_its_sign():
    assert move(4.0) == (2.0, "")
    assert move(-4.0) == (-2.0, "")


def test_dead_band_means_no_move():
    assert move(0.1) == (0.0, "")
    assert move(-0.09) == (0.0, "")
    assert move(0.11)[0] == pytest.approx(0.055)


def test_max_step_clips_keeping_direction():
    assert move(50.0) == (10.0, "max_step")
    assert move(-50.0) == (-10.0, "max_step")


def test_travel_window_clips_to_its_edge():
    assert move(8.0, z=48.0, window=(-50.0, 50.0)) == (2.0, "travel_window")
    assert move(-8.0, z=-50.0, window=(-50.0, 50.0)) == (0.0, "travel_window")


def test_large_errors_use_the_capture_gain():
    def law(error):
        return control_move(error, 0.0, gain=0.5, dead_band_um=0.1,
                            guard=MoveGuard(WIDE, 10.0, TRAVEL_WINDOW), capture_gain=0.9,
                            capture_beyond_um=2.0)

    assert law(1.0) == (0.5, "")
    assert law(-2.0) == (-1.0, "")
    assert law(4.0)[0] == pytest.approx(3.6)
