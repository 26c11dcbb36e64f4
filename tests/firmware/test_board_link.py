"""The real firmware under the MicroPython unix port, the host driver, and a pty between them.

Everything the issue asks of the link is exercised end to end: moves, LEDs, limits and homing;
a line that drops, corrupts, duplicates and delays bytes; a silent host; a board killed and
rebooted mid-move, unplugged and replugged, or replaced; garbage. The motor's true position comes
from the simulator's side channel, never from the driver, so a move run twice or run without a
command would show.
"""

import random
import struct
import threading
import time

import pytest

from controller.hardware import protocol
from controller.hardware.board import FocusBoard
from controller.hardware.board_link import BoardFault, LinkLost, LinkSettings, TravelLimit
from controller.hardware.board_settings import FocusBoardSettings
from controller.hardware.box import serial_opener
from controller.hardware.interfaces import HardwareError, PositionUnknown
from controller.optics import Led, LedArray, Pattern, preset
from controller.sim.board import LitLeds, SimBoardSettings, SimulatedBoard

pytestmark = pytest.mark.firmware

SPU = 10  # steps per µm
ENDSTOP = -10200  # mechanical step of the min switch; homing calls it -1010 µm (logical -10100)


def mech(z_um):
    """The mechanical step a referenced logical position corresponds to after homing."""
    return round(z_um * SPU) - 100


@pytest.fixture
def sim(tmp_path):
    with SimulatedBoard(tmp_path, SimBoardSettings(endstop_min_steps=ENDSTOP)) as board:
        yield board


def board_for(sim, **changes):
    """The driver on the simulator's pty, opened by path exactly as the box opens its port."""
    values = {"steps_per_um": SPU, "travel_um": (-1000.0, 1000.0), "speed_um_s": 2000.0,
              "accel_um_s2": 200000.0, "settle_s": 0.0, **changes}
    return FocusBoard(serial_opener(sim.port), FocusBoardSettings(**values))


@pytest.fixture
def drive(sim):
    with board_for(sim) as board:
        yield board


def wait_until_still(sim, quiet_s=0.15, limit_s=3.0):
    """The motor's steps once they stopped changing (read from the side channel)."""
    start = time.monotonic()
    last, since = sim.motor_steps(), time.monotonic()
    while time.monotonic() - start < limit_s:
        time.sleep(0.01)
        now = sim.motor_steps()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return now
    raise AssertionError("the motor never came to rest")


def test_moves_leds_limits_and_homing_through_the_pty(sim, drive):
    assert drive.info.protocol_version == protocol.PROTOCOL_VERSION
    assert drive.info.simulated and drive.info.has_min_endstop and drive.info.led_count == 64
    with pytest.raises(PositionUnknown):
        drive.position_um()
    with pytest.raises(PositionUnknown):
        drive.move_by(1.0)
    assert sim.motor_steps() == 0  # refused moves moved nothing

    drive.home()
    assert drive.position_um() == -1010.0 and sim.motor_steps() == ENDSTOP
    assert drive.move_to(0.0) == 0.0 and sim.motor_steps() == mech(0)
    assert drive.move_by(12.3) == 12.3 and sim.motor_steps() == mech(12.3)
    assert drive.move_by(-2.3) == 10.0 and sim.motor_steps() == mech(10)
    assert drive.settled_at <= time.monotonic()
    with pytest.raises(TravelLimit, match="outside"):
        drive.move_to(1000.1)
    with pytest.raises(TravelLimit):
        drive.move_by(-1010.5)
    # the host refused those itself; the board refuses them too when a host does not
    with pytest.raises(TravelLimit, match="outside travel limits: target 10001"):
        drive.link.call(protocol.MOVE, struct.pack(protocol.MOVE_REQUEST,
                                                   protocol.MOVE_ABSOLUTE, 10001, 0))
    assert sim.motor_steps() == mech(10)

    autofocus = preset("pi-hq").autofocus
    drive.show(autofocus)
    index = drive.leds.nearest(autofocus.leds[0].na_x, autofocus.leds[0].na_y)
    assert sim.lit_leds() == LitLeds({index: (0, 255, 0)})  # the board's own colour: green
    assert drive.status().pattern_tag == drive.pattern_tag
    dpc = preset("pi-hq").ground_truth
    drive.show(dpc)
    lit = sim.lit_leds()
    assert len(lit.levels) == len(dpc.leds) and max(lit.levels.values()) == 255
    with pytest.raises(HardwareError, match="no LED at NA"):
        drive.show(Pattern("between LEDs", (Led(0.031, 0.0),)))
    assert sim.lit_leds() == lit  # a refused pattern leaves the lit one alone
    drive.off()
    assert sim.lit_leds() == LitLeds()


@pytest.mark.parametrize("faults", [
    {"drop": 0.005},
    {"corrupt": 0.005},
    {"duplicate": 0.01},
    pytest.param({"delay_s": 0.15}, marks=pytest.mark.slow),  # every poll waits 0.3 s
], ids=lambda f: next(iter(f)))
def test_every_move_runs_exactly_once_on_a_bad_line(sim, faults):
    # a deadline long enough that the retries, not the board's guard, decide the outcome
    drive = board_for(sim, heartbeat_s=2.0).connect()
    drive.set_position_um(0.0)
    for direction in (sim.to_board, sim.to_host):
        for name, value in faults.items():
            setattr(direction, name, value)
    expected = mech(0) + 100  # set_position said 0 where the mechanism is at 0
    rng = random.Random(7)
    for _ in range(8):
        delta = rng.choice([-1, 1]) * rng.randint(1, 400) / 10
        drive.move_by(delta)
        expected += round(delta * SPU)
        assert sim.motor_steps() == expected
    sim.to_board.clear()
    sim.to_host.clear()
    assert drive.position_um() * SPU == expected
    assert drive.link.retransmissions > 0
    drive.close()


def test_a_silent_host_makes_the_board_stop_within_its_deadline(sim, drive):
    drive.set_position_um(0.0)
    drive.show(preset("pi-hq").autofocus)
    drive.link.call(protocol.MOVE, struct.pack(protocol.MOVE_REQUEST,
                                                        protocol.MOVE_RELATIVE, 9000, 2000))
    sim.to_board.silent = True  # from the board's side the host is gone
    silent_at = time.monotonic()
    time.sleep(0.2)
    assert sim.motor_steps() > 0  # it was moving (9000 steps take 4.5 s)
    stopped = wait_until_still(sim, quiet_s=0.3)
    state_at_rest = time.monotonic() - 0.3
    assert stopped < 9000
    # deadline 0.5 s, braking 2000/2e6 s, plus the main loop's poll and the 20 ms side channel
    assert state_at_rest - silent_at < 0.5 + 0.15
    assert sim.lit_leds() == LitLeds() and not sim.state()["motor_enabled"]

    sim.to_board.silent = False
    time.sleep(0.1)
    with pytest.raises(BoardFault, match="heartbeat"):
        drive.move_by(1.0)
    assert sim.motor_steps() == stopped
    drive.clear_fault()
    drive.move_by(1.0)
    assert sim.motor_steps() == stopped + 10


def test_a_move_whose_replies_are_all_lost_runs_once_and_the_link_recovers(sim, drive):
    drive.set_position_um(0.0)
    sim.to_host.silent = True  # every reply lost: the host sends the MOVE nine times
    with pytest.raises(LinkLost, match="no reply"):
        drive.move_by(5.0)
    assert drive.link.retransmissions >= 8
    sim.to_host.silent = False
    assert drive.position_um() == 5.0  # the board ran it once; the host asks, not assumes
    assert wait_until_still(sim) == 50


def test_a_board_killed_mid_move_is_never_trusted_and_never_resumes(sim, drive):
    drive.set_position_um(0.0)
    outcome = []

    def long_move():
        try:
            drive.move_by(400.0)  # 4000 steps at 20000 steps/s: about 0.2 s
        except HardwareError as exc:
            outcome.append(exc)

    mover = threading.Thread(target=long_move)
    mover.start()
    time.sleep(0.08)
    sim.restart()
    mover.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], PositionUnknown), outcome
    assert "rebooted" in str(outcome[0])
    where = wait_until_still(sim)
    assert 0 < where < 4000
    with pytest.raises(PositionUnknown):
        drive.position_um()
    with pytest.raises(PositionUnknown):
        drive.move_by(1.0)
    time.sleep(0.3)
    assert sim.motor_steps() == where  # nothing resumed the interrupted move
    status = drive.status()
    assert not status.position_known and not status.moving and status.fault == 0

    drive.set_position_um(100.0)  # the user re-references; then it works again
    assert drive.move_by(-5.0) == 95.0
    assert sim.motor_steps() == where - 50


def test_unplugging_and_replugging_reconnects_and_reports_the_lost_position(sim, drive):
    drive.set_position_um(0.0)
    drive.move_by(1.0)
    sim.unplug()
    threading.Timer(0.3, sim.replug).start()
    with pytest.raises(PositionUnknown, match="rebooted"):
        drive.move_by(1.0)
    assert sim.motor_steps() == 10
    drive.set_position_um(1.0)
    assert drive.move_by(1.0) == 2.0 and sim.motor_steps() == 20


def test_a_board_that_stays_unplugged_is_reported(tmp_path):
    with (SimulatedBoard(tmp_path) as sim,
          board_for(sim, link=LinkSettings(reconnect_s=0.3)) as drive):
        sim.unplug()
        with pytest.raises(LinkLost, match="cannot open"):
            drive.status()


def test_a_replaced_board_is_named_as_such(sim, drive):
    drive.set_position_um(0.0)
    sim.settings.board_id = "00000000000000ff"
    sim.restart()
    with pytest.raises(PositionUnknown, match="replaced"):
        drive.move_by(1.0)
    assert drive.info.board_id == "00000000000000ff"


def test_garbage_on_the_line_crashes_neither_side(sim, drive):
    drive.set_position_um(0.0)
    rng = random.Random(3)
    garbage = bytes(rng.randrange(256) for _ in range(4000))
    for k in range(0, len(garbage), 200):
        sim.inject("to_board", garbage[k:k + 200])
        sim.inject("to_host", garbage[k:k + 200])
        time.sleep(0.005)
    time.sleep(0.1)
    assert sim.motor_steps() == 0 and sim.alive
    assert drive.move_by(3.0) == 3.0
    assert sim.motor_steps() == 30
    assert drive.status().rx_errors > 0  # the board saw the garbage, and threw it away


def test_a_configured_led_geometry_must_match_the_boards(sim):
    other = LedArray.planar_grid(8, 8, pitch_mm=6.0, distance_mm=40.0)
    with pytest.raises(HardwareError, match="LED 0 is at"):
        board_for(sim, leds=other).connect()
    with pytest.raises(HardwareError, match="has 64 LEDs, the configuration 225"):
        board_for(sim, leds=preset("paper").leds).connect()
    same = preset("pi-hq").leds
    with board_for(sim, leds=same) as drive:
        assert drive.leds is same


def test_the_board_refuses_to_talk_to_a_host_of_another_protocol_version(sim, monkeypatch):
    monkeypatch.setattr(protocol, "PROTOCOL_VERSION", protocol.PROTOCOL_VERSION + 1)
    with pytest.raises(HardwareError, match="protocol 1, this driver 2"):
        board_for(sim).connect()
