"""What watching the live views costs the lock: the mean lock step time while nobody watches,
then while a client fetches ``/api/frame.png`` and ``/api/spectrum.png`` once a second (as the
dashboard does on step events, at most), then during one alignment check (``/api/alignment``,
which the dashboard asks once a page load), on a real service on loopback (the in-process virtual
microscope, the default bundle, the lock at the config's rate).

Step time is wall time around ``LockRunner.step`` (the service's own step histogram is in the
rig's clock, which on the virtual microscope is simulated time).

Run:  .venv/bin/python benchmarks/bench_views.py [--seconds 20] [--frame-size PX] [--rate HZ]
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from pathlib import Path

from bench_service import serving  # the sibling script: run as benchmarks/bench_views.py

from controller.config import config_from_dict
from controller.lock_runner import LockRunner
from controller.model import DEFAULT_BUNDLE, RECORD_FILE
from controller.runlog import StepRecord


def get(port: int, path: str, accept: tuple[int, ...] = (200,)) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    if response.status not in accept:
        raise SystemExit(f"GET {path}: HTTP {response.status} {data[:200]!r}")
    return data


STEP_TIMES: list[float] = []  # wall seconds of each lock step, appended by the worker


def timing_steps() -> None:
    """Time every lock step from now on."""
    step = LockRunner.step

    def timed(runner: LockRunner) -> StepRecord:
        start = time.perf_counter()
        record = step(runner)
        STEP_TIMES.append(time.perf_counter() - start)
        return record

    LockRunner.step = timed  # type: ignore[method-assign]


def mean_step_ms(port: int, seconds: float, watch: bool) -> tuple[float, float, int]:
    """Mean step time (ms) over ``seconds``, the mean time to fetch both PNGs (ms), fetches."""
    stop = threading.Event()
    fetches: list[float] = []

    def watcher() -> None:
        while not stop.wait(1.0):
            start = time.perf_counter()
            get(port, "/api/frame.png")
            get(port, "/api/spectrum.png")
            fetches.append(time.perf_counter() - start)

    thread = threading.Thread(target=watcher, daemon=True)
    first = len(STEP_TIMES)
    if watch:
        thread.start()
    time.sleep(seconds)
    stop.set()
    if watch:
        thread.join()
    steps = STEP_TIMES[first:]
    fetch_ms = 1e3 * sum(fetches) / len(fetches) if fetches else 0.0
    return 1e3 * sum(steps) / max(len(steps), 1), fetch_ms, len(fetches)


def steps_during_alignment(port: int) -> tuple[float, float, int]:
    """Mean step time (ms) while one alignment check runs, its duration (s), the steps."""
    first = len(STEP_TIMES)
    start = time.perf_counter()
    get(port, "/api/alignment", accept=(200, 422))  # the fit's work is done either way
    took = time.perf_counter() - start
    steps = STEP_TIMES[first:]
    return 1e3 * sum(steps) / max(len(steps), 1), took, len(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per window")
    parser.add_argument("--frame-size", type=int,
                        help="square frames (default: four of the bundle's feature patches)")
    parser.add_argument("--rate", type=float, default=2.0, help="lock steps per second")
    args = parser.parse_args()
    record = json.loads((Path(DEFAULT_BUNDLE) / RECORD_FILE).read_text())
    frame = args.frame_size or 2 * int(record["feature_spec"]["patch"])
    timing_steps()
    with tempfile.TemporaryDirectory() as logs:
        config = config_from_dict({"log_dir": logs, "sim": {"frame_size": frame},
                                   "lock": {"rate_hz": args.rate}})
        with serving(config) as (service, port):
            service.start_lock()
            time.sleep(3 / args.rate)  # a few steps in
            print(f"lock at {args.rate} Hz on {frame}² virtual frames, {args.seconds:g} s each")
            for watch in (False, True, False):
                step, fetch, n = mean_step_ms(port, args.seconds, watch)
                what = f"watched ({n} fetches of both PNGs, {fetch:.0f} ms each)" if watch \
                    else "unwatched"
                print(f"  mean step {step:6.1f} ms  {what}")
            step, took, n = steps_during_alignment(port)
            print(f"  mean step {step:6.1f} ms  during one alignment check ({took:.1f} s, "
                  f"{n} steps)")


if __name__ == "__main__":
    main()
