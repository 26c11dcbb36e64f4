"""The main loop, the same on the board and in the simulator: read, answer, guard, repeat.

It is the only place that feeds the watchdog, so a stalled loop resets the board. An exception
from the logic puts the board into its safe state with an internal fault instead of crashing.
"""

from .commands import Board

TYPE_CHECKING = False  # mypy reads the imports below; MicroPython has no typing module
if TYPE_CHECKING:
    from .hal import Hardware

IDLE_POLL_MS = 20
MOVING_POLL_MS = 5


def run(hal: "Hardware", board: Board) -> None:
    while True:
        hal.feed_watchdog()
        data = hal.read(MOVING_POLL_MS if board.axis.moving else IDLE_POLL_MS)
        now = hal.now_us()
        try:
            replies = board.receive(data, now) if data else []
            replies += board.tick(now)
        except Exception as exc:  # noqa: BLE001 - any bug must end in the safe state
            hal.log("internal fault: " + repr(exc))
            board.internal_fault(repr(exc), now)
            replies = []
        hal.publish(now)  # before the replies: the side channel is never behind the protocol
        for reply in replies:
            hal.write(reply)
