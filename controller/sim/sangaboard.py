"""A fake OpenFlexure Sangaboard behind a real pty, whose z stepper moves the virtual focus.

It answers the commands the focus drive and the OpenFlexure ``sangaboard`` client send, in the
forms the firmware prints them (read from the v0.5 sketch and the v1.0 stage module; Arduino's
``println`` ends lines with ``\\r\\n``): v0.5 blocks while it moves and answers ``done`` at the
end, and has no ``stop`` or ``moving?``; v1.0 answers ``done.`` at once in non-blocking mode, or
``stopped`` at the end in blocking mode (its default), and has ``moving?`` and ``stop``.
Motion takes real time: ``step_delay_us`` per step, as the firmware's ``dt``.

The z motor couples to the focus through ``backlash_um`` of play (the mechanism lags a reversal),
so a driver that always approaches from one side lands where it asked. Knobs (``faults``) break
the link on purpose: garbled, dropped and late replies, steps lost in a move, and ``unplug``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from controller.sim.pty_line import PtyLine

Firmware = Literal["0.5", "1.0"]
VERSIONS: dict[Firmware, str] = {"0.5": "Sangaboard Firmware v0.5",
                                 "1.0": "Sangaboard Firmware v1.0.4"}
BOARDS: dict[Firmware, str] = {"0.5": "Sangaboard v0.3", "1.0": "Sangaboard v0.5"}


@dataclass
class SangaboardFaults:
    """What the fake does wrong next (each garbled or dropped reply is used up once)."""

    garbled: list[str] = field(default_factory=list)  # the next replies, replaced by these
    dropped: int = 0  # this many next replies are never sent
    reply_delay_s: float = 0.0  # every reply comes this late
    lost_steps: int = 0  # the next move ends this many steps short
    # the replies to commands of this name (their first word, e.g. "mrz"), replaced by this
    # text, or never sent (None)
    replies_to: dict[str, str | None] = field(default_factory=dict)


class ZMotion:
    """The z motor: where it is at any moment of a move, and the focus mechanism behind it."""

    def __init__(self, steps: int, backlash_steps: float) -> None:
        self.start = self.target = steps
        self.t0 = self.t1 = 0.0
        self.half_play = backlash_steps / 2
        self.mechanism = float(steps)
        self.lock = threading.Lock()

    def steps(self, now: float) -> int:
        if now >= self.t1:
            return self.target
        fraction = (now - self.t0) / (self.t1 - self.t0)
        return self.start + int((self.target - self.start) * max(0.0, fraction))

    def moving(self, now: float) -> bool:
        return now < self.t1

    def begin(self, steps: int, duration_s: float) -> None:
        with self.lock:
            now = time.monotonic()
            self._follow(now)
            self.start = self.steps(now)
            self.target = self.start + steps
            self.t0, self.t1 = now, now + duration_s

    def halt(self) -> None:
        with self.lock:
            now = time.monotonic()
            self._follow(now)
            self.start = self.target = self.steps(now)
            self.t1 = now

    def mechanism_steps(self) -> float:
        """Where the focus is: the motor within the play (moves are monotonic, so following
        the motor's present position is enough)."""
        with self.lock:
            self._follow(time.monotonic())
            return self.mechanism

    def _follow(self, now: float) -> None:
        motor = self.steps(now)
        self.mechanism = min(max(self.mechanism, motor - self.half_play), motor + self.half_play)


class FakeSangaboard:
    """The fake board on a pty: ``port`` is the path a client opens, like /dev/ttyACM0."""

    def __init__(self, firmware: Firmware = "1.0", *, z_steps: int = 0,
                 step_delay_us: int = 1000, backlash_steps: float = 0.0) -> None:
        self.firmware = firmware
        self.step_delay_us = step_delay_us
        self.motion = ZMotion(z_steps, backlash_steps)
        self.xy = (0, 0)  # never moved by the focus drive
        self.blocking = True  # v1.0's default (its EEPROM's, as shipped)
        self.faults = SangaboardFaults()
        self.commands: list[str] = []
        self.moves = 0  # mrz commands executed
        self._notify_on_stop = False
        self._answering = ""  # the name of the command being answered
        self._line = PtyLine("fake-sangaboard", self._handle, on_idle=self._report_stop,
                             poll_s=0.005)
        self.port = self._line.port

    def start(self) -> FakeSangaboard:
        self._line.start()
        return self

    def __enter__(self) -> FakeSangaboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def z_steps(self) -> int:
        return self.motion.steps(time.monotonic())

    def unplug(self) -> None:
        """Pull the cable: the pty goes, and the host's next read or write fails."""
        self._line.unplug()

    def close(self) -> None:
        self.unplug()

    # -- the firmware --------------------------------------------------------------------------

    def _report_stop(self) -> None:
        """A blocking move answers when the motor stops."""
        if self._notify_on_stop and not self.motion.moving(time.monotonic()):
            self._notify_on_stop = False
            self._answering = "mrz"
            self._reply("stopped")

    def _handle(self, command: str) -> None:
        self.commands.append(command)
        name, _, argument = command.partition(" ")
        self._answering = name
        v10 = self.firmware == "1.0"
        if name == "mrz" and argument.lstrip("-").isdigit():
            self._move(int(argument))
        elif command.startswith("p?"):
            self._reply(f"{self.xy[0]} {self.xy[1]} {self.z_steps()}")
        elif command.startswith("version"):
            self._reply(VERSIONS[self.firmware])
        elif command.startswith("board"):
            self._reply(BOARDS[self.firmware])
        elif command.startswith("list_modules"):
            self._reply("Stage: default\r\n--END--" if v10 else "--END--")
        elif command.startswith("dt?"):
            self._reply(f"minimum step delay {self.step_delay_us}")
        elif command.startswith("ramp_time?"):
            self._reply("ramp_time 0" if v10 else "ramp time 0")
        elif command.startswith("release"):
            self._reply("done" if v10 else "motors released")
        elif v10 and name == "blocking_moves" and argument in ("true", "false", "?"):
            self._blocking_moves(argument)
        elif v10 and command.startswith("moving?"):
            self._reply("true" if self.motion.moving(time.monotonic()) else "false")
        elif v10 and command.startswith("stop"):
            self.motion.halt()
            self._notify_on_stop = False
            self._reply("Move aborted")
        elif v10:
            self._reply(f"Command not recognised: '{command}', "
                        "Type 'help' for a list of commands.")
        else:
            self._reply("Type 'help' for a list of commands.")

    def _blocking_moves(self, argument: str) -> None:
        if argument == "?":
            self._reply(f"blocking_moves {'true' if self.blocking else 'false'}")
        else:
            self.blocking = argument == "true"
            self._reply("done.")

    def _move(self, steps: int) -> None:
        self.moves += 1
        lost, self.faults.lost_steps = self.faults.lost_steps, 0
        steps -= lost if steps > 0 else -lost
        duration = abs(steps) * self.step_delay_us / 1e6
        self.motion.begin(steps, duration)
        if self.firmware == "0.5":  # the sketch steps the motor inside the command: deaf
            self._line.wait(duration)
            self._reply("done")
        elif self.blocking:
            self._notify_on_stop = True
        else:
            self._reply("done.")

    def _reply(self, text: str) -> None:
        faults = self.faults
        if self._answering in faults.replies_to:
            replacement = faults.replies_to[self._answering]
            if replacement is None:
                return
            text = replacement
        if faults.dropped:
            faults.dropped -= 1
            return
        if faults.garbled:
            text = faults.garbled.pop(0)
        if faults.reply_delay_s:
            self._line.wait(faults.reply_delay_s)
        self._line.write(text.encode("latin-1") + b"\r\n")
