"""Focus board firmware entry point: pick the hardware layer, boot safe, run the loop.

On the RP2040 this runs at power-up. Under the MicroPython unix port it is the simulator:
``micropython main.py sim.json`` with the simulated board's settings in the JSON file.
"""

import sys

from focusboard import settings
from focusboard.commands import Board
from focusboard.config import MotionConfig
from focusboard.runner import run


def main() -> None:
    if sys.platform == "rp2":
        from focusboard import hal_rp2

        if hal_rp2.maintenance_requested():
            return  # the REPL stays available for mpremote
        board_settings = settings.merged(settings.REFERENCE, hal_rp2.load_overrides())
        hal = hal_rp2.Rp2Hardware(board_settings)
    else:
        import json

        from focusboard import hal_sim

        with open(sys.argv[1]) as f:
            board_settings = settings.merged(settings.REFERENCE, json.loads(f.read()))
        hal = hal_sim.SimHardware(board_settings)
    board = Board(hal, MotionConfig.from_dict(board_settings["motion"]))
    try:
        run(hal, board)
    except EOFError:
        pass  # the simulator's host hung up


main()
