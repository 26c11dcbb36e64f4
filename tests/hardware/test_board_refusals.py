"""Bad numbers for the board are refused by the host before a byte is encoded or sent (issue 9).

The far end is the scripted board (tests/hardware/scripted_port.py), so each test sees exactly
which packets left the driver; the same refusals through ``focuslock board`` against the real
firmware are in tests/firmware/test_board_cli.py.
"""

from __future__ import annotations

import math

import pytest

from controller.cli import build_parser, main
from controller.commands.board import board_from, hold_lit
from controller.config import config_from_dict
from controller.hardware import box, protocol
from controller.hardware.board import FocusBoard, NotFinite
from controller.hardware.board_leds import MAX_LIT_LEDS
from controller.hardware.board_link import BoardError, BoardFault, TravelLimit
from controller.hardware.board_settings import FocusBoardSettings
from controller.hardware.interfaces import HardwareError
from tests.hardware.scripted_port import QUICK, ScriptedBoard, ScriptedPort, connected, reply


@pytest.mark.parametrize(("settings", "message"), [
    ({"steps_per_um": 1e30}, r"1e\+30 steps/µm is .* steps .*the protocol carries "
                             r"-2147483648\.\.2147483647"),
    ({"steps_per_um": 0.0}, "steps_per_um must be > 0, got 0.0"),
    ({"steps_per_um": math.nan}, "steps_per_um must be finite, got nan"),
    ({"steps_per_um": 1e-300}, r"is 0\.\.0 steps: the limits must be at least one step apart"),
    ({"travel_um": (-1e300, 1e300)}, r"is -1e\+301\.\.1e\+301 steps"),
    ({"travel_um": (-1e300, 1e300), "steps_per_um": 1e10}, "is beyond any step count"),
    ({"travel_um": (-math.inf, 0.0)}, "travel_um must be finite, got -inf"),
    ({"speed_um_s": 1e12}, r"speed_um_s 1e\+12 at 10 steps/µm is 1e\+13 steps; "
                           "the protocol carries at most 4294967295"),
    ({"heartbeat_s": 1000.0}, "heartbeat_s 1000 is 1e[+]06 ms; the protocol carries at most 65535"),
    ({"home_clearance_um": -1.0}, "home_clearance_um and settle_s must be >= 0"),
])
def test_settings_that_do_not_fit_the_protocol_are_refused_naming_value_and_range(
        settings, message):
    with pytest.raises(HardwareError, match=message):
        FocusBoardSettings(**settings)


def referenced(**settings) -> tuple[FocusBoard, ScriptedBoard, ScriptedPort]:
    """A connected driver whose board rests at 0 µm, travel ±1000 µm at 10 steps/µm."""
    board = ScriptedBoard()
    drive, port = connected(board, **settings)
    drive.set_position_um(0.0)
    return drive, board, port


@pytest.mark.parametrize(("command", "value", "error", "message"), [
    ("move_by", math.nan, NotFinite, "move by nan µm: not a number"),
    ("move_by", math.inf, TravelLimit, r"move by inf µm is outside travel limits \[-1000, 1000\]"),
    ("move_by", -math.inf, TravelLimit, "move by -inf µm is outside"),
    ("move_by", 1e308, TravelLimit, r"move by 1e\+308 µm is outside"),
    ("move_by", 1e9, TravelLimit, r"move by 1e\+09 µm is outside travel limits"),
    ("move_by", 1000.1, TravelLimit, "move by 1000.1 µm is outside"),
    ("move_to", 1e9, TravelLimit, r"move to 1e\+09 µm is outside travel limits \[-1000, 1000\]"),
    ("move_to", math.nan, NotFinite, "move to nan µm: not a number"),
    ("move_to", -1000.1, TravelLimit, "move to -1000.1 µm is outside"),
    ("set_position_um", math.nan, NotFinite, "position nan µm: not a number"),
    ("set_position_um", math.inf, TravelLimit, "position inf µm is outside"),
    ("set_position_um", 2000.0, TravelLimit, "position 2000 µm is outside"),
])
def test_a_bad_move_or_position_is_refused_before_it_is_sent(command, value, error, message):
    drive, board, port = referenced()
    sent = len(port.requests)
    with pytest.raises(error, match=message):
        getattr(drive, command)(value)
    assert port.requests[sent:] == [] and board.moves == [] and board.position_steps == 0
    drive.close()


def test_a_relative_move_is_checked_against_where_the_board_rests():
    drive, board, _ = referenced()
    drive.move_to(990.0)
    with pytest.raises(TravelLimit, match=r"move by 20 µm is outside travel limits"):
        drive.move_by(20.0)
    assert board.moves == [(protocol.MOVE_ABSOLUTE, 9900)]
    assert drive.move_by(10.0) == pytest.approx(1000.0)  # up to the limit itself is inside
    drive.close()


def test_after_connecting_the_board_is_asked_where_it_rests_before_a_relative_move():
    board = ScriptedBoard()
    board.position_steps, board.position_known = 9990, True  # left there by a previous run
    drive, port = connected(board)
    with pytest.raises(TravelLimit, match="move by 5 µm"):
        drive.move_by(5.0)
    assert port.commands()[-1] == protocol.STATUS and board.moves == []
    drive.close()


def test_leds_the_packet_or_the_board_cannot_carry_are_refused_before_sending():
    board = ScriptedBoard(led_count=100)
    drive, port = connected(board)
    sent = len(port.requests)
    for levels, message in [([(100, 255)], r"LED 100 does not exist \(the board has 100\)"),
                            ([(-1, 255)], "LED -1 does not exist"),
                            ([(3, 256)], "LED 3 brightness 256 is outside 0..255"),
                            ([(3, 10), (3, 20)], "named twice"),
                            ([(i, 1) for i in range(MAX_LIT_LEDS + 1)],
                             f"at most {MAX_LIT_LEDS} fit in a SET_LEDS packet")]:
        with pytest.raises(HardwareError, match=message):
            drive.set_leds(levels)
    assert port.requests[sent:] == []
    drive.set_leds([(i, 1) for i in range(MAX_LIT_LEDS)])
    assert len(board.lit) == MAX_LIT_LEDS
    drive.close()


def test_ctrl_c_inside_connect_still_releases_the_board_and_the_port():
    board = ScriptedBoard()

    def interrupted(request):
        if request.code == protocol.CONFIGURE:
            raise KeyboardInterrupt
        return board(request)

    port = ScriptedPort(interrupted)
    with pytest.raises(KeyboardInterrupt):
        FocusBoard(lambda: port, FocusBoardSettings(link=QUICK)).connect()
    assert port.commands()[-1] == protocol.RELEASE and port.closed


def test_a_malformed_reply_inside_connect_is_a_board_error_and_the_port_is_released():
    board = ScriptedBoard(led_count=4)

    def truncating(request):
        if request.code == protocol.LED_GEOMETRY:
            return reply(request, b"\x00", session=board.session)
        return board(request)

    port = ScriptedPort(truncating)
    with pytest.raises(BoardError, match="LED_GEOMETRY reply: LED_GEOMETRY payload too short"):
        FocusBoard(lambda: port, FocusBoardSettings(link=QUICK)).connect()
    assert port.commands()[-1] == protocol.RELEASE and port.closed


def test_the_boards_soft_limits_are_the_configs_travel():
    config = config_from_dict({"board": {"travel_min_um": -30.0, "travel_max_um": 70.0,
                                         "steps_per_um": 4.0}})
    board = ScriptedBoard()
    port = ScriptedPort(board)
    drive = FocusBoard(lambda: port, box.board_settings(config.board)).connect()
    assert board.configs[0][:2] == (-120, 280) and drive.travel_um == (-30.0, 70.0)
    drive.close()


def test_the_cli_builds_its_board_from_the_configs_table_with_the_command_line_on_top(tmp_path):
    path = tmp_path / "box.toml"
    path.write_text("[board]\ntravel_min_um = -30.0\ntravel_max_um = 70.0\nsteps_per_um = 4.0\n")
    args = build_parser().parse_args(["board", "info", "--config", str(path)])
    assert board_from(args).settings.limit_steps == (-120, 280)
    args = build_parser().parse_args(["board", "info", "--config", str(path),
                                      "--steps-per-um", "2"])
    assert board_from(args).settings.limit_steps == (-60, 140)


def faulting_during_the_hold(board: ScriptedBoard):
    """The far end faults (heartbeat, LEDs off) when asked for its status the second time
    after the LEDs were lit: the first answer is the one ``board leds`` prints."""
    polls = {"since_lit": 0}

    def answer(request):
        if request.code == protocol.SET_LEDS:
            polls["since_lit"] = 0
        elif request.code == protocol.STATUS:
            polls["since_lit"] += 1
            if polls["since_lit"] == 2:
                board.latch_fault(protocol.FAULT_HEARTBEAT, b"no command for 500 ms")
        return board(request)

    return answer


def test_a_hold_ends_with_the_fault_named_when_the_board_faulted():
    board = ScriptedBoard(led_count=4)
    drive, _ = connected(board)
    drive.set_leds([(1, 255)])
    drive.status()
    board.latch_fault(protocol.FAULT_HEARTBEAT, b"no command for 500 ms")
    with pytest.raises(BoardFault, match=r"heartbeat deadline missed \(no command for 500 ms\)"):
        hold_lit(drive, 60.0)
    drive.close()


def test_board_leds_hold_exits_2_naming_the_fault(monkeypatch, capsys):
    board = ScriptedBoard(led_count=4)
    port = ScriptedPort(faulting_during_the_hold(board))
    monkeypatch.setattr(box, "serial_opener", lambda path, serial_number: lambda: port)
    assert main(["board", "leds", "--index", "1", "--hold", "60"]) == 2
    err = capsys.readouterr().err
    assert err == ("focuslock board: error: focus board fault while the LEDs were held: "
                   "heartbeat deadline missed (no command for 500 ms); the board turned them "
                   "off\n")
    assert board.lit == [] and port.commands()[-1] == protocol.RELEASE and port.closed
