"""The screenshots of docs/retrofit.md, taken from the digital twin (the firmware under
MicroPython drives the focus, the virtual microscope renders) in real headless Chromium: the
dashboard's views with the LED misplaced by 0.03 NA and then in place, a guided calibration
between two fields and at its end (on a desktop and on a phone).

The calibration fine-tunes the tiny test bundle (trained here first, as tests/training does;
needs TensorFlow) on beads, a sample it never saw. Each PNG is cut to its card and reduced to
a 64-colour palette to stay small.

Run:  PYTHONPATH=$PWD .venv/bin/python benchmarks/retrofit_screenshots.py [--out docs/retrofit]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from controller.cli import main as focuslock
from controller.config import Config
from controller.installed_models import install
from controller.service.api import ApiServer
from controller.service.daemon import FocusService
from controller.sim.twin import DigitalTwin
from controller.stackio import write_stack
from tests.conftest import TINY, sim_stack
from tests.service.cdp import Browser
from tests.service.conftest import service_config, twin_hardware
from tests.service.test_calibration import calibration_config

DESKTOP = {"width": 1100, "height": 900, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
COLOURS = 64
WAIT_S = 120.0
ALIGNMENT_SHOWN = "!document.getElementById('alignment').textContent.includes('check')"
TRAINING_WAIT_S = 900.0


@contextlib.contextmanager
def twin_service(config: Config, work: Path) -> Iterator[ApiServer]:
    """A real service on the twin, on a free loopback port."""
    twins: list[DigitalTwin] = []
    service = FocusService(config, twin_hardware(config, work / "firmware", twins))
    server = ApiServer(("127.0.0.1", 0), service)
    service.start()
    server.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        service.close()


@contextlib.contextmanager
def page(server: ApiServer, profile: Path, viewport: dict[str, Any]) -> Iterator[Browser]:
    browser = Browser(profile)
    try:
        browser.call("Emulation.setDeviceMetricsOverride", **viewport)
        browser.call("Page.navigate", url=server.url)
        browser.wait_for("document.body?.dataset.feed === 'events'", WAIT_S)
        yield browser
    finally:
        browser.close()


def shoot(browser: Browser, viewport: dict[str, Any], out: Path, selector: str) -> None:
    """``selector``'s box as a palette PNG: the viewport made as tall as the page (so the
    layout measured is the layout shot), the page shot, the box cut from it."""
    height = browser.evaluate("document.documentElement.scrollHeight")
    browser.call("Emulation.setDeviceMetricsOverride", **{**viewport, "height": height})
    browser.evaluate("new Promise((done) => requestAnimationFrame(() => "
                     "requestAnimationFrame(done)))")  # laid out and painted at that size
    box = browser.evaluate(
        f"(r => [r.left + scrollX, r.top + scrollY, r.right + scrollX, r.bottom + scrollY])"
        f"(document.querySelector('{selector}').getBoundingClientRect())")
    shot = browser.call("Page.captureScreenshot", format="png")
    browser.call("Emulation.setDeviceMetricsOverride", **viewport)
    page = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    image = page.crop(tuple(round(v * viewport["deviceScaleFactor"]) for v in box))
    image.quantize(COLOURS).save(out, optimize=True)
    print(f"{out}: {image.size[0]}x{image.size[1]}, {out.stat().st_size / 1024:.0f} kB")


def alignment_views(work: Path, out: Path, name: str, shift_na_x: float) -> None:
    """The views card once the alignment sentence is in, after a focus now."""
    config = service_config(work / name, board={"backend": "firmware-sim"},
                            sim={"frame_size": 512, "sample": "dense-cells", "seed": 4,
                                 "start_z_um": 0.0, "led_shift_na_x": shift_na_x},
                            lock={"rate_hz": 2.0})
    with twin_service(config, work / name) as server, \
            page(server, work / name / "profile", DESKTOP) as browser:
        browser.evaluate("document.getElementById('focus-now').click()")
        browser.wait_for("document.getElementById('spectrum-img').naturalWidth > 0", WAIT_S)
        browser.wait_for(ALIGNMENT_SHOWN, WAIT_S)
        shoot(browser, DESKTOP, out / f"{name}.png", ".views")


def tiny_bundle(work: Path) -> Path:
    """The tests' tiny bundle: 32 small cell stacks, a small network (TensorFlow)."""
    stacks = work / "cells"
    stacks.mkdir()
    for seed in range(32):
        kind = ("sparse-cells", "dense-cells")[seed % 2]
        params = {"density_per_mm2": 1500.0} if kind == "sparse-cells" else {}
        write_stack(stacks / f"{kind}-{seed:03d}.ome.tif",
                    sim_stack(kind, seed, half_range=10, params=params))
    if focuslock(["train", str(stacks), "--out", str(work / "tiny"), *TINY]) != 0:
        raise SystemExit("training the tiny bundle failed")
    return work / "tiny"


def calibration(work: Path, out: Path) -> None:
    """The calibration card after two stacks and at the end, on a desktop and on a phone."""
    config = calibration_config(work / "calibration", board={"backend": "firmware-sim"})
    install(config, tiny_bundle(work))
    with twin_service(config, work / "calibration") as server:
        with page(server, work / "profile-desktop", DESKTOP) as browser:
            browser.evaluate("document.getElementById('cal-stacks').value = '4';"
                             "document.getElementById('cal-range').value = '10';"
                             "document.getElementById('cal-start').click()")
            for stack in (1, 2, 3):
                browser.wait_for(f"calibration?.phase === 'waiting' && "
                                 f"calibration.stack === {stack}", WAIT_S)
                if stack == 2:
                    shoot(browser, DESKTOP, out / "calibration-collecting.png",
                          ".calibration")
                browser.evaluate("document.getElementById('cal-next').click()")
            browser.wait_for("['ready', 'failed'].includes(calibration?.phase)",
                             TRAINING_WAIT_S)
            browser.wait_for("document.getElementById('cal-figure').naturalWidth > 0", WAIT_S)
            shoot(browser, DESKTOP, out / "calibration-ready.png", ".calibration")
        with page(server, work / "profile-phone", PHONE) as browser:
            for image in ("cal-figure", "frame-img", "spectrum-img"):  # the layout is final
                browser.wait_for(f"document.getElementById('{image}').naturalWidth > 0", WAIT_S)
            browser.wait_for(ALIGNMENT_SHOWN, WAIT_S)
            shoot(browser, PHONE, out / "phone-calibration.png", ".calibration")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/retrofit"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        alignment_views(work, args.out, "misplaced-led", -0.03)
        alignment_views(work, args.out, "aligned-led", 0.0)
        calibration(work, args.out)


if __name__ == "__main__":
    main()
