"""``focuslock board`` against the simulated board: the commands a person types at the box."""

import pytest

from controller.cli import main
from controller.sim.board import SimBoardSettings, SimulatedBoard

pytestmark = pytest.mark.firmware


@pytest.fixture
def sim(tmp_path):
    with SimulatedBoard(tmp_path, SimBoardSettings(motor_steps=500)) as board:
        yield board


def test_reference_move_and_report(sim, capsys):
    port = ["--port", sim.port, "--steps-per-um", "10"]
    assert main(["board", "info", *port]) == 0
    out = capsys.readouterr().out
    assert "(simulated)" in out and "protocol 1" in out and "position: unknown" in out
    assert main(["board", "move", "--by", "5", *port]) == 2  # refused: position unknown
    assert "position unknown" in capsys.readouterr().err
    assert main(["board", "set-position", "0", *port]) == 0
    assert main(["board", "move", "--by", "2.5", *port]) == 0
    assert "at 2.500 µm" in capsys.readouterr().out
    assert sim.motor_steps() == 525
    assert main(["board", "move", "--to", "5000", *port]) == 2
    assert "outside travel limits" in capsys.readouterr().err
    assert sim.motor_steps() == 525


def test_leds_by_index_are_lit_while_held_and_refused_when_absent(sim, capsys):
    port = ["--port", sim.port]
    assert main(["board", "leds", "--index", "3:40", "9", "--hold", "0.05", *port]) == 0
    assert "2 LEDs lit" in capsys.readouterr().out
    assert sim.lit_leds() == {}  # released when the command ended
    assert main(["board", "leds", "--index", "64", *port]) == 2
    assert "LED 64 does not exist" in capsys.readouterr().err


def test_a_missing_board_is_one_clear_line(tmp_path, capsys):
    assert main(["board", "status", "--port", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("focuslock board: error: cannot open the focus board") and (
        err.count("\n") == 1)
