"""The dashboard's panel of what the box sees, in real headless Chromium against a real server:
the latest frame, its spectrum and its histogram appear once the loop reads a frame, refresh
one at a time and at most once a second, fit a phone's width, and load behind the token."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from controller.service.auth import read_token
from tests.service.cdp import CHROMIUM, Browser
from tests.service.conftest import service_config
from tests.service.test_auth import new_token

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium (/usr/bin/chromium); "
                              "apt-get install chromium"),
]

IMAGES_SHOWN = ("['frame-img', 'spectrum-img'].every((id) => "
                "document.getElementById(id)?.complete && "
                "document.getElementById(id).naturalWidth > 0)")
# how many pixels of the histogram canvas something was drawn on
HISTOGRAM_INKED = ("(() => { const c = document.getElementById('histogram');"
                   " if (!c?.width || !c.height) return 0;"
                   " const a = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                   " let n = 0; for (let i = 3; i < a.length; i += 4) if (a[i]) n++;"
                   " return n; })()")
NOTE = "document.getElementById('views-note')"


def loads(browser: Browser, url: str) -> bool:
    """Whether an <img> in the page can still load ``url`` (a revoked blob URL cannot)."""
    return browser.evaluate(f"new Promise((done) => {{ const i = new Image();"
                            f" i.onload = () => done(true); i.onerror = () => done(false);"
                            f" i.src = {json.dumps(url)}; }})")


def view_fetches(browser: Browser) -> list[dict[str, Any]]:
    """The page's requests for the three views, in the order they started."""
    return browser.evaluate(
        "performance.getEntriesByType('resource')"
        ".filter((e) => /\\/api\\/(frame\\.png|spectrum\\.png|histogram)/.test(e.name))"
        ".map((e) => ({name: e.name, start: e.startTime, end: e.responseEnd}))"
        ".sort((a, b) => a.start - b.start)")


def test_the_panel_shows_the_frame_spectrum_and_histogram_of_the_lock(running, tmp_path):
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=running.server.url)
        note = browser.wait_for(f"{NOTE}?.textContent.startsWith('no frame yet') && "
                                f"{NOTE}.className === '' && {NOTE}.textContent")
        assert "start the lock" in note  # a 409 is a note, not an error
        running.client.post("/api/lock/start")
        browser.wait_for(f"{IMAGES_SHOWN} && {HISTOGRAM_INKED} > 0")
        assert browser.evaluate(f"{NOTE}.textContent") == ""
        frame_size = running.service.config.sim.frame_size
        assert browser.evaluate("document.getElementById('frame-img').naturalWidth") == frame_size
        assert "saturated" in browser.evaluate(
            "document.getElementById('histogram-text').textContent")

        first = browser.evaluate("document.getElementById('frame-img').src")
        assert first.startswith("blob:")
        browser.wait_for(f"document.getElementById('frame-img').src !== {json.dumps(first)} && "
                         f"document.getElementById('frame-img').naturalWidth > 0")
        assert not loads(browser, first)  # the replaced image's URL was freed
        assert loads(browser, browser.evaluate("document.getElementById('frame-img').src"))

        fetches = view_fetches(browser)
        for before, after in itertools.pairwise(fetches):
            assert after["start"] >= before["end"], (before, after)  # one at a time
        refreshes = [f["start"] for f in fetches if "/api/histogram" in f["name"]]
        assert len(refreshes) >= 2
        gaps = [b - a for a, b in itertools.pairwise(refreshes)]
        assert min(gaps) >= 900, gaps  # at most about one refresh a second at 20 steps a second
    finally:
        browser.close()


def test_the_panel_stacks_under_the_trace_at_phone_width(start_service, tmp_path):
    running = start_service(service_config(tmp_path, sim={"frame_size": 512}))
    running.service.focus_now(60)  # a 512-pixel frame: wider than the phone unless scaled
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=390, height=844,
                     deviceScaleFactor=3, mobile=True)
        browser.call("Page.navigate", url=running.server.url)
        browser.wait_for(f"{IMAGES_SHOWN} && {HISTOGRAM_INKED} > 0")
        assert browser.evaluate("document.getElementById('frame-img').naturalWidth") == 512
        assert browser.evaluate("window.innerWidth") == 390
        assert browser.evaluate("document.documentElement.scrollWidth") <= 390
        layout = browser.evaluate(
            "(() => { const box = (s) => document.querySelector(s).getBoundingClientRect();"
            " const [plot, views, frame] = ['.plot', '.views', '#frame-img'].map(box);"
            " return {plotBottom: plot.bottom, viewsTop: views.top, viewsRight: views.right,"
            " frameWidth: frame.width, frameRight: frame.right}; })()")
        assert layout["viewsTop"] >= layout["plotBottom"]  # under the trace
        assert layout["frameRight"] <= layout["viewsRight"] <= 390
        assert layout["frameWidth"] > 200  # scaled to the width, not a thumbnail
    finally:
        browser.close()


def test_the_views_load_once_the_token_is_given(start_service, tmp_path):
    _, token_file = new_token(tmp_path)
    running = start_service(service_config(tmp_path, service={
        "token_file": str(token_file), "read_requires_token": True}))
    running.service.focus_now(60)  # a frame to show
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=running.server.url)
        browser.wait_for("document.getElementById('token-form')?.hidden === false")
        browser.evaluate(f"document.getElementById('token-input').value = "
                         f"{json.dumps(read_token(token_file))};"
                         f"document.querySelector('#token-form button').click()")
        browser.wait_for(f"{IMAGES_SHOWN} && {HISTOGRAM_INKED} > 0")
        assert browser.evaluate(f"{NOTE}.textContent") == ""
        assert browser.evaluate("document.getElementById('token-form').hidden")
    finally:
        browser.close()
