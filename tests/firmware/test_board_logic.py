"""The firmware's logic under CPython: commands, exactly-once execution, limits, safety.

The real Board runs over the real simulated hardware layer, with time given explicitly, so
every timing question (when does a move end, when does the deadline pass) is exact.
"""

import random
import struct

import pytest

from controller.hardware import protocol as p
from firmware.focusboard import hal_sim, settings
from firmware.focusboard.commands import Board
from firmware.focusboard.config import MotionConfig
from firmware.focusboard.motion import Ramp

MS = 1000  # µs


class Host:
    """Packets in, decoded replies out, with the host's sequence bookkeeping."""

    def __init__(self, board):
        self.board = board
        self.seq = 0
        self.now = 0

    def send(self, code, payload=b"", seq=None, session=None):
        seq = (self.seq + 1) & 0xFF if seq is None else seq
        session = self.board.session if session is None else session
        raw = p.Packet(seq, code, session, payload).encode()
        replies = self.board.receive(raw, self.now)
        assert len(replies) == 1
        reply = p.PacketParser().feed(replies[0])[0]
        if reply.code not in (p.E_STALE_SESSION, p.E_BAD_SEQUENCE):  # those ran nothing
            self.seq = seq
        return reply

    def ok(self, code, payload=b""):
        reply = self.send(code, payload)
        assert reply.code == p.OK, p.error_text(reply.code, reply.payload)
        return reply.payload

    def at(self, ms):
        self.now = int(ms * MS)
        self.board.tick(self.now)

    def status(self):
        payload = self.ok(p.STATUS)
        size = struct.calcsize(p.STATUS_REPLY)
        names = ("position", "target", "flags", "fault", "lit", "tag", "rx_errors")
        return dict(zip(names, struct.unpack(p.STATUS_REPLY, payload[:size]), strict=True))


def make_board(heartbeat_ms=60000, **overrides):
    board_settings = settings.merged(settings.REFERENCE, {
        "endstop_min_steps": -25000, "max_speed": 100000, "max_accel": 10**7,
        "board_id": "0102030405060708", "motion": {"heartbeat_ms": heartbeat_ms}, **overrides})
    hal = hal_sim.SimHardware(board_settings)
    return Board(hal, MotionConfig.from_dict(board_settings["motion"])), hal


@pytest.fixture
def rig():
    board, hal = make_board()
    return Host(board), hal


def move(host, steps, mode=p.MOVE_RELATIVE, speed=0):
    return host.send(p.MOVE, struct.pack(p.MOVE_REQUEST, mode, steps, speed))


def test_boots_with_motor_off_leds_dark_and_position_unknown(rig):
    host, hal = rig
    status = host.status()
    assert status["flags"] & p.F_POSITION_KNOWN == 0
    assert not hal.stepper.enabled and hal.leds.colours == {}
    reply = move(host, 100)
    assert reply.code == p.E_POSITION_UNKNOWN
    host.at(1000)
    assert hal.motor.steps == 0


def test_identify_reports_versions_identity_and_the_next_sequence(rig):
    host, _hal = rig
    reply = host.board.receive(p.Packet(77, p.IDENTIFY, 0).encode(), 0)
    packet = p.PacketParser().feed(reply[0])[0]
    version, _, _, _, board_id, caps, leds, next_seq = struct.unpack(p.IDENTIFY_REPLY,
                                                                      packet.payload)
    assert (version, board_id, leds, next_seq) == (p.PROTOCOL_VERSION, bytes(range(1, 9)), 64, 1)
    assert caps & p.CAP_ENDSTOP_MIN and caps & p.CAP_SIMULATED
    assert packet.seq == 77 and packet.session == host.board.session


def test_a_move_follows_its_ramp_and_ends_on_target(rig):
    host, hal = rig
    host.ok(p.SET_POSITION, struct.pack("<i", 0))
    target, duration_ms = struct.unpack(p.MOVE_REPLY, host.ok(
        p.MOVE, struct.pack(p.MOVE_REQUEST, p.MOVE_RELATIVE, 3000, 0)))
    ramp = Ramp(3000, 4000, 40000)  # settings.MOTION speed and accel
    assert target == 3000 and duration_ms == int(ramp.duration * 1000) + 1
    host.at(ramp.duration * 500)
    status = host.status()
    assert status["flags"] & p.F_MOVING
    assert status["position"] == ramp.steps_at(ramp.duration / 2)
    host.at(ramp.duration * 1000 + 1)
    status = host.status()
    assert status["position"] == 3000 and not status["flags"] & p.F_MOVING
    assert hal.motor.steps == 3000


def test_a_repeated_packet_is_answered_again_but_runs_once(rig):
    host, hal = rig
    host.ok(p.SET_POSITION, struct.pack("<i", 0))
    raw = p.Packet(host.seq + 1, p.MOVE, host.board.session,
                  struct.pack(p.MOVE_REQUEST, p.MOVE_RELATIVE, 500, 0)).encode()
    first = host.board.receive(raw, 0)
    host.at(5)
    again = host.board.receive(raw + raw, 5 * MS)
    assert again == first * 2
    host.seq += 1
    host.at(2000)
    assert host.status()["position"] == 500 and hal.motor.steps == 500


@pytest.mark.parametrize("seq_offset", [-1, 2, 100])  # an older packet, or packets skipped
def test_out_of_order_packets_are_refused_without_effect(rig, seq_offset):
    host, hal = rig
    host.ok(p.SET_POSITION, struct.pack("<i", 0))
    host.ok(p.HEARTBEAT)  # the last executed sequence is now host.seq
    seq = (host.seq + seq_offset) & 0xFF
    reply = host.send(p.MOVE, struct.pack(p.MOVE_REQUEST, 0, 500, 0), seq=seq)
    assert reply.code == p.E_BAD_SEQUENCE
    host.at(1000)
    assert hal.motor.steps == 0


def test_a_packet_for_another_boot_is_refused(rig):
    host, _hal = rig
    reply = host.send(p.SET_POSITION, struct.pack("<i", 0), session=host.board.session ^ 1)
    assert reply.code == p.E_STALE_SESSION
    assert not host.status()["flags"] & p.F_POSITION_KNOWN


def test_soft_limits_refuse_moves_and_positions_beyond_them(rig):
    host, hal = rig
    host.ok(p.SET_POSITION, struct.pack("<i", 19000))
    assert move(host, 1001).code == p.E_LIMIT
    assert move(host, -40000).code == p.E_LIMIT
    assert move(host, 20001, mode=p.MOVE_ABSOLUTE).code == p.E_LIMIT
    assert host.send(p.SET_POSITION, struct.pack("<i", 20001)).code == p.E_LIMIT
    host.at(1000)
    assert hal.motor.steps == 0
    assert move(host, 1000).code == p.OK  # exactly to the limit is allowed


def test_a_silent_host_stops_the_motor_darkens_and_latches_a_fault():
    board, hal = make_board(heartbeat_ms=500)
    host = Host(board)
    host.ok(p.SET_POSITION, struct.pack("<i", 0))
    host.ok(p.SET_LEDS, p.pack_set_leds(1, [(3, 255)]))
    host.ok(p.MOVE, struct.pack(p.MOVE_REQUEST, p.MOVE_RELATIVE, 15000, 0))
    host.at(499)
    assert hal.leds.colours == {3: (0, 255, 0)}
    host.at(500)  # the 500 ms deadline passes: stop at 40000 steps/s² from 4000 steps/s
    assert hal.leds.colours == {}
    stopped_by = 500 + 4000 / 40000 * 1000
    host.board.tick(int(stopped_by * MS) + 1)
    where = hal.stepper.position(int(stopped_by * MS) + 1)
    host.board.tick(int(5000 * MS))
    assert hal.stepper.position(5000 * MS) == where < 15000
    assert not hal.stepper.enabled
    host.now = 5000 * MS
    status = host.status()
    assert status["fault"] == p.FAULT_HEARTBEAT and status["position"] == where
    assert move(host, 10).code == p.E_FAULT
    assert host.send(p.SET_LEDS, p.pack_set_leds(2, [(3, 255)])).code == p.E_FAULT
    host.ok(p.CLEAR_FAULT)
    assert move(host, 10).code == p.OK


def test_release_ends_the_session_without_a_fault():
    board, hal = make_board(heartbeat_ms=500)
    host = Host(board)
    host.ok(p.SET_LEDS, p.pack_set_leds(1, [(3, 255)]))
    host.ok(p.RELEASE)
    host.at(10000)
    assert host.board.safety.fault == p.FAULT_NONE
    assert hal.leds.colours == {} and not hal.stepper.enabled


def test_stop_decelerates_within_the_braking_distance(rig):
    host, hal = rig
    host.ok(p.SET_POSITION, struct.pack("<i", 0))
    host.ok(p.MOVE, struct.pack(p.MOVE_REQUEST, p.MOVE_RELATIVE, 15000, 0))
    host.at(300)  # cruising at 4000 steps/s
    at_stop = host.status()["position"]
    host.ok(p.STOP)
    host.at(1000)
    final = host.status()["position"]
    assert final - at_stop == pytest.approx(4000**2 / (2 * 40000), abs=1)
    assert hal.motor.steps == final


def test_homing_finds_the_endstop_and_references_the_position():
    board, hal = make_board(endstop_min_steps=-300, motor_steps=0)
    host = Host(board)
    _, = struct.unpack(p.HOME_REPLY, host.ok(p.HOME, struct.pack(p.HOME_REQUEST, 50000)))
    host.at(2000)
    status = host.status()
    assert status["flags"] & p.F_POSITION_KNOWN and status["flags"] & p.F_ENDSTOP_MIN
    assert status["position"] == settings.MOTION["home_position"]
    assert hal.motor.steps == -300
    assert move(host, 100 + 50, mode=p.MOVE_RELATIVE).code == p.OK  # now allowed


def test_homing_without_an_endstop_is_not_supported():
    board, _ = make_board(endstop_min_steps=None)
    assert Host(board).send(p.HOME, struct.pack(p.HOME_REQUEST, 0)).code == p.E_NOT_SUPPORTED


def test_an_endstop_hit_during_a_move_halts_faults_and_forgets_the_position():
    board, hal = make_board(endstop_min_steps=-600)
    host = Host(board)
    host.ok(p.SET_POSITION, struct.pack("<i", 0))  # a wrong reference: the switch is close
    host.ok(p.MOVE, struct.pack(p.MOVE_REQUEST, p.MOVE_RELATIVE, -5000, 0))
    host.at(3000)
    status = host.status()
    assert hal.motor.steps == -600
    assert status["fault"] == p.FAULT_ENDSTOP and not status["flags"] & p.F_POSITION_KNOWN


@pytest.mark.parametrize(("change", "complaint"), [
    ({"limit_min": 500, "limit_max": 400}, b"limit_min"),
    ({"home_position": 0, "limit_min": 0}, b"home_position"),
    ({"speed": 100001}, b"speed"),
    ({"accel": 0}, b"accel"),
    ({"heartbeat_ms": 5}, b"heartbeat"),
])
def test_configure_refuses_values_the_board_cannot_honour(rig, change, complaint):
    host, _ = rig
    values = {**settings.MOTION, **change}
    reply = host.send(p.CONFIGURE, MotionConfig.from_dict(values).payload())
    assert reply.code == p.E_BAD_ARGUMENT and complaint in reply.payload
    assert host.ok(p.GET_CONFIG) == host.board.config.payload()
    assert host.board.config.limit_min == settings.MOTION["limit_min"]


def test_configure_applies_and_echoes(rig):
    host, _ = rig
    values = {**settings.MOTION, "limit_min": -100, "limit_max": 100, "heartbeat_ms": 9000}
    payload = MotionConfig.from_dict(values).payload()
    assert host.ok(p.CONFIGURE, payload) == payload
    host.ok(p.SET_POSITION, struct.pack("<i", 0))
    assert move(host, 101).code == p.E_LIMIT


def test_garbage_never_moves_anything_nor_breaks_the_link(rig):
    host, hal = rig
    host.ok(p.SET_POSITION, struct.pack("<i", 0))
    rng = random.Random(4)
    good = p.Packet(host.seq + 1, p.MOVE, host.board.session,
                   struct.pack(p.MOVE_REQUEST, p.MOVE_RELATIVE, 100, 0)).encode()
    for k in range(3000):
        if k % 3 == 0:  # a real command with one byte damaged
            noise = bytearray(good)
            noise[rng.randrange(1, len(noise))] ^= rng.randrange(1, 256)
        else:
            noise = bytearray(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        host.board.receive(bytes(noise), k)
    for packet in host.board.tick(10**6) + host.board.tick(10**6 + 60 * MS):
        assert p.PacketParser().feed(packet)[0].code != p.OK
    host.at(3000)
    assert hal.motor.steps == 0
    status = host.status()
    assert status["rx_errors"] > 900 and status["position"] == 0


def test_retransmissions_feed_the_deadline_but_never_rearm_a_released_board():
    board, _ = make_board(heartbeat_ms=500)
    host = Host(board)
    host.ok(p.HEARTBEAT)
    repeat = p.Packet(host.seq, p.HEARTBEAT, board.session).encode()
    for ms in (400, 800, 1200):  # the host lost the replies and keeps asking
        host.at(ms)
        board.receive(repeat, ms * MS)
    host.at(1600)
    assert board.safety.fault == p.FAULT_NONE
    host.ok(p.RELEASE)
    release = p.Packet(host.seq, p.RELEASE, board.session).encode()
    board.receive(release, 1700 * MS)
    host.at(5000)
    assert board.safety.fault == p.FAULT_NONE and not board.safety.armed
