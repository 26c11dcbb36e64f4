"""``focuslock board`` against the simulated board: the commands a person types at the box."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from controller.cli import main
from controller.optics import preset
from controller.sim.board import LitLeds, SimBoardSettings, SimulatedBoard

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
    assert "move --to: must be within the drive travel" in capsys.readouterr().err
    assert sim.motor_steps() == 525


def test_leds_by_index_are_lit_while_held_and_refused_when_absent(sim, capsys):
    port = ["--port", sim.port]
    assert main(["board", "leds", "--index", "3:40", "9", "--hold", "0.05", *port]) == 0
    assert "2 LEDs lit" in capsys.readouterr().out
    assert sim.lit_leds() == LitLeds()  # released when the command ended
    assert main(["board", "leds", "--index", "64", *port]) == 2
    assert "LED 64 does not exist" in capsys.readouterr().err


def held_lit(sim, argv, expected, capsys):
    """Run ``focuslock board leds ARGV`` (holding a second) in a thread, and see in the board's
    side channel that it lit ``expected`` meanwhile; its exit status and output."""
    outcome = []
    command = threading.Thread(target=lambda: outcome.append(main(
        ["board", "leds", *argv, "--hold", "1", "--port", sim.port])))
    command.start()
    deadline = time.monotonic() + 5
    while sim.lit_leds() != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = sim.lit_leds()
    command.join(timeout=10)
    assert seen == expected
    assert sim.lit_leds() == LitLeds()  # released when the command ended
    return outcome, capsys.readouterr().out


def test_a_presets_two_colour_pattern_is_lit_in_its_colours(sim, capsys):
    system = preset("pi-hq-colour")
    red, blue = (system.leds.nearest(led.na_x, led.na_y) for led in system.pattern("parallax").leds)
    outcome, out = held_lit(sim, ["--preset", "pi-hq-colour", "--pattern", "parallax"],
                            LitLeds({red: (255, 0, 0), blue: (0, 0, 255)}, in_colour=True), capsys)
    assert outcome == [0] and "2 LEDs lit in colour; holding 1.0 s" in out


def test_leds_by_index_are_lit_in_a_colour(sim, capsys):
    outcome, out = held_lit(sim, ["--index", "3:40", "9", "--wavelength", "0.465"],
                            LitLeds({3: (0, 0, 40), 9: (0, 0, 255)}, in_colour=True), capsys)
    assert outcome == [0] and "2 LEDs lit in colour; holding 1.0 s" in out


def test_status_says_whether_the_lit_leds_are_in_colour(sim, capsys):
    port = ["--port", sim.port]
    assert main(["board", "status", *port]) == 0
    assert "LEDs lit: 0 (pattern tag 0)" in capsys.readouterr().out


def test_a_missing_board_is_one_clear_line(tmp_path, capsys):
    assert main(["board", "status", "--port", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("focuslock board: error: cannot open the focus board") and (
        err.count("\n") == 1)


def run_cli(argv, capsys):
    """``focuslock ARGV``'s exit status and stderr, argparse's own refusals included."""
    code: int | str | None
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses an argument by exiting 2
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["move", "--to", "1e9"],
     r"move --to: must be within the drive travel \[-1000.0, 1000.0\] µm, got 1e\+09"),
    (["move", "--by", "1500"],
     r"the end of move --by: must be within the drive travel \[-1000.0, 1000.0\] µm, got 1500"),
    (["move", "--by", "nan"], "argument --by: must be a finite number, got 'nan'"),
    (["move", "--by", "inf"], "argument --by: must be a finite number, got 'inf'"),
    (["move", "--by=-1e400"], "argument --by: must be a finite number, got '-1e400'"),
    (["move", "--by", "ten"], "argument --by: not a number: 'ten'"),
    (["set-position", "nan"], "argument UM: must be a finite number, got 'nan'"),
    # the config's range rule for steps per µm speaks first (the driver's own check of what the
    # protocol carries is in tests/hardware/test_board_refusals.py)
    (["move", "--by", "1", "--steps-per-um", "1e30"],
     r"board.steps_per_um: must be in \[0.1, 1000\] steps/µm, got 1e\+30"),
    (["move", "--by", "1", "--steps-per-um", "0"], "argument --steps-per-um: '0' must be > 0"),
    (["leds", "--index", "3", "--hold", "-1"], r"argument --hold: '-1' must be in 0..86400 s"),
    (["leds", "--index", "3", "--hold", "nan"],
     "argument --hold: must be a finite number, got 'nan'"),
    (["leds", "--index", "70000"], r"LED 70000 does not exist \(the board has 64\)"),
    (["leds", "--index", "3", "--wavelength", "nan"],
     "argument --wavelength: must be a finite number, got 'nan'"),
    (["leds", "--index", "3", "--wavelength", "0"], "argument --wavelength: '0' must be > 0"),
    (["leds", "--index", "3", "--wavelength", "0.58"],
     r"LEDs by index: no LED emitter shines at 0\.58 µm; the board's LEDs have red 0\.625"),
    (["leds", "--preset", "pi-hq-colour", "--pattern", "parallax", "--wavelength", "0.625"],
     "--wavelength colours the --index LEDs; a pattern's LEDs carry their own colours"),
    (["leds", "--preset", "pi-hq-colour", "--pattern", "rainbow"],
     "preset 'pi-hq-colour': unknown pattern 'rainbow'; known: .*'parallax'"),
])
def test_bad_numbers_exit_2_with_one_line_naming_them_and_nothing_moves(sim, capsys, argv,
                                                                        message):
    port = ["--port", sim.port]
    assert main(["board", "set-position", "0", *port]) == 0
    capsys.readouterr()
    code, err = run_cli(["board", *argv, *port], capsys)
    assert code == 2
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and re.search(message, errors[0]), err
    assert sim.motor_steps() == 500 and sim.lit_leds() == LitLeds()


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_board_sim_serves_until_ctrl_c_and_leaves_no_folder_behind(tmp_path):
    """``focuslock board sim`` (a board to try the commands on): its temporary folder goes when it
    ends, so repeated tries do not pile up in the temporary directory."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    # Ctrl-C as a terminal gives it: a suite started in the background (``./dev test &``) has
    # SIGINT ignored, which a child inherits, and Python then installs no handler for it
    with subprocess.Popen([sys.executable, "-m", "controller.cli", "board", "sim"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, preexec_fn=default_sigint) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            line = process.stdout.readline()
            assert line.startswith("simulated focus board on "), line + process.stderr.read()
            assert main(["board", "info", "--port", line.split()[4]]) == 0
            assert list(tmp_path.glob("focuslock-board-*"))
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0, process.stderr.read()
        finally:
            process.kill()
    assert not list(tmp_path.glob("focuslock-board-*"))
