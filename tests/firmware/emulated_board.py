"""The committed RP2040 image booted in rp2040js (the chip's emulator, run with node), reachable
at a pty like any simulated board, with the chip's pins watched.

`firmware/emulator/run.js` runs the image and bridges its USB CDC serial to stdin/stdout; the
relay of :class:`SimulatedBoard` puts that behind a pty, so the host driver talks to it exactly
as to a board on USB. The pins' edges arrive in ``pins.jsonl``, stamped with the emulated time.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from controller.sim.board import FIRMWARE_DIR, SimulatedBoard
from firmware import build_image
from firmware.focusboard import settings

EMULATOR_DIR = FIRMWARE_DIR / "emulator"
PINS = cast(dict[str, int], settings.REFERENCE["pins"])

Event = dict[str, Any]


def emulator_missing() -> str | None:
    """Why the emulator cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (the RP2040 emulator runs under node)"
    if not (EMULATOR_DIR / "node_modules" / "rp2040js").is_dir():
        return "rp2040js is not installed: run `npm ci` in firmware/emulator (./dev does)"
    return None


def committed_image() -> Path:
    record = json.loads(build_image.RECORD_PATH.read_text())
    return build_image.IMAGE_DIR / record["image"]


class EmulatedBoard(SimulatedBoard):
    """The image on an emulated Pico; the endstop and maintenance jumper held open (high)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.events_file = self.workdir / "pins.jsonl"

    def firmware_command(self) -> list[str]:
        node = shutil.which("node")
        assert node is not None, emulator_missing()
        return [
            node, str(EMULATOR_DIR / "run.js"), "--image", str(committed_image()),
            "--events", str(self.events_file),
            "--pin", f"step={PINS['step']}", "--pin", f"dir={PINS['dir']}",
            "--pin", f"enable={PINS['enable']}", "--ws2812", f"leds={PINS['leds']}",
            "--high", str(PINS["endstop_min"]), "--high", "22",  # hal_rp2.MAINTENANCE_PIN
        ]

    def events(self) -> list[Event]:
        if not self.events_file.exists():
            return []
        lines = self.events_file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_for(self, found: Callable[[list[Event]], bool], what: str,
                 timeout_s: float = 120.0) -> list[Event]:
        """The events once ``found`` holds for them; the emulator runs slower than the chip."""
        deadline = time.monotonic() + timeout_s
        while True:
            events = self.events()
            if found(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"emulated board: no {what} within {timeout_s} s; "
                                     f"see {self.log_file}")
            time.sleep(0.05)
