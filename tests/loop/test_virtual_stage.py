"""The virtual stage: what the focus mechanism and the focal plane do, measured directly."""

import math

import numpy as np
import pytest

from controller.clock import SimulatedClock
from controller.hardware.interfaces import DriveFault
from controller.sim.devices import FocalPlane, VirtualFocusDrive


def test_positions_are_whole_motor_steps():
    drive = VirtualFocusDrive(SimulatedClock(), steps_per_um=4.0)
    assert drive.move_to(1.13) == pytest.approx(1.25)  # 4.52 steps -> 5 steps
    assert drive.mechanism_um() == pytest.approx(1.25)


def test_backlash_makes_the_mechanism_lag_after_a_reversal():
    drive = VirtualFocusDrive(SimulatedClock(), steps_per_um=10.0, backlash_um=2.0)
    drive.move_to(10.0)
    assert drive.mechanism_um() == pytest.approx(9.0)  # pushed from below: lags by half the play
    drive.move_by(-0.5)  # reversal smaller than the play: the motor turns, the focus stays
    assert drive.position_um() == pytest.approx(9.5)
    assert drive.mechanism_um() == pytest.approx(9.0)
    drive.move_by(-3.0)  # once the play is taken up the focus follows, now from above
    assert drive.mechanism_um() == pytest.approx(6.5 + 1.0)
    drive.move_by(+1.0)  # and reverses again: the mechanism waits for the play
    assert drive.mechanism_um() == pytest.approx(7.5)


def test_a_move_takes_travel_time_plus_settling():
    clock = SimulatedClock()
    drive = VirtualFocusDrive(clock, speed_um_s=100.0, settle_s=0.05)
    drive.move_by(20.0)
    assert clock.now() == pytest.approx(0.25)
    assert drive.settled_at == pytest.approx(0.25)


def test_the_drive_refuses_moves_beyond_its_travel():
    drive = VirtualFocusDrive(SimulatedClock(), travel_um=(-50.0, 50.0))
    with pytest.raises(DriveFault, match="travel limits"):
        drive.move_to(60.0)
    with pytest.raises(DriveFault):
        drive.move_by(math.nan)
    assert drive.position_um() == 0.0 and drive.moves == 0


def test_thermal_drift_moves_the_focal_plane_at_its_rate():
    clock = SimulatedClock()
    plane = FocalPlane(clock, z_um=3.0, drift_um_per_min=1.5)
    clock.sleep(120.0)
    assert plane.z_um() == pytest.approx(6.0)


def test_random_walk_grows_like_the_square_root_of_time_and_repeats_by_seed():
    def ends(seed: int, seconds: float, n: int = 400) -> np.ndarray:
        out = []
        for k in range(n):
            clock = SimulatedClock()
            plane = FocalPlane(clock, random_walk_um_per_sqrt_s=0.1, seed=seed * 1000 + k)
            for _ in range(10):
                clock.sleep(seconds / 10)
                plane.z_um()
            out.append(plane.z_um())
        return np.array(out)

    short, long = ends(1, 4.0), ends(1, 100.0)
    assert np.std(short) == pytest.approx(0.1 * 2.0, rel=0.15)
    assert np.std(long) == pytest.approx(0.1 * 10.0, rel=0.15)
    np.testing.assert_array_equal(ends(1, 4.0, n=5), ends(1, 4.0, n=5))


def test_a_knock_jumps_the_focal_plane_once():
    clock = SimulatedClock()
    plane = FocalPlane(clock, z_um=1.0, drift_um_per_min=0.0)
    plane.knock(-5.0)
    clock.sleep(10.0)
    assert plane.z_um() == pytest.approx(-4.0)
