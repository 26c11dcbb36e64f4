"""``focuslock board``: talk to the focus board by hand (identify, status, move, LEDs, faults).

Every subcommand connects, does its one thing and releases the board (motor off, LEDs off), so
``leds`` holds its pattern until Ctrl-C or ``--hold`` seconds. ``board sim`` runs the real
firmware under MicroPython behind a pty, to try all of this without a board.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from controller.commands.arguments import finite_float
from controller.errors import FocuslockError
from controller.optics import WS2812_BLUE_UM, WS2812_GREEN_UM, WS2812_RED_UM, preset

if TYPE_CHECKING:
    from controller.hardware.board import BoardStatus, FocusBoard

DEFAULT_PORT = "/dev/focusboard"
MAX_HOLD_S = 86400.0  # a day; 0 holds until Ctrl-C
HOLD_POLL_S = 0.2  # how often a hold asks the board whether it faulted


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0 (a motor scale: 0 means nothing, not a default)."""
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def hold_seconds(text: str) -> float:
    """An argparse type: seconds to hold the LEDs, 0 (until Ctrl-C) .. MAX_HOLD_S."""
    value = finite_float(text)
    if not 0 <= value <= MAX_HOLD_S:
        raise argparse.ArgumentTypeError(f"{text!r} must be in 0..{MAX_HOLD_S:g} s "
                                         "(0: until Ctrl-C)")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    board = subparsers.add_parser(
        "board", help="the focus board: info, status, moves, LEDs, faults, a simulated board",
        description="Talk to the focus board over its framed serial protocol "
                    "(firmware/PROTOCOL.md). Positions are in µm, positive away from the sample.")
    actions = board.add_subparsers(dest="board_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--config", help="TOML config whose [board] table to use")
        parser.add_argument("--port", help=f"serial device (default: {DEFAULT_PORT})")
        parser.add_argument("--serial-number", help="find the board by its USB serial number")
        parser.add_argument("--steps-per-um", type=positive_number, help="motor steps per µm")
        return parser

    action("info", "identity, versions, capabilities, LEDs, state").set_defaults(func=run_info)
    action("status", "position, motion, endstops, fault, LEDs").set_defaults(func=run_status)
    move = action("move", "move the focus and wait until it settled")
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--by", type=finite_float, metavar="UM",
                       help="relative move (a negative one as --by=-5)")
    where.add_argument("--to", type=finite_float, metavar="UM", help="absolute move")
    move.set_defaults(func=run_move)
    action("home", "seek the min endstop; the position becomes known").set_defaults(
        func=run_home)
    set_position = action("set-position", "declare the current position (re-reference)")
    set_position.add_argument("z_um", type=finite_float, metavar="UM")
    set_position.set_defaults(func=run_set_position)
    leds = action("leds", "light LEDs by pattern or index and hold them")
    what = leds.add_mutually_exclusive_group(required=True)
    what.add_argument("--pattern", help="a pattern of the optics preset (e.g. autofocus)")
    what.add_argument("--index", nargs="+", metavar="I[:LEVEL]",
                      help="LED indices, each with a brightness 0..255 (default 255)")
    leds.add_argument("--preset", default="pi-hq",
                      help="optics preset whose --pattern to light, e.g. pi-hq-colour's "
                           "two-colour parallax (default: %(default)s)")
    leds.add_argument("--wavelength", type=positive_number, metavar="UM",
                      help=f"light the --index LEDs on their emitter of this colour (µm: "
                           f"{WS2812_RED_UM} red, {WS2812_GREEN_UM} green, {WS2812_BLUE_UM} "
                           f"blue); without it they shine in the board's own colour")
    leds.add_argument("--hold", type=hold_seconds, default=0.0,
                      help="seconds to keep them lit, while the board is asked whether it "
                           "faulted (default: until Ctrl-C)")
    leds.set_defaults(func=run_leds)
    action("clear-fault", "clear a latched fault (after fixing its cause)").set_defaults(
        func=run_clear_fault)
    sim = actions.add_parser(
        "sim", help="run the real firmware under MicroPython behind a pty until Ctrl-C",
        description="Start the simulated board and print its port, for --port elsewhere.")
    sim.add_argument("--workdir", help="where the port symlink and state file go "
                                       "(default: a new temporary directory)")
    sim.set_defaults(func=run_sim)


def board_from(args: argparse.Namespace) -> FocusBoard:
    """The board the config's [board] table names, with the command line on top (unconnected)."""
    from dataclasses import replace

    from controller.config import BoardSettings, load_config
    from controller.hardware.box import focus_board

    board = load_config(args.config).board if args.config else BoardSettings()
    given = {"port": args.port, "serial_number": args.serial_number,
             "steps_per_um": args.steps_per_um}
    return focus_board(replace(board, **{k: v for k, v in given.items() if v is not None}))


def _connect(args: argparse.Namespace) -> FocusBoard:
    return board_from(args).connect()


def _in_colour(status: BoardStatus) -> str:
    """Whether the lit LEDs show colours the host chose, for a line about them."""
    return " in colour" if status.leds_in_colour else ""


def _print_status(board: FocusBoard) -> None:
    status = board.status()
    spu = board.settings.steps_per_um
    where = (f"{status.position_steps / spu:.3f} µm ({status.position_steps} steps)"
             if status.position_known else f"unknown ({status.position_steps} steps counted)")
    print(f"position: {where}")
    print(f"moving: {status.moving}  motor enabled: {status.motor_enabled}")
    print(f"endstops: min {status.endstop_min}, max {status.endstop_max}")
    print(f"fault: {status.fault_text if status.fault else 'none'}")
    print(f"LEDs lit: {status.lit_led_count}{_in_colour(status)} "
          f"(pattern tag {status.pattern_tag})")
    print(f"packets dropped as corrupt: {status.rx_errors}")


def run_info(args: argparse.Namespace) -> int:
    with _connect(args) as board:
        info = board.info
        print(f"board id: {info.board_id}{'  (simulated)' if info.simulated else ''}")
        print(f"firmware {info.firmware_version}, protocol {info.protocol_version}")
        print(f"min endstop: {info.has_min_endstop}; LEDs: {info.led_count}")
        print(f"travel: {board.travel_um[0]} .. {board.travel_um[1]} µm")
        _print_status(board)
    return 0


def run_status(args: argparse.Namespace) -> int:
    with _connect(args) as board:
        _print_status(board)
    return 0


def run_move(args: argparse.Namespace) -> int:
    from controller.move_guard import MoveGuard

    with _connect(args) as board:
        # A person's move passes the guard every planned move passes (here the drive's travel),
        # and is refused, not shortened, where it would leave it.
        guard = MoveGuard.for_drive(board.travel_um)
        if args.by is not None:
            guard.check_target(board.position_um() + args.by, "the end of move --by")
            z = board.move_by(args.by)
        else:
            z = board.move_to(guard.check_target(args.to, "move --to"))
        print(f"at {z:.3f} µm")
    return 0


def run_home(args: argparse.Namespace) -> int:
    with _connect(args) as board:
        print(f"homed: at {board.home():.3f} µm")
    return 0


def run_set_position(args: argparse.Namespace) -> int:
    with _connect(args) as board:
        board.set_position_um(args.z_um)
        print(f"position set to {board.position_um():.3f} µm")
    return 0


def _parse_levels(items: list[str]) -> list[tuple[int, int]]:
    levels = []
    for item in items:
        index, _, level = item.partition(":")
        try:
            levels.append((int(index), int(level) if level else 255))
        except ValueError:
            raise FocuslockError(f"--index {item!r}: expected INDEX or INDEX:LEVEL") from None
        if not 0 <= levels[-1][1] <= 255:
            raise FocuslockError(f"--index {item!r}: brightness must be 0..255")
    return levels


def run_leds(args: argparse.Namespace) -> int:
    if args.pattern and args.wavelength is not None:
        raise FocuslockError("--wavelength colours the --index LEDs; a pattern's LEDs carry "
                             "their own colours")
    with _connect(args) as board:
        if args.pattern:
            board.show(preset(args.preset).pattern(args.pattern))
        else:
            board.set_leds(_parse_levels(args.index), args.wavelength)
        status = board.status()
        print(f"{status.lit_led_count} LEDs lit{_in_colour(status)}; "
              + (f"holding {args.hold} s" if args.hold else "Ctrl-C to turn them off"))
        with contextlib.suppress(KeyboardInterrupt):
            hold_lit(board, args.hold)
    return 0


def hold_lit(board: FocusBoard, seconds: float) -> None:
    """Keep the LEDs lit for ``seconds`` (0: until Ctrl-C), asking the board meanwhile: a board
    that faulted has darkened its LEDs itself, so the hold ends with the fault named."""
    from controller.hardware.board_link import BoardFault

    end = time.monotonic() + seconds if seconds else math.inf
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(HOLD_POLL_S, left))
        status = board.status()
        if status.fault:
            raise BoardFault(f"focus board fault while the LEDs were held: {status.fault_text}; "
                             "the board turned them off")


def _wait_for_ctrl_c() -> None:
    while True:
        time.sleep(1.0)


def run_clear_fault(args: argparse.Namespace) -> int:
    with _connect(args) as board:
        board.clear_fault()
        print("fault cleared")
    return 0


def run_sim(args: argparse.Namespace) -> int:
    from controller.sim.board import SimulatedBoard, temporary_workdir

    # Without --workdir the board's folder is temporary: removed at the end, or at the next
    # start of a simulated board should this process be killed.
    workdir = Path(args.workdir) if args.workdir else temporary_workdir()
    try:
        with SimulatedBoard(workdir) as sim:
            print(f"simulated focus board on {sim.port} (motor state: {sim.state_file}); "
                  f"Ctrl-C ends", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                _wait_for_ctrl_c()
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0
