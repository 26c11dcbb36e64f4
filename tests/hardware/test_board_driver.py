"""The board driver against scripted bytes: what it sends, and what it makes of each answer.

The far end is tests/hardware/scripted_port.py, answering with packets the protocol module
builds, so a clean line, garbage, a corrupt reply, silence, a reboot and a vanished port are each
exactly one scripted event (the pty tests in tests/firmware run the same driver against the real
firmware).
"""

from __future__ import annotations

import struct

import pytest

from controller.hardware import protocol
from controller.hardware.board_link import BoardError, BoardLink, LinkLost
from controller.hardware.interfaces import PositionUnknown
from tests.hardware.scripted_port import QUICK, ScriptedBoard, ScriptedPort, connected, reply


def link_to(answer) -> tuple[BoardLink, ScriptedPort]:
    port = ScriptedPort(answer)
    return BoardLink(lambda: port, QUICK), port


def test_identify_reads_the_board_and_adopts_its_next_sequence_number():
    def answer(request):
        payload = struct.pack(protocol.IDENTIFY_REPLY, protocol.PROTOCOL_VERSION, 1, 2, 3,
                              bytes.fromhex("0011223344556677"), protocol.CAP_ENDSTOP_MIN, 64, 42)
        return reply(request, payload, session=0xCAFE)

    link, port = link_to(answer)
    info = link.open()
    assert (info.protocol_version, info.firmware_version, info.board_id, info.led_count,
            info.session) == (1, "1.2.3", "0011223344556677", 64, 0xCAFE)
    assert info.has_min_endstop and not info.simulated
    assert port.requests[0].code == protocol.IDENTIFY and port.requests[0].session == 0
    link.call(protocol.STATUS)
    assert port.requests[1].seq == 42 and port.requests[1].session == 0xCAFE


def test_a_board_of_another_protocol_version_is_refused():
    def answer(request):
        return reply(request, bytes([protocol.PROTOCOL_VERSION + 1]), session=1)

    link, port = link_to(answer)
    with pytest.raises(BoardError, match="protocol 2, this driver 1"):
        link.open()
    assert port.closed


def test_connect_configures_the_board_and_a_move_sends_whole_steps():
    board = ScriptedBoard()
    drive, port = connected(board, travel_um=(-50.0, 60.0), speed_um_s=100.0,
                            accel_um_s2=1000.0, home_clearance_um=2.0)
    assert board.configs == [(-500, 600, -520, 1000, 10000, 2000)]
    with pytest.raises(PositionUnknown):
        drive.move_by(1.0)
    drive.set_position_um(1.0)
    assert drive.move_by(12.34) == pytest.approx(13.3)
    assert drive.move_to(-4.0) == pytest.approx(-4.0)
    assert board.moves[1:] == [(protocol.MOVE_RELATIVE, 123), (protocol.MOVE_ABSOLUTE, -40)]
    assert drive.position_um() == pytest.approx(-4.0)
    drive.close()
    assert port.commands()[-1] == protocol.RELEASE and port.closed


def test_garbage_and_a_corrupt_reply_before_the_good_one_cost_no_retry():
    board = ScriptedBoard()

    def noisy(request):
        good = board(request)
        corrupt = bytearray(good)
        corrupt[-1] ^= 0xFF
        return b"\x00\xf5\x02garbage" + bytes(corrupt) + good

    link, _ = link_to(noisy)
    link.open()
    assert link.call(protocol.HEARTBEAT) == b""
    assert link.retransmissions == 0


def test_a_lost_reply_is_asked_for_again_under_the_same_sequence_number():
    board = ScriptedBoard()
    lose = {"next": False}

    def lossy(request):
        if lose["next"]:
            lose["next"] = False
            return b""
        return board(request)

    link, port = link_to(lossy)
    link.open()
    lose["next"] = True
    link.call(protocol.CLEAR_FAULT)
    assert link.retransmissions == 1
    assert port.written[-1] == port.written[-2]  # the same bytes: the board runs it once


def test_a_silent_board_is_a_lost_link_after_every_try():
    board = ScriptedBoard()
    link, port = link_to(board)
    link.open()
    port.answer = lambda request: b""
    with pytest.raises(LinkLost, match="after 3 tries"):
        link.call(protocol.STATUS)
    assert len(set(port.written[1:])) == 1 and len(port.written) == 1 + 3


def test_a_new_boot_nonce_reads_as_position_unknown_and_the_board_is_configured_again():
    board = ScriptedBoard()
    drive, _ = connected(board)
    drive.set_position_um(0.0)
    board.reboot()
    with pytest.raises(PositionUnknown, match="rebooted"):
        drive.move_by(1.0)
    assert len(board.configs) == 2 and drive.info.session == board.session
    with pytest.raises(PositionUnknown, match="until homed or set"):
        drive.position_um()  # the new boot does not vouch for its position
    board.reboot(board_id=b"ANOTHER!")
    with pytest.raises(PositionUnknown, match="replaced"):
        drive.position_um()
    drive.close()


def test_a_lost_sequence_count_is_relearned_and_the_command_sent_once_more():
    board = ScriptedBoard()
    refuse = {"next": False}

    def out_of_step(request):
        if refuse["next"] and request.code == protocol.CLEAR_FAULT:
            refuse["next"] = False
            return reply(request, b"expected 9", code=protocol.E_BAD_SEQUENCE,
                         session=board.session)
        return board(request)

    link, port = link_to(out_of_step)
    link.open()
    refuse["next"] = True
    link.call(protocol.CLEAR_FAULT)
    assert port.commands()[-3:] == [protocol.CLEAR_FAULT, protocol.IDENTIFY,
                                    protocol.CLEAR_FAULT]


def test_a_vanished_port_is_reopened_through_the_opener():
    board = ScriptedBoard()
    ports = [ScriptedPort(board), ScriptedPort(board)]
    opened = iter(ports)
    link = BoardLink(lambda: next(opened), QUICK)
    link.open()
    ports[0].vanished = True
    assert link.call(protocol.CLEAR_FAULT) == b""
    assert ports[0].closed and ports[1].commands() == [protocol.CLEAR_FAULT]


def test_a_port_that_stays_away_is_a_lost_link():
    board = ScriptedBoard()
    port = ScriptedPort(board)
    opens = [port]

    def opener():
        if not opens:
            raise LinkLost("cannot open the focus board at /dev/scripted")
        return opens.pop()

    link = BoardLink(opener, QUICK)
    link.open()
    port.vanished = True
    with pytest.raises(LinkLost, match="cannot open"):
        link.call(protocol.STATUS)
