"""The RP2040 layer's step chunking and LED bytes, checked on CPython against a stand-in for the
chip.

There is no RP2040 here, so `machine`, `rp2` and `micropython` are small stand-ins that record
what the layer asks of them. What is checked is the layer's own arithmetic: the words it puts
into the PIO FIFO must add up to exactly the ramp's steps, at the ramp's pace, in the encoding
the PIO program decodes (low half: steps - 1, high half: delay cycles); the bytes it sends a
WS2812 chain are green, red, blue per LED, in chain order, at the chip's bit timing.
"""

import importlib
import subprocess
import sys
import time
import types

import pytest

from controller.sim.board import FIRMWARE_DIR, micropython_command
from firmware.focusboard.clock import Clock
from firmware.focusboard.motion import Ramp


class StateMachine:
    def __init__(self, *args, **kwargs):
        self.words = []
        self.active_calls = []

    def active(self, on):
        self.active_calls.append(on)

    def restart(self):
        pass

    def tx_fifo(self):
        return 0  # the PIO drains each chunk before the next timer tick

    def put(self, word):
        self.words.append(word)


class Pin:
    OUT = IN = PULL_UP = IRQ_FALLING = IRQ_RISING = 0

    def __init__(self, *args, **kwargs):
        self.level = 0

    def value(self, level=None):
        if level is None:
            return self.level
        self.level = level
        return None


class PWM:
    def __init__(self, pin):
        self.duty = None

    def freq(self, hz):
        pass

    def duty_u16(self, duty):
        self.duty = duty


class Bitstream:
    """machine.bitstream: records what went down the wire."""

    def __init__(self):
        self.sent = []

    def __call__(self, pin, encoding, timing, buf):
        self.sent.append((encoding, tuple(timing), bytes(buf)))


class Timer:
    PERIODIC = 0

    def __init__(self, **kwargs):
        self.callback = kwargs["callback"]


class FakeClock(Clock):
    """Both the firmware's Clock and the chip's raw tick counter, stepped by the test."""

    def __init__(self):
        self.t = 0

    def now_us(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(time, "ticks_us", fake.now_us, raising=False)
    monkeypatch.setattr(time, "ticks_diff", lambda a, b: a - b, raising=False)
    return fake


@pytest.fixture
def hal_rp2(monkeypatch, clock):
    machine = types.SimpleNamespace(Pin=Pin, Timer=Timer, PWM=PWM, bitstream=Bitstream(),
                                    disable_irq=lambda: 0, enable_irq=lambda state: None)
    rp2 = types.SimpleNamespace(asm_pio=lambda **kw: (lambda f: f), StateMachine=StateMachine,
                                PIO=types.SimpleNamespace(OUT_LOW=0, SHIFT_RIGHT=0))
    monkeypatch.setitem(sys.modules, "machine", machine)
    monkeypatch.setitem(sys.modules, "rp2", rp2)
    monkeypatch.setitem(sys.modules, "micropython", types.SimpleNamespace())
    monkeypatch.delitem(sys.modules, "firmware.focusboard.hal_rp2", raising=False)
    # Imported by name: the module is MicroPython-only (its PIO assembler names are not Python).
    return importlib.import_module("firmware.focusboard.hal_rp2")


def test_chunks_add_up_to_the_ramp_at_its_pace(hal_rp2, clock):
    settings = {"pins": {"step": 2, "dir": 3, "enable": 4}, "enable_active_low": True}
    stepper = hal_rp2.Stepper(settings, clock)
    ramp = Ramp(6000, 20000, 200000)
    stepper.enable(True)
    stepper.run(ramp, 1, 0, False, True)
    chunks = []
    while not stepper.done(clock.t):
        stepper._timer.callback(stepper._timer)
        clock.t += hal_rp2.CHUNK_US
        chunks.append(len(stepper._sm.words))
        assert clock.t < 10**6, "the ramp never finished"
    words = stepper._sm.words
    counts = [(w & 0xFFFF) + 1 for w in words]
    delays = [w >> 16 for w in words]
    assert sum(counts) == 6000 == stepper.steps_done(clock.t)
    assert clock.t / 1e6 == pytest.approx(ramp.duration, abs=0.002)
    for count, delay in zip(counts, delays, strict=True):
        period_us = delay + hal_rp2.STEP_OVERHEAD_CYCLES
        assert count * period_us <= hal_rp2.CHUNK_US  # a chunk fits its millisecond
        assert count * period_us > hal_rp2.CHUNK_US - period_us  # and fills it
    assert max(counts) == 20  # cruising at 20000 steps/s is 20 steps per millisecond


def test_enable_pin_is_active_low_and_direction_follows_the_sign(hal_rp2, clock):
    settings = {"pins": {"step": 2, "dir": 3, "enable": 4}, "enable_active_low": True,
                "dir_invert": True}
    stepper = hal_rp2.Stepper(settings, clock)
    assert stepper._enable.value() == 1  # disabled at boot
    stepper.enable(True)
    assert stepper._enable.value() == 0
    stepper.run(Ramp(10, 100, 1000), 1, 0, False, True)
    assert stepper._dir.value() == 0  # inverted


def test_a_ws2812_chain_gets_green_red_blue_per_led_at_800_khz(hal_rp2):
    settings = {"leds": [[0, 0, 400]] * 4, "led_kind": "ws2812", "pins": {"leds": 16}}
    driver = hal_rp2.LedDriver(settings)
    wire = sys.modules["machine"].bitstream
    driver.write({1: (255, 0, 0), 3: (1, 2, 3)}, True)
    driver.write({}, False)
    assert wire.sent == [
        (0, (400, 850, 800, 450), bytes([0, 0, 0, 0, 255, 0, 0, 0, 0, 2, 1, 3])),
        (0, (400, 850, 800, 450), bytes(12)),
    ]
    assert driver.rgb and driver.mono_colour == (0, 1, 0)


def test_pwm_leds_show_the_level_set_leds_gave(hal_rp2):
    settings = {"leds": [[0, 0, 400]] * 3, "led_kind": "pwm", "led_pins": [5, 6, 7]}
    driver = hal_rp2.LedDriver(settings)
    driver.write({0: (255, 255, 255), 2: (10, 10, 10)}, False)
    assert [pwm.duty for pwm in driver._pwm] == [65535, 0, 2570]
    assert not driver.rgb


@pytest.mark.firmware
def test_the_rp2_layer_compiles_under_micropython():
    source = FIRMWARE_DIR / "focusboard" / "hal_rp2.py"
    script = f"compile(open({str(source)!r}).read(), 'hal_rp2.py', 'exec'); print('ok')"
    result = subprocess.run([*micropython_command(), "-c", script], capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.stdout.strip() == "ok", result.stderr
