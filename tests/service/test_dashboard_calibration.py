"""The dashboard's setup views in real headless Chromium against the digital twin (the firmware
under MicroPython drives the focus): the frame, its spectrum and the alignment check's sentence
render, on a desktop and on a phone, and a guided calibration runs from the page to the
installed bundle."""

from __future__ import annotations

import pytest

from controller.installed_models import install
from controller.sim.twin import DigitalTwin
from tests.service.cdp import CHROMIUM, Browser
from tests.service.conftest import Running, twin_hardware
from tests.service.test_calibration import calibration_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.firmware,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium (/usr/bin/chromium); "
                              "apt-get install chromium"),
]

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
DESKTOP = {"width": 1200, "height": 760, "deviceScaleFactor": 1, "mobile": False}
TRAINING_TIMEOUT_S = 600.0


@pytest.fixture
def twin_service(start_service, tmp_path) -> Running:
    """The twin at 256² frames showing beads, in focus where its drive starts."""
    config = calibration_config(tmp_path, board={"backend": "firmware-sim"})
    twins: list[DigitalTwin] = []
    return start_service(config, hardware=twin_hardware(config, tmp_path / "firmware", twins))


def open_page(running: Running, profile, viewport: dict) -> Browser:
    browser = Browser(profile)
    browser.call("Emulation.setDeviceMetricsOverride", **viewport)
    browser.call("Page.navigate", url=running.server.url)
    browser.wait_for("document.body?.dataset.feed === 'events'")
    return browser


def fits_the_screen(browser: Browser) -> bool:
    return browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_frame_spectrum_and_alignment_sentence_render(twin_service, tmp_path, viewport):
    assert twin_service.client.post("/api/focus", {})[0] == 200  # a frame; the page asks
    # for the alignment by itself only while the lock does not run
    browser = open_page(twin_service, tmp_path / "profile", viewport)
    try:
        for image in ("frame-img", "spectrum-img"):
            browser.wait_for(f"document.getElementById('{image}').naturalWidth > 0",
                             timeout_s=60)  # generous: the machine is shared
        sentence = browser.wait_for(
            "(t => !t.includes('check') && t)(document.getElementById('alignment').textContent)",
            timeout_s=60)
        assert sentence.startswith("alignment: the LED is aligned: ")  # the twin's LED is
        assert browser.evaluate("document.getElementById('alignment').className") == "gates-ok"
        assert fits_the_screen(browser)
    finally:
        browser.close()


@pytest.mark.training
def test_a_calibration_runs_from_the_page_on_a_phone(twin_service, bundle, tmp_path):
    config = twin_service.service.config
    base = install(config, bundle)
    client = twin_service.client
    browser = open_page(twin_service, tmp_path / "profile", PHONE)
    try:
        browser.evaluate("document.getElementById('cal-stacks').value = '3';"
                         "document.getElementById('cal-range').value = '10';"
                         "document.getElementById('cal-start').click()")
        for stack in (1, 2):
            browser.wait_for(f"calibration?.phase === 'waiting' && calibration.stack === {stack}",
                             timeout_s=60)
            assert browser.evaluate("document.getElementById('cal-curves-text').textContent"
                                    ).startswith(f"{stack} stack")
            browser.evaluate("document.getElementById('cal-next').click()")
        browser.wait_for("['ready', 'failed'].includes(calibration?.phase)",
                         timeout_s=TRAINING_TIMEOUT_S)
        assert browser.evaluate("calibration.phase") == "ready", browser.evaluate(
            "calibration.message")
        browser.wait_for("document.getElementById('cal-figure').naturalWidth > 0")
        assert "held-out RMSE" in browser.evaluate(
            "document.getElementById('cal-message').textContent")
        assert fits_the_screen(browser)
        browser.evaluate("document.getElementById('cal-install').click()")
        browser.wait_for("calibration?.phase === 'installed'", timeout_s=60)
        installed = client.get("/api/calibration")[1]["installed"]
        assert client.get("/api/status")[1]["model"]["id"].startswith(installed + "@")
        browser.wait_for(f"document.getElementById('model').textContent.startsWith('{installed}')")
        browser.evaluate("document.getElementById('model-rollback').click()")
        browser.wait_for(f"document.getElementById('model').textContent.startsWith('{base.name}')")
    finally:
        browser.close()
