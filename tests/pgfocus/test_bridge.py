"""The adapter's sequence over a real pty to the bridge, which drives a real service on loopback
on the virtual rig."""

from __future__ import annotations

import math
import statistics
import threading

from controller.service.api import ApiServer
from tests.pgfocus.adapter import IDENTITY
from tests.pgfocus.conftest import UM_PER_PIXEL, connect


def errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("ERROR:")]


def test_the_adapters_start_up_is_answered_as_its_parser_reads_it(rig):
    adapter = rig.adapter
    assert errors(adapter.start_up()) == []
    assert adapter.version.startswith("focuslock-")
    assert adapter.slope == UM_PER_PIXEL * 1638 / 10  # µm per pixel at 10 microns per volt
    assert adapter.residuals == 1.0 and adapter.intercept == 0.0
    assert adapter.light == [0] * 128
    # GAIN: makes the adapter send "gain 1" back: answered OK, not echoed into a loop
    assert adapter.lines.count("OK") == 1
    assert [line for line in adapter.lines if line.startswith("GAIN:")] == ["GAIN: 1.0000"]
    assert adapter.fence() == [] and adapter.lines[-1] == IDENTITY


def test_f_locks_and_the_standard_deviation_reads_the_lock_jitter_in_nm(rig):
    adapter, client = rig.adapter, rig.running.client
    adapter.start_up()
    assert adapter.exchange("f") == ["INFO: Focus ON"]
    client.wait_for(lambda s: s["state"] == "locked", 60, "locked")
    assert adapter.exchange("f") == ["INFO: Focus ON"]  # idempotent: still one lock run
    _, status = client.get("/api/status")
    assert status["mode"] == "lock" and status["counters"]["lock_starts"] == 1

    # every trusted step is a STATS line: after 31 of them since it locked, the adapter's
    # queue is the last 31 steps
    first = len(adapter.stats)
    adapter.poll_until(lambda a: len(a.stats) - first >= 31, what="31 STATS lines")
    adapter.fence()  # a fence: every line the bridge wrote has been read
    _, page = client.get(f"/api/log?since={max(0, rig.bridge.last_seq - 200)}&limit=500")
    told = [r for r in page["records"] if r["seq"] <= rig.bridge.last_seq
            and r["error_um"] is not None and not r["rejected"]][-31:]
    jitter_nm = statistics.stdev(r["error_um"] for r in told) * 1000
    assert jitter_nm > 1  # the noisy readings make the lock jitter
    assert math.isclose(adapter.standard_deviation_nm(), jitter_nm, rel_tol=1e-3, abs_tol=0.1)
    # the held position reads as the centre pixel; Output nM is z in nm
    assert abs(statistics.mean(adapter.offsets) - 64) < 1
    last = adapter.stats[-1]
    output_nm = (last.dac / 16384 * 10 - 5) * adapter.mpv * 1000
    assert abs(output_nm - told[-1]["z_um"] * 1000) <= 10 * 1000 / 1638.4


def test_offset_sets_the_lock_offset_in_pixels_and_refuses_what_is_out_of_range(rig):
    adapter, client = rig.adapter, rig.running.client
    assert adapter.exchange("offset 72") == ["OK"]
    _, status = client.get("/api/status")
    assert status["offset_um"] == (72 - 64) * UM_PER_PIXEL
    assert adapter.exchange("offset") == ["OFFSET: 72.00"]
    for wrong in ("offset 128", "offset -1", "offset abc", "offset nan"):
        assert len(errors(adapter.exchange(wrong))) == 1, wrong
    # within the adapter's range but beyond the lock's window: the service's refusal
    narrow = adapter.exchange("offset 0")
    assert narrow == ["OK"] or "offset_um" in narrow[0]
    _, status = client.get("/api/status")
    assert status["offset_um"] in ((72 - 64) * UM_PER_PIXEL, -64 * UM_PER_PIXEL)


def test_s_stops_the_lock_where_it_is(rig):
    adapter, client = rig.adapter, rig.running.client
    adapter.exchange("f")
    client.wait_for(lambda s: s["state"] == "locked", 60, "locked")
    assert adapter.exchange("s") == ["INFO: Stopping"]
    _, stopped = client.get("/api/status")
    assert stopped["mode"] == "idle"
    adapter.poll_until(lambda a: a.stats and a.stats[-1].offset == 64.0, what="idle STATS")
    _, later = client.get("/api/status")
    assert later["z_um"] == stopped["z_um"]
    assert later["counters"]["moves"] == stopped["counters"]["moves"]
    assert adapter.exchange("s") == ["INFO: Stopping"]  # stopping a stopped lock is fine


def test_garbage_gets_an_error_line_and_nothing_moves(rig):
    adapter, client = rig.adapter, rig.running.client
    _, before = client.get("/api/status")
    garbage = ["xyz", "t", "voltage 3", "slope 5", "offset 7 8", "\x01\x02", "\xff\xfe",
               "F" * 300, "c", "u", "d", "gain 0", "mpv -3", "exposure nothing"]
    for line in garbage:
        replies = adapter.exchange(line)
        assert len(errors(replies)) >= 1 and all(r.startswith("ERROR:") for r in replies), line
    _, after = client.get("/api/status")
    assert after["mode"] == "idle" and after["z_um"] == before["z_um"]
    assert after["counters"]["moves"] == before["counters"]["moves"]
    assert after["offset_um"] == before["offset_um"]
    assert rig.thread.is_alive()


def test_a_service_that_goes_away_gives_error_lines_and_the_bridge_serves_on(rig):
    adapter, running = rig.adapter, rig.running
    address = running.server.server_address
    running.server.shutdown()
    running.server.server_close()
    for command in ("v", "f", "s", "offset 64"):
        replies = adapter.exchange(command)
        assert replies and replies[0].startswith("ERROR: focuslock service: no answer"), replies
    assert adapter.exchange("slope")[0].startswith("SLOPE:")  # what needs no service works
    assert rig.thread.is_alive()

    running.server = ApiServer(address, running.service)  # the service is back
    running.server.start()
    assert adapter.exchange("f") == ["INFO: Focus ON"]
    adapter.poll_until(lambda a: "INFO: focuslock locked: in tolerance" in a.lines, what="locked")


def test_a_focus_now_in_progress_finishes_before_s_takes_effect(hanging_service):
    running, model = hanging_service
    with connect(running) as rig:
        adapter, client = rig.adapter, running.client
        model.free.clear()
        report: dict = {}
        focus = threading.Thread(target=lambda: report.update(client.post("/api/focus")[1]))
        focus.start()
        try:
            assert model.stuck.wait(30)
            assert adapter.exchange("s") == ["INFO: Stopping once focus now has finished"]
            _, status = client.get("/api/status")
            assert status["mode"] == "focus"
        finally:
            model.free.set()
        focus.join(60)
        assert report["reason"] != "stopped by request" and report["success"], report
        adapter.poll_until(lambda a: "INFO: Stopping" in a.lines, what="the stop after focus now")
        _, status = client.get("/api/status")
        assert status["mode"] == "idle"
