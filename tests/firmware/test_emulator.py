"""The committed image on an emulated RP2040 (rp2040js under node), driven by the host driver
over the chip's emulated USB serial, judged at its pins (issue 16).

This is the part the unix-port tests cannot reach: hal_rp2's PIO step program and its 1 ms
chunk timer, the WS2812 bit stream, the USB CDC stdio, all running from the frozen image. Times
are the emulator's (the chip's) own, so the figures do not depend on this machine's load.
"""

import struct

import pytest

from controller.hardware import protocol
from controller.hardware.board import FocusBoard
from controller.hardware.board_link import TravelLimit
from controller.hardware.board_settings import FocusBoardSettings
from controller.hardware.box import serial_opener
from firmware import build_image
from firmware.focusboard.motion import Ramp
from tests.firmware.emulated_board import EmulatedBoard, Event, emulator_missing

pytestmark = [pytest.mark.firmware, pytest.mark.slow,
              pytest.mark.skipif(emulator_missing() is not None, reason=str(emulator_missing()))]

STEPS_PER_UM = 10
SETTINGS = FocusBoardSettings(steps_per_um=STEPS_PER_UM, speed_um_s=200.0, accel_um_s2=2000.0,
                              heartbeat_s=0.2)
NS = 1e-9


@pytest.fixture
def board(tmp_path):
    emulated = EmulatedBoard(tmp_path)
    with emulated:
        # The hardware layer darkens the LEDs as it starts: from then on the firmware listens.
        emulated.wait_for(lambda ev: bool(frames(ev)), "boot (the LEDs-off frame)")
        yield emulated


@pytest.fixture
def drive(board):
    with FocusBoard(serial_opener(board.port), SETTINGS) as connected:
        yield connected


def edges(events: list[Event], pin: str, level: int, after: int = 0) -> list[int]:
    return [e["t"] for e in events if e.get("pin") == pin and e.get("level") == level
            and e["t"] > after]


def level_at(events: list[Event], pin: str, t: int) -> int | None:
    """The pin's level just before emulated time t."""
    levels = [e["level"] for e in events if e.get("pin") == pin and "level" in e and e["t"] < t]
    return levels[-1] if levels else None


def frames(events: list[Event], after: int = 0) -> list[Event]:
    return [e for e in events if "ws2812" in e and e["t"] > after]


def test_the_image_boots_and_names_its_version(drive):
    recorded = build_image.firmware_version()
    assert drive.info.firmware_version == recorded
    assert drive.info.protocol_version == protocol.PROTOCOL_VERSION
    assert not drive.info.simulated  # hal_rp2, not the simulator's layer
    assert drive.info.capabilities & protocol.CAP_LED_RGB
    assert drive.info.led_count == 64


def test_a_move_gives_exactly_its_steps_on_the_planned_ramp(board, drive):
    drive.set_position_um(0.0)
    before = board.events()[-1]["t"]
    steps = 250
    move(drive, steps)
    events = board.wait_for(
        lambda ev: len(edges(ev, "step", 0, before)) >= steps
        and edges(ev, "step", 0, before)[-1] < ev[-1]["t"] - 20_000_000,  # 20 ms quiet after
        f"{steps} step pulses")
    rises = edges(events, "step", 1, before)
    assert len(rises) == steps
    assert level_at(events, "dir", rises[0]) == 1  # set before the first step: positive
    assert level_at(events, "enable", rises[0]) == 0  # active low: the driver is on
    ramp = Ramp(steps, SETTINGS.speed_um_s * STEPS_PER_UM, SETTINGS.accel_um_s2 * STEPS_PER_UM)
    error_s = max(abs((t - rises[0]) * NS - (planned(ramp, k + 1) - planned(ramp, 1)))
                  for k, t in enumerate(rises))
    print(f"emulated: {len(rises)} pulses, ramp {ramp.duration * 1e3:.1f} ms planned, "
          f"{(rises[-1] - rises[0]) * NS * 1e3:.1f} ms first to last, "
          f"worst timing error {error_s * 1e3:.2f} ms")
    # Steps run late, never early, by the 1 ms chunk plus the timer callback's latency: it is
    # a scheduled (soft) callback, so it waits while the main loop handles a packet.
    assert error_s < 0.005


def move(drive: FocusBoard, steps: int) -> None:
    """MOVE without the driver's wait for its end, which is timed by the wall clock: the
    emulator runs slower than the chip, and slower still on a loaded machine."""
    drive.link.call(protocol.MOVE, struct.pack(protocol.MOVE_REQUEST, protocol.MOVE_RELATIVE,
                                               steps, 0))


def planned(ramp: Ramp, step: int) -> float:
    """When the ramp reaches ``step`` (s), by bisection of its offset."""
    low, high = 0.0, ramp.duration
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if ramp.offset_at(mid) < step else (low, mid)
    return high


def test_the_board_refuses_a_move_past_its_soft_limits(board, drive):
    drive.set_position_um(0.0)
    before = board.events()[-1]["t"]
    high = SETTINGS.limit_steps[1]
    payload = struct.pack(protocol.MOVE_REQUEST, protocol.MOVE_ABSOLUTE, high + 1, 0)
    with pytest.raises(TravelLimit, match="outside travel limits"):
        drive.link.call(protocol.MOVE, payload)  # past the driver's own check: the board's
    drive.status()  # one more round trip: anything the refused move started would show by now
    assert edges(board.events(), "step", 1, before) == []


def test_host_silence_stops_the_pulses_and_darkens_the_leds(board, drive):
    drive.set_position_um(0.0)
    drive.set_led_colours([(0, 0, 255, 0)])
    move(drive, 5000)  # 2.6 s at full speed: the silence falls in the middle of it
    board.wait_for(lambda ev: len(edges(ev, "step", 1)) > 100, "a running move")
    board.to_board.silent = True
    events = board.wait_for(
        lambda ev: any(not any(f["ws2812"]) for f in frames(ev, last_rx(ev))), "LEDs off")
    silence = last_rx(events)
    dark = next(f["t"] for f in frames(events, silence) if not any(f["ws2812"]))
    events = board.wait_for(lambda ev: ev[-1]["t"] > dark + 100_000_000, "100 ms after")
    last_step = edges(events, "step", 1)[-1]
    stop_ms = (last_step - silence) * NS * 1e3
    dark_ms = (dark - silence) * NS * 1e3
    print(f"emulated: deadline {SETTINGS.heartbeat_s * 1e3:.0f} ms; after the host's last byte "
          f"the last step came at {stop_ms:.1f} ms and the LEDs went dark at {dark_ms:.1f} ms")
    assert SETTINGS.heartbeat_s * 1e3 <= dark_ms < 500
    assert stop_ms < 500
    assert len(edges(events, "step", 1)) < 5000  # it never finished the move


def last_rx(events: list[Event]) -> int:
    return max(e["t"] for e in events if e.get("event") == "rx")


def test_ws2812_data_on_the_led_pin_is_the_colours_asked_for(board, drive):
    before = board.events()[-1]["t"]
    drive.set_led_colours([(0, 255, 0, 0), (9, 0, 0, 255), (63, 1, 2, 3)])
    events = board.wait_for(lambda ev: bool(frames(ev, before)), "a WS2812 frame")
    frame = frames(events, before)[-1]
    assert frame["extra_bits"] == 0
    grb = frame["ws2812"]
    assert len(grb) == 64 * 3
    lit = {i: (grb[3 * i + 1], grb[3 * i], grb[3 * i + 2]) for i in range(64)
           if any(grb[3 * i:3 * i + 3])}
    assert lit == {0: (255, 0, 0), 9: (0, 0, 255), 63: (1, 2, 3)}
