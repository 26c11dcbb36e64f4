"""A fake illuminate LED array behind a real pty, whose lit LEDs light the virtual microscope.

It answers the commands the driver (controller/hardware/illuminate.py) sends as the firmware does
in machine mode (zfphil/illuminate, read for its reply formats: every reply ends with ``-==-`` and
a newline, a JSON reply without a newline before it); its LEDs are a preset's array, numbered its
own way (centre first, outwards, as the quasi-dome numbers them) and reported in the firmware's
convention (the NA of the direction towards the LED). Knobs inject what a weak link does: garbage,
a missing terminator, silence, an unplugged cable.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable

from controller.config import Config
from controller.hardware.illuminate import (
    MACHINE_MODE,
    TERMINATOR,
    IlluminateArray,
    serial_port_opener,
)
from controller.hardware.rig import Rig
from controller.optics import Led, LedArray, Pattern
from controller.sim.devices import VirtualCamera
from controller.sim.pty_line import PtyLine

UNKNOWN_COMMAND = "Command [{}] is not implemented yet."  # the firmware's words, no newline
DPC_SIDES = {"t": lambda x, y: y > 0, "b": lambda x, y: y < 0,
             "l": lambda x, y: x < 0, "r": lambda x, y: x > 0}


class FakeIlluminate:
    """The array on a pty (``port``); ``lit_pattern()`` is what it lights now, in the project's
    NA convention, for the virtual camera."""

    def __init__(self, leds: LedArray, *, channels: int = 3) -> None:
        order = sorted(range(len(leds)), key=lambda i: (round(math.hypot(*leds.nas[i]), 6),
                                                        math.atan2(leds.nas[i][1],
                                                                   leds.nas[i][0])))
        self.nas = {number: leds.nas[index] for number, index in enumerate(order)}
        self.channels = channels
        self.lit: dict[int, int] = {}  # LED number -> level 0..255 of its brightest emitter
        self.commands: list[str] = []  # every command received, in order
        self.garbage_next = False  # the next reply is line noise
        self.drop_terminator_next = False  # the next reply never ends
        self.silent = False  # no more replies at all
        self._colour = [255 // channels] * channels
        self._brightness = 128  # the firmware's defaults
        self._autoclear = True
        self._objective_na = 0.25
        self._lock = threading.Lock()
        self._line = PtyLine("fake-illuminate", lambda line: self._reply(self._answer(line)))
        self.port = self._line.port
        self._line.start()

    # -- what the camera sees ------------------------------------------------------------------

    def lit_pattern(self) -> Pattern | None:
        with self._lock:
            lit = sorted((n, level) for n, level in self.lit.items() if level > 0)
        if not lit:
            return None
        return Pattern("illuminate", tuple(Led(*self.nas[n], level / 255) for n, level in lit))

    # -- faults --------------------------------------------------------------------------------

    def unplug(self) -> None:
        """Pull the cable: the pty goes away, the host's reads and writes fail."""
        self._line.unplug()

    def close(self) -> None:
        self.unplug()

    # -- the firmware --------------------------------------------------------------------------

    def _reply(self, text: str) -> None:
        if self.silent:
            return
        out = text.encode() + TERMINATOR
        if self.garbage_next:
            self.garbage_next = False
            out = b"\xff\xfe\x00garbage\xc3" + TERMINATOR  # noise that ends like a reply
        elif self.drop_terminator_next:
            self.drop_terminator_next = False
            out = text.encode()
        self._line.write(out)

    def _answer(self, line: str) -> str:
        """The reply text (before the terminator) the firmware prints in machine mode."""
        self.commands.append(line)
        command, *args = line.split(".") if line else [""]
        with self._lock:
            if command in ("machine", "short"):
                return MACHINE_MODE + "\n"
            if command in ("ac", "autoClear"):
                self._autoclear = bool(int(args[0])) if args else not self._autoclear
                return f"AC.{int(self._autoclear)}\n"
            if command in ("x", "xx"):
                self.lit.clear()
                return ""
            if command in ("sb", "setBrightness") and args:
                self._brightness = int(args[0]) & 0xFF
                return f"SB.{self._brightness}\n"
            if command in ("sc", "setColor") and len(args) == self.channels:
                peak = max(int(a) for a in args) or 1  # the firmware normalises colours
                self._colour = [round(255 * int(a) / peak) for a in args]
                return "CO." + ".".join(map(str, self._colour)) + "\n"
            if command in ("na", "setNa") and args:
                self._objective_na = int(args[0]) / 100
                return f"NA.{round(self._objective_na * 100):02d}\n"
            if command in ("l", "led"):
                self._draw(int(a) for a in args)
                return ""
            if command in ("bf", "brightfield"):
                self._draw(n for n, na in self.nas.items()
                           if math.hypot(*na) <= self._objective_na)
                return ""
            if command in ("dpc", "halfCircle") and args and args[0][:1] in DPC_SIDES:
                side = DPC_SIDES[args[0][:1]]
                self._draw(n for n, (x, y) in self.nas.items()
                           if math.hypot(x, y) <= self._objective_na and side(-x, -y))
                return ""
            if command in ("pp", "printParams"):
                return json.dumps({"device_name": "fake-illuminate", "led_count": len(self.nas),
                                   "color_channel_count": self.channels,
                                   "interface_version": 1.32}, indent=4)
            if command in ("pledposna", "printLedPositionsNa"):
                rows = ",\n".join(f'        "{n}" : [{-x:.3f}, {-y:.3f}]'
                                  for n, (x, y) in sorted(self.nas.items()))
                return '{\n    "led_position_list_na" : {\n' + rows + "\n    }\n}"
        return UNKNOWN_COMMAND.format(command)

    def _draw(self, numbers: Iterable[int]) -> None:
        if self._autoclear:
            self.lit.clear()
        level = math.ceil(max(self._colour) / 255 * self._brightness)
        for number in numbers:
            if number in self.nas:
                self.lit[number] = level


def attach_fake_illuminate(rig: Rig, config: Config) -> Rig:
    """Backend ``illuminator.backend = "illuminate"`` on a simulated rig (rig.py)."""
    fit_fake_illuminate(rig, config)
    return rig


def fit_fake_illuminate(rig: Rig, config: Config) -> FakeIlluminate:
    """Light the simulated rig by a fake illuminate array of the preset's LEDs: the driver over
    a real pty in place of the board's LEDs, the camera rendering what the fake lights, the
    preset as the array lights it. Returns the fake, for its fault knobs."""
    if not isinstance(rig.camera, VirtualCamera):
        raise TypeError("a fake illuminate array lights the virtual camera only")
    fake = FakeIlluminate(rig.preset.leds)
    array = IlluminateArray(serial_port_opener(fake.port), config.illuminator)
    try:
        system = array.open().fitted(rig.preset)
    except BaseException:
        array.close()
        fake.close()
        raise
    rig.camera.illumination = fake.lit_pattern
    rig.illuminator = array
    rig.preset = system
    rig.closers.append(fake.close)
    return fake
