"""Ctrl-C on ``focuslock focus``: a real SIGINT asks focus now to stop before its next move."""

import signal

import pytest

from controller.commands.loop import stop_on_ctrl_c
from controller.config import FocusSettings
from controller.loop import LoopState
from controller.runlog import StepRecord
from tests.loop.conftest import make_loop


def test_ctrl_c_ends_focus_now_between_moves(rig, capsys):
    records: list[StepRecord] = []

    def record_then_ctrl_c_after_the_first_move(record: StepRecord) -> None:
        records.append(record)
        if record.move_um:
            signal.raise_signal(signal.SIGINT)  # the user presses Ctrl-C mid-run

    loop = make_loop(rig)
    loop.record_sink = record_then_ctrl_c_after_the_first_move
    with stop_on_ctrl_c("focus now") as should_stop:
        report = loop.focus_now(FocusSettings(gain=0.3), should_stop)
    assert (report.state, report.reason, report.moves) == (LoopState.IDLE,
                                                           "stopped by request", 1)
    assert rig.drive.moves == 1 and rig.illuminator.pattern is None
    assert "focus now: stopping before the next move" in capsys.readouterr().err


def test_a_second_ctrl_c_interrupts_at_once_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), stop_on_ctrl_c("focus now") as should_stop:
        signal.raise_signal(signal.SIGINT)
        assert should_stop()
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
