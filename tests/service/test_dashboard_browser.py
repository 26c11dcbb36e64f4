"""The dashboard in real headless Chromium against a real server: it shows the live state (from
the event stream, or by polling where no stream is to be had), and its buttons drive the lock."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.service.cdp import CHROMIUM, HEADLESS, Browser
from tests.service.conftest import oracle_hardware, service_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium (/usr/bin/chromium); "
                              "apt-get install chromium"),
]


def text_of(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert match, f"no #{element_id} in the page"
    return match.group(1)


def test_the_page_shows_the_running_lock(running, tmp_path):
    client = running.client
    client.post("/api/lock/start")
    status = client.wait_for(lambda s: s["state"] == "locked", what="locked")
    dom = subprocess.run(
        [str(CHROMIUM), *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=2000", "--dump-dom", running.server.url],
        capture_output=True, text=True, timeout=60, check=True).stdout
    assert text_of(dom, "state") == "locked"
    assert text_of(dom, "conn-text") == "healthy"
    assert abs(float(text_of(dom, "z")) - status["z_um"]) < 0.5
    assert text_of(dom, "leds") == "autofocus"
    assert text_of(dom, "gates") == "all passed"
    readings = re.match(r"(\d+) readings in the last", text_of(dom, "points"))
    assert readings and int(readings.group(1)) >= 4  # the plot has the run's readings


def test_the_page_shows_the_models_bias_focus_now_measured(start_service, tmp_path):
    config = service_config(tmp_path)  # the finish on, as by default
    running = start_service(config, hardware=lambda: oracle_hardware(config, bias_um=1.0))
    code, report = running.client.post("/api/focus", {"timeout_s": 30})
    assert code == 200 and report["model_bias_um"] > 0.5
    dom = subprocess.run(
        [str(CHROMIUM), *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=2000", "--dump-dom", running.server.url],
        capture_output=True, text=True, timeout=60, check=True).stdout
    assert text_of(dom, "bias") == f"{report['model_bias_um']:+.2f}"


def test_the_buttons_start_the_lock_set_the_offset_and_stop(running, tmp_path):
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=running.server.url)
        browser.wait_for("document.getElementById('state')?.textContent === 'idle'")
        browser.evaluate("document.getElementById('lock-start').click()")
        browser.wait_for("document.getElementById('state')?.textContent === 'locked'")
        assert running.client.get("/api/status")[1]["mode"] == "lock"
        browser.evaluate("document.getElementById('offset-input').value = '2.5';"
                         "document.getElementById('offset-set').click()")
        browser.wait_for("document.getElementById('offset').textContent === '+2.50'")
        running.client.wait_for(lambda s: s["state"] == "locked" and abs(s["z_um"] - 2.5) < 0.5,
                                what="locked at the new offset")
        browser.evaluate("document.getElementById('offset-input').value = '80';"
                         "document.getElementById('offset-set').click()")
        message = browser.wait_for("document.getElementById('message').className === 'error' "
                                   "&& document.getElementById('message').textContent")
        assert "within ±50 µm" in message  # the API's refusal, shown to the person
        browser.evaluate("document.getElementById('stop').click()")
        browser.wait_for("document.getElementById('state')?.textContent === 'idle'")
        assert browser.evaluate("document.getElementById('leds').textContent") == "off"
        assert running.hardware[-1].rig.illuminator.pattern is None
    finally:
        browser.close()


def requests_to(browser: Browser, path: str) -> int:
    return browser.evaluate("performance.getEntriesByType('resource')"
                            f".filter((e) => e.name.includes('{path}')).length")


def test_a_lock_started_elsewhere_shows_up_through_the_event_stream(running, tmp_path):
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=running.server.url)
        browser.wait_for("document.body?.dataset.feed === 'events' && "
                         "document.getElementById('state').textContent === 'idle'")
        running.client.post("/api/lock/start")  # as an acquisition script would
        browser.wait_for("document.getElementById('state').textContent === 'locked'")
        steps = running.client.get("/api/status")[1]["counters"]["steps"]
        browser.wait_for(f"Number(document.getElementById('steps').textContent) >= {steps}")
        assert browser.evaluate("document.getElementById('gates').textContent") == "all passed"
        assert requests_to(browser, "/api/status") == 0  # no poll: the events told it
        assert requests_to(browser, "/api/log") == 0
    finally:
        browser.close()


def test_the_page_polls_while_no_event_stream_is_left(running, tmp_path):
    running.service.events.max_subscribers = 0  # every stream taken: refused with a 503
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=running.server.url)
        browser.wait_for("document.body?.dataset.feed === 'polling'")
        running.client.post("/api/lock/start")
        browser.wait_for("document.getElementById('state').textContent === 'locked'")
        assert requests_to(browser, "/api/status") > 0
    finally:
        browser.close()
