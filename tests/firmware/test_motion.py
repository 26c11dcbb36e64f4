"""Step ramps and the axis under CPython: the motion arithmetic the firmware runs on the board."""

import itertools
import math

import pytest

from firmware.focusboard.motion import Ramp


def sample(ramp, n=4000):
    ts = [ramp.duration * k / n for k in range(n + 1)]
    return ts, [ramp.offset_at(t) for t in ts]


def test_long_move_is_a_trapezoid_with_the_textbook_duration():
    ramp = Ramp(10000, v_max=1000, accel=10000)
    # accelerate 0.1 s (50 steps), cruise 9900 steps at 1000/s, decelerate 0.1 s
    assert ramp.duration == pytest.approx(10000 / 1000 + 1000 / 10000)
    assert ramp.peak == 1000
    assert ramp.velocity_at(5.0) == 1000


def test_short_move_is_a_triangle_that_never_reaches_full_speed():
    ramp = Ramp(1000, v_max=1e6, accel=10000)
    assert ramp.duration == pytest.approx(2 * math.sqrt(1000 / 10000))
    assert ramp.peak == pytest.approx(math.sqrt(10000 * 1000))


@pytest.mark.parametrize(("distance", "v_max", "accel", "v0"), [
    (10000, 1000, 10000, 0), (37, 5000, 2000, 0), (1, 100, 100, 0), (5000, 3000, 8000, 2500),
])
def test_motion_respects_speed_and_acceleration_and_ends_on_target(distance, v_max, accel, v0):
    ramp = Ramp(distance, v_max, accel, v0)
    ts, xs = sample(ramp)
    dt = ts[1] - ts[0]
    speeds = [(b - a) / dt for a, b in itertools.pairwise(xs)]
    assert max(speeds) <= max(v_max, v0) * 1.001
    accels = [abs(b - a) / dt for a, b in itertools.pairwise(speeds)]
    assert max(accels) <= accel * 1.01 + 1e-6
    assert xs[-1] == distance and ramp.steps_at(ramp.duration) == distance
    steps = [ramp.steps_at(t) for t in ts]
    assert steps == sorted(steps)  # never a step backwards
    assert ramp.velocity_at(ramp.duration) == 0


def test_a_stop_from_speed_decelerates_over_v_squared_over_2a():
    ramp = Ramp(math.ceil(3000**2 / (2 * 20000)), 3000, 20000, v0=3000)
    assert ramp.duration == pytest.approx(3000 / 20000, rel=0.01)
    assert ramp.velocity_at(0.0) == 3000


def test_a_stop_shorter_than_possible_brakes_harder_but_still_stops_on_the_step():
    ramp = Ramp(10, 3000, 20000, v0=3000)
    assert ramp.decel == pytest.approx(3000**2 / 20)
    assert ramp.steps_at(ramp.duration) == 10


def test_zero_distance_takes_no_time():
    assert Ramp(0, 1000, 1000).duration == 0


@pytest.mark.parametrize("args", [(-1, 10, 10), (10, 0, 10), (10, 10, 0), (10, 10, 10, -1)])
def test_nonsense_ramps_are_refused(args):
    with pytest.raises(ValueError, match="ramp needs"):
        Ramp(*args)
