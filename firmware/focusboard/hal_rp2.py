"""The RP2040 hardware layer: step/dir through PIO, endstops on pin interrupts, WS2812 (sent
green, red, blue, as the chip takes them) or PWM LEDs, the USB serial line, the unique id and
the hardware watchdog.

Steps come from a PIO state machine that takes (count, period) chunks; a 1 kHz timer turns the
ramp into one chunk per millisecond, so the main loop never times a step itself. At most two
chunks are pending (one running, one queued), so a stop takes effect within ~2 ms and every
pushed step is a step emitted: the count stays exact. An endstop interrupt halts the state
machine at once; the step count after such a halt may be off by the chunk that was cut, which
never matters because the logic then forgets the position (or sets it, when homing).
Not exercised by the test suite beyond its step chunking and WS2812 bytes (no RP2040 here);
hal_sim is its tested twin.
"""

import json
import os
import sys
from time import ticks_diff, ticks_us

import machine
import micropython
import rp2

from . import protocol
from .clock import Clock
from .leds import colour_settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .motion import Ramp

SM_FREQ = 1000000  # PIO clock: one cycle per µs
STEP_OVERHEAD_CYCLES = 12  # cycles of the PIO loop besides the delay (see _step_program)
CHUNK_US = 1000
WATCHDOG_MS = 1000
WS2812_TIMING_NS = (400, 850, 800, 450)  # high, low of a 0 bit; high, low of a 1 bit (800 kHz)
SETTINGS_FILE = "board.json"
MAINTENANCE_PIN = 22  # tie to GND at power-up to keep the REPL (for flashing) instead


@rp2.asm_pio(set_init=rp2.PIO.OUT_LOW, out_shiftdir=rp2.PIO.SHIFT_RIGHT)
def _step_program() -> None:
    # Each word: low 16 bits = steps - 1, high 16 bits = delay cycles per step.
    wrap_target()  # noqa: F821 - names of the PIO assembler
    pull(block)  # noqa: F821
    out(x, 16)  # noqa: F821
    mov(isr, osr)  # noqa: F821
    label("step")  # noqa: F821
    set(pins, 1)[7]  # noqa: F821
    set(pins, 0)  # noqa: F821
    mov(y, isr)  # noqa: F821
    label("wait")  # noqa: F821
    jmp(y_dec, "wait")  # noqa: F821
    jmp(x_dec, "step")  # noqa: F821
    wrap()  # noqa: F821


def load_overrides() -> dict:
    """The board's own ``board.json`` (pins, LEDs, limits), if one was copied beside main.py."""
    try:
        with open(SETTINGS_FILE) as f:
            return json.loads(f.read())
    except OSError:
        return {}


def maintenance_requested() -> bool:
    return machine.Pin(MAINTENANCE_PIN, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0


class Stepper:
    def __init__(self, settings: dict, clock: Clock) -> None:
        pins = settings["pins"]
        self.clock = clock
        self._enable_low = settings["enable_active_low"]
        self._dir_invert = settings.get("dir_invert", False)
        self._enable = machine.Pin(pins["enable"], machine.Pin.OUT)
        self._dir = machine.Pin(pins["dir"], machine.Pin.OUT)
        self._sm = rp2.StateMachine(0, _step_program, freq=SM_FREQ,
                                    set_base=machine.Pin(pins["step"]))
        self._sm.active(1)
        self.enabled = False
        self.halted_by_endstop = False
        self._ramp: "Ramp | None" = None
        self._start_ticks = 0  # raw ticks: the timer callback must not touch the shared Clock
        self._pushed = 0
        self._halt_min = False
        self._halt_max = False
        self.enable(False)
        self._timer = machine.Timer(mode=machine.Timer.PERIODIC, freq=1000000 // CHUNK_US,
                                    callback=self._feed)

    def enable(self, on: bool) -> None:
        if not on:
            self.halt(self.clock.now_us())
        self._enable.value((not on) if self._enable_low else on)
        self.enabled = on

    def run(self, ramp: "Ramp", direction: int, now_us: int, halt_min: bool,
            halt_max: bool) -> None:
        state = machine.disable_irq()
        self._ramp = ramp
        self._start_ticks = ticks_us()
        self._pushed = 0
        self.halted_by_endstop = False
        self._halt_min = halt_min
        self._halt_max = halt_max
        machine.enable_irq(state)
        self._dir.value((direction > 0) != self._dir_invert)

    def steps_done(self, now_us: int) -> int:
        return self._pushed

    def done(self, now_us: int) -> bool:
        ramp = self._ramp
        if ramp is None:
            return True
        if self._pushed >= ramp.distance and self._sm.tx_fifo() == 0:
            self._ramp = None
            return True
        return False

    def halt(self, now_us: int) -> None:
        self._ramp = None
        self._sm.active(0)
        self._sm.restart()
        self._sm.active(1)

    def endstop_hit(self, which: str) -> None:
        """Called from the endstop interrupt: stop stepping if the switch is in the way."""
        if self._ramp is None:
            return
        if (which == "min" and self._halt_min) or (which == "max" and self._halt_max):
            self.halted_by_endstop = True
            self._sm.active(0)
            self._sm.restart()
            self._sm.active(1)
            self._ramp = None

    def _feed(self, timer: object) -> None:
        """Timer callback: queue the next millisecond of the ramp as one PIO chunk."""
        ramp = self._ramp
        if ramp is None or self._sm.tx_fifo() > 0:
            return
        t = (ticks_diff(ticks_us(), self._start_ticks) + CHUNK_US) / 1e6
        count = ramp.steps_at(t) - self._pushed
        if count <= 0:
            return
        count = min(count, 0x10000)
        delay = max(0, CHUNK_US * SM_FREQ // 1000000 // count - STEP_OVERHEAD_CYCLES)
        self._sm.put((min(delay, 0xFFFF) << 16) | (count - 1))
        self._pushed += count


def ws2812_frame(colours: dict, count: int) -> bytearray:
    """The bytes a chain of ``count`` WS2812s takes for ``colours`` (index -> (r, g, b)): three
    per LED in the order the chip shifts them in, green, red, blue (dark LEDs all zero)."""
    frame = bytearray(3 * count)
    for index, (red, green, blue) in colours.items():
        frame[3 * index] = green
        frame[3 * index + 1] = red
        frame[3 * index + 2] = blue
    return frame


class LedDriver:
    """A WS2812 matrix on one pin (each LED red, green and blue), or one PWM pin per LED."""

    def __init__(self, settings: dict) -> None:
        self.positions_dmm = [tuple(p) for p in settings["leds"]]
        self.count = len(self.positions_dmm)
        self.rgb, self.mono_colour = colour_settings(settings)
        if self.rgb:
            self._pin = machine.Pin(settings["pins"]["leds"], machine.Pin.OUT)
            self._pwm = []
        else:
            self._pwm = [machine.PWM(machine.Pin(p)) for p in settings["led_pins"]]
            for pwm in self._pwm:
                pwm.freq(20000)

    def write(self, colours: dict, in_colour: bool) -> None:
        if self.rgb:
            machine.bitstream(self._pin, 0, WS2812_TIMING_NS, ws2812_frame(colours, self.count))
        else:  # one colour per LED: the host sent a brightness, which SET_LEDS made (v, v, v)
            for i, pwm in enumerate(self._pwm):
                pwm.duty_u16(max(colours.get(i, (0, 0, 0))) * 257)


class Rp2Hardware:
    def __init__(self, settings: dict) -> None:
        micropython.kbd_intr(-1)  # packets contain 0x03; it must not interrupt the firmware
        self.clock = Clock()
        pins = settings["pins"]
        self.stepper = Stepper(settings, self.clock)
        self.leds = LedDriver(settings)
        self.board_id = machine.unique_id()
        self.boot_nonce = int.from_bytes(os.urandom(4), "little") or 1
        self.watchdog_reset = machine.reset_cause() == machine.WDT_RESET
        self.max_speed = settings["max_speed"]
        self.max_accel = settings["max_accel"]
        self.capabilities = (protocol.CAP_LED_MATRIX | protocol.CAP_LED_RGB if self.leds.rgb
                             else protocol.CAP_LED_PWM)
        active_low = settings["endstop_active_low"]
        self._endstops = []
        for name, cap in (("endstop_min", protocol.CAP_ENDSTOP_MIN),
                          ("endstop_max", protocol.CAP_ENDSTOP_MAX)):
            if pins.get(name) is None:
                self._endstops.append(None)
                continue
            pin = machine.Pin(pins[name], machine.Pin.IN, machine.Pin.PULL_UP)
            which = name[-3:]
            edge = machine.Pin.IRQ_FALLING if active_low else machine.Pin.IRQ_RISING
            pin.irq(trigger=edge, hard=True,
                    handler=lambda p, w=which: self.stepper.endstop_hit(w))
            self._endstops.append(pin)
            self.capabilities |= cap
        self._active_low = active_low
        self._poll = None
        self._wdt = machine.WDT(timeout=WATCHDOG_MS)

    def now_us(self) -> int:
        return self.clock.now_us()

    def endstops(self) -> tuple:
        return tuple(pin is not None and (pin.value() == 0) == self._active_low
                     for pin in self._endstops)

    def feed_watchdog(self) -> None:
        self._wdt.feed()

    def read(self, timeout_ms: int) -> bytes:
        import select

        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(sys.stdin, select.POLLIN)
        data = b""
        events = self._poll.poll(timeout_ms)
        while events and len(data) < 512:
            data += sys.stdin.buffer.read(1)
            events = self._poll.poll(0)
        return data

    def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)

    def log(self, text: str) -> None:
        """No console to write to: the USB line carries only packets."""

    def publish(self, now_us: int) -> None:
        """Nothing to publish: the real motor is its own witness."""
