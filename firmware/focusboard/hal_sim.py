"""The simulated hardware layer: a motor with endstops, LEDs, and the serial line on stdin/stdout.

Motion is modelled analytically from the ramp (position as a function of time), so a move costs
no CPU while it runs and the process sleeps in ``poll`` between commands. The motor's mechanical
position outlives the firmware process: it is kept in a small JSON state file that a restarted
firmware reads back (the motor does not move when the board reboots) and that the outside world
(tests, the digital twin) may read at any time. The file is replaced atomically.
"""

import json
import os
import select
import sys

from . import protocol
from .clock import Clock
from .leds import colour_settings

TYPE_CHECKING = False  # mypy reads the imports below; MicroPython has no typing module
if TYPE_CHECKING:
    from .motion import Ramp

PUBLISH_EVERY_US = 20000


class Motor:
    """The mechanism: where it really is, in steps from an arbitrary mechanical zero."""

    def __init__(self, steps: int, endstop_min: "int | None", endstop_max: "int | None") -> None:
        self.steps = steps
        self.endstop_min = endstop_min
        self.endstop_max = endstop_max

    def switches(self, steps: int) -> tuple:
        low = self.endstop_min is not None and steps <= self.endstop_min
        high = self.endstop_max is not None and steps >= self.endstop_max
        return low, high


class Stepper:
    """Runs one ramp at a time against the motor; an endstop in the direction of travel halts
    it at the step where the switch closes (as an interrupt on real hardware would)."""

    def __init__(self, motor: Motor, clock: Clock) -> None:
        self.motor = motor
        self.clock = clock
        self.enabled = False
        self.halted_by_endstop = False
        self._ramp: "Ramp | None" = None
        self._direction = 1
        self._start_us = 0
        self._halt_after: "int | None" = None
        self._done_steps = 0

    def enable(self, on: bool) -> None:
        if not on:
            self.halt(self.clock.now_us())
        self.enabled = on

    def run(self, ramp: "Ramp", direction: int, now_us: int, halt_min: bool,
            halt_max: bool) -> None:
        self._commit(now_us)
        self._done_steps = 0
        self.halted_by_endstop = False
        if not self.enabled:  # a disabled driver ignores step pulses
            return
        self._ramp = ramp
        self._direction = direction
        self._start_us = now_us
        self._halt_after = None
        m = self.motor
        if direction < 0 and halt_min and m.endstop_min is not None:
            self._halt_after = max(0, m.steps - m.endstop_min)
        if direction > 0 and halt_max and m.endstop_max is not None:
            self._halt_after = max(0, m.endstop_max - m.steps)

    def steps_done(self, now_us: int) -> int:
        if self._ramp is None:
            return self._done_steps
        steps = self._ramp.steps_at((now_us - self._start_us) / 1e6)
        if self._halt_after is not None and steps >= self._halt_after:
            return self._halt_after
        return steps

    def done(self, now_us: int) -> bool:
        if self._ramp is None:
            return True
        t = (now_us - self._start_us) / 1e6
        if self._halt_after is not None and self._ramp.steps_at(t) >= self._halt_after:
            self.halted_by_endstop = self._halt_after < self._ramp.distance
            self._commit(now_us)
            return True
        if t >= self._ramp.duration:
            self._commit(now_us)
            return True
        return False

    def halt(self, now_us: int) -> None:
        """Stop emitting steps at once (the motor stops where the last step put it)."""
        self._commit(now_us)

    @property
    def moving(self) -> bool:
        return self._ramp is not None

    def position(self, now_us: int) -> int:
        if self._ramp is None:
            return self.motor.steps
        return self.motor.steps + self._direction * self.steps_done(now_us)

    def _commit(self, now_us: int) -> None:
        """Fold the running ramp's progress into the motor and forget the ramp."""
        if self._ramp is not None:
            done = self.steps_done(now_us)
            self.motor.steps += self._direction * done
            self._done_steps = done
            self._ramp = None


class LedDriver:
    """A WS2812 matrix or PWM LEDs (``led_kind``): what they show is kept for the side
    channel."""

    def __init__(self, settings: dict) -> None:
        self.positions_dmm = [tuple(p) for p in settings["leds"]]
        self.count = len(self.positions_dmm)
        self.rgb, self.mono_colour = colour_settings(settings)
        self.colours: "dict[int, tuple[int, int, int]]" = {}
        self.in_colour = False

    def write(self, colours: dict, in_colour: bool) -> None:
        self.colours = dict(colours)
        self.in_colour = in_colour


class SimHardware:
    """Everything the firmware logic touches, simulated; ``settings`` as in settings.REFERENCE
    plus ``board_id`` (16 hex digits), ``state_file``, ``motor_steps`` and the endstops'
    mechanical positions ``endstop_min_steps`` / ``endstop_max_steps`` (None: no switch)."""

    def __init__(self, settings: dict) -> None:
        self.clock = Clock()
        self.state_file = settings.get("state_file")
        steps = settings.get("motor_steps", 0)
        state = self._read_state()
        if state is not None:
            steps = state["motor_steps"]
        low = settings.get("endstop_min_steps")
        high = settings.get("endstop_max_steps")
        self.motor = Motor(steps, low, high)
        self.stepper = Stepper(self.motor, self.clock)
        self.leds = LedDriver(settings)
        self.board_id = _unhex(settings.get("board_id", "53494d424f415244"))
        self.boot_nonce = int.from_bytes(os.urandom(4), "little") or 1
        self.watchdog_reset = False
        self.max_speed = settings["max_speed"]
        self.max_accel = settings["max_accel"]
        self.capabilities = protocol.CAP_SIMULATED | (
            protocol.CAP_LED_MATRIX | protocol.CAP_LED_RGB if self.leds.rgb
            else protocol.CAP_LED_PWM)
        if low is not None:
            self.capabilities |= protocol.CAP_ENDSTOP_MIN
        if high is not None:
            self.capabilities |= protocol.CAP_ENDSTOP_MAX
        self._poll: "select.poll | None" = None
        self._published: "dict | None" = None
        self._published_us = -PUBLISH_EVERY_US

    def now_us(self) -> int:
        return self.clock.now_us()

    def endstops(self) -> tuple:
        return self.motor.switches(self.stepper.position(self.now_us()))

    def feed_watchdog(self) -> None:
        """Nothing to feed: a stalled simulator is seen by the host as a silent board."""

    def read(self, timeout_ms: int) -> bytes:
        """Bytes from the host, waiting at most ``timeout_ms``; raise EOFError when it hung up."""
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(sys.stdin.buffer, select.POLLIN)
        data = b""
        events = self._poll.poll(timeout_ms)
        while events and len(data) < 512:
            byte = sys.stdin.buffer.read(1)
            if not byte:
                raise EOFError("host closed the line")
            data += byte
            events = self._poll.poll(0)
        return data

    def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)
        if hasattr(sys.stdout.buffer, "flush"):
            sys.stdout.buffer.flush()

    def log(self, text: str) -> None:
        sys.stderr.write(text + "\n")

    def publish(self, now_us: int) -> None:
        """Write the motor's true position and the lit LEDs (index, red, green, blue; whether
        the host chose those colours) to the state file when they change
        (during a move at most every PUBLISH_EVERY_US, so motion costs little CPU; at once when
        a move starts or ends)."""
        if self.state_file is None:
            return
        state = {
            "boot_nonce": self.boot_nonce,
            "motor_steps": self.stepper.position(now_us),
            "motor_enabled": self.stepper.enabled,
            "moving": self.stepper.moving,
            "leds": sorted([i, r, g, b] for i, (r, g, b) in self.leds.colours.items()),
            "leds_in_colour": self.leds.in_colour,
        }
        last = self._published
        if state == last:
            return
        if (last is not None and now_us - self._published_us < PUBLISH_EVERY_US
                and state["leds"] == last["leds"]
                and state["leds_in_colour"] == last["leds_in_colour"]
                and state["motor_enabled"] == last["motor_enabled"]
                and state["moving"] == last["moving"]):
            return  # only the position changed, and it was published moments ago
        temporary = self.state_file + ".tmp"
        with open(temporary, "w") as f:
            f.write(json.dumps(state))
        os.rename(temporary, self.state_file)
        self._published = state
        self._published_us = now_us

    def _read_state(self) -> "dict | None":
        if self.state_file is None:
            return None
        try:
            with open(self.state_file) as f:
                return json.loads(f.read())
        except OSError:
            return None


def _unhex(text: str) -> bytes:
    return bytes(int(text[i:i + 2], 16) for i in range(0, len(text), 2))
