"""The focuslock Sangaboard driver against the fake on a pty: moves read back, the one-sided
approach, each firmware's way of moving, and every broken reply ending in a latched fault that
never lets a second move through."""

from __future__ import annotations

import dataclasses

import pytest

from controller.hardware.interfaces import DriveFault
from controller.hardware.sangaboard import (
    BadReply,
    NoReply,
    PortGone,
    ReadbackMismatch,
    SangaboardError,
    SangaboardFocus,
    open_sangaboard,
)
from controller.sim.sangaboard import FakeSangaboard, SangaboardFaults
from tests.sangaboard.conftest import QUICK, STEPS_PER_UM


def test_moves_land_and_read_back(drive: SangaboardFocus, fake: FakeSangaboard) -> None:
    assert drive.position_um() == 0.0
    assert drive.move_by(12.3) == pytest.approx(12.3)
    assert drive.move_to(-4.0) == -4.0
    assert fake.z_steps() == -40 and drive.position_um() == -4.0
    moves = [c for c in fake.commands if c.startswith("mr")]
    assert moves == ["mrz 123", "mrz -163"]  # z only: x and y are left alone
    assert fake.xy == (0, 0)


def test_travel_and_non_numbers_are_refused_before_anything_is_sent(
        drive: SangaboardFocus, fake: FakeSangaboard) -> None:
    for bad in (float("nan"), float("inf")):
        with pytest.raises(DriveFault, match="not a finite number"):
            drive.move_by(bad)
    with pytest.raises(DriveFault, match="outside travel limits"):
        drive.move_to(600.0)
    assert fake.moves == 0 and drive.fault is None


def test_every_move_ends_from_below_and_lands_through_the_backlash(fake: FakeSangaboard) -> None:
    fake.motion.half_play = 10  # 2 µm of play in the mechanism
    settings = dataclasses.replace(QUICK, backlash_um=3.0)
    drive = open_sangaboard(fake.port, settings)
    try:
        drive.move_to(20.0)
        up = fake.motion.mechanism_steps() - fake.z_steps()
        drive.move_to(5.0)  # down: past by 3 µm, then up
        assert [c for c in fake.commands if c.startswith("mrz")][-2:] == ["mrz -180", "mrz 30"]
        assert fake.motion.mechanism_steps() - fake.z_steps() == up  # same side of the play
        assert drive.position_um() == 5.0
    finally:
        drive.close()


def test_each_firmware_moves_its_own_way(drive: SangaboardFocus, fake: FakeSangaboard) -> None:
    drive.move_by(5.0)
    drive.stop()
    drive.close()
    if fake.firmware == "0.5":  # blocks while it moves; no stop, moving? or blocking_moves
        assert not any(c.split(" ")[0] in ("stop", "moving?", "blocking_moves")
                       for c in fake.commands)
        assert fake.commands[-1] == "release"
    else:  # non-blocking while focuslock drives it, blocking again for the OpenFlexure software
        assert "blocking_moves false" in fake.commands and "moving?" in fake.commands
        assert fake.commands[-3:] == ["stop", "blocking_moves true", "release"]
        assert fake.blocking


def test_a_firmware_it_does_not_know_is_not_driven(fake: FakeSangaboard) -> None:
    fake.faults.garbled = ["Sangaboard Firmware v0.4"]
    with pytest.raises(BadReply, match=r"not v0\.5 or v1\.0"):
        open_sangaboard(fake.port, QUICK)


def break_position_reply(fake: FakeSangaboard) -> None:
    fake.faults.garbled = ["0 0 1x2"]


def drop_position_reply(fake: FakeSangaboard) -> None:
    fake.faults.dropped = 1


def late_replies(fake: FakeSangaboard) -> None:
    fake.faults.reply_delay_s = 2 * QUICK.reply_timeout_s


@pytest.mark.parametrize(("breakage", "fault", "says"), [
    (break_position_reply, BadReply, "'p\\?' got '0 0 1x2', not a reply it gives"),
    (drop_position_reply, NoReply, "no reply to 'p\\?' within 0.50 s"),
    (late_replies, NoReply, "no reply to 'p\\?'"),
    (FakeSangaboard.unplug, PortGone, "the port is gone during 'p\\?'"),
])
def test_a_reply_not_understood_moves_nothing_and_latches(
        drive: SangaboardFocus, fake: FakeSangaboard, breakage, fault, says) -> None:
    drive.move_by(1.0)
    moves = fake.moves
    breakage(fake)
    with pytest.raises(fault, match=says):
        drive.move_by(1.0)
    fake.faults = SangaboardFaults()  # the line is fine again; the drive still moves no more
    with pytest.raises(SangaboardError, match="no moves after an earlier fault"):
        drive.move_by(1.0)
    assert fake.moves == moves


def garble_move_reply(fake: FakeSangaboard) -> None:
    fake.faults.replies_to["mrz"] = "don"


def lose_the_move_reply(fake: FakeSangaboard) -> None:
    fake.faults.replies_to["mrz"] = None


def lose_steps(fake: FakeSangaboard) -> None:
    fake.faults.lost_steps = 3


@pytest.mark.parametrize(("breakage", "fault", "says"), [
    (garble_move_reply, BadReply, "'mrz 10' got 'don'"),
    (lose_the_move_reply, NoReply, "no reply to 'mrz 10'"),
    (lose_steps, ReadbackMismatch, "reads back 7; lost steps"),
])
def test_a_move_gone_wrong_is_the_last_move(drive: SangaboardFocus, fake: FakeSangaboard,
                                            breakage, fault, says) -> None:
    breakage(fake)
    with pytest.raises(fault, match=says):
        drive.move_by(1.0)
    assert fake.moves == 1
    with pytest.raises(SangaboardError, match="no moves after an earlier fault"):
        drive.move_to(0.0)
    assert fake.moves == 1


def test_steps_per_um_scales_moves(fake: FakeSangaboard) -> None:
    drive = open_sangaboard(fake.port, QUICK)
    try:
        drive.move_by(2.5)
        assert fake.z_steps() == round(2.5 * STEPS_PER_UM)
    finally:
        drive.close()
