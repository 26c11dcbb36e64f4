"""Benchmark of the focus-lock service's HTTP API while a lock runs (acquisition software polls
the status this way).

A real service on loopback (the in-process virtual microscope, a model bundle, the lock at the
config's rate, so the worker renders, featurises and predicts while the requests come in), then
a bounded number of requests per endpoint: over one keep-alive connection (a polling client) and
with a new connection per request (curl). Prints p50, p99 and max latency in milliseconds, and
how many lock steps ran meanwhile (the lock must keep its rate while being polled).

Run:  .venv/bin/python benchmarks/bench_service.py [--bundle PATH] [--requests 1000]
          [--frame-size PX] [--rate HZ]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from controller.config import Config, config_from_dict
from controller.model import DEFAULT_BUNDLE, RECORD_FILE
from controller.service.api import ApiServer
from controller.service.daemon import FocusService

MAX_REQUESTS = 20_000


def percentiles(samples_s: list[float]) -> str:
    ms = sorted(s * 1e3 for s in samples_s)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):6.2f} ms  p99 {p99:6.2f} ms  max {ms[-1]:6.2f} ms"


def timed_requests(port: int, path: str, count: int, *, keep_alive: bool) -> list[float]:
    times = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(count):
        if not keep_alive:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        times.append(time.perf_counter() - start)
        if response.status != 200:
            raise SystemExit(f"GET {path}: HTTP {response.status}")
        if not keep_alive:
            connection.close()
    connection.close()
    return times


def status(port: int) -> dict[str, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/api/status")
    data: dict[str, object] = json.loads(connection.getresponse().read())
    connection.close()
    return data


@contextlib.contextmanager
def serving(config: Config) -> Iterator[tuple[FocusService, int]]:
    """A real service on a free loopback port, started; closed on leaving."""
    service = FocusService(config)
    server = ApiServer(("127.0.0.1", 0), service)
    service.start()
    server.start()
    try:
        yield service, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        print(service.close()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--requests", type=int, default=1000, help="per endpoint and mode")
    parser.add_argument("--frame-size", type=int,
                        help="square frames (default: four of the bundle's feature patches)")
    parser.add_argument("--rate", type=float, default=2.0, help="lock steps per second")
    args = parser.parse_args()
    if not 1 <= args.requests <= MAX_REQUESTS:
        raise SystemExit(f"--requests: must be in [1, {MAX_REQUESTS}]")
    record = json.loads((args.bundle / RECORD_FILE).read_text())
    frame = args.frame_size or 2 * int(record["feature_spec"]["patch"])
    with tempfile.TemporaryDirectory() as logs:
        config = config_from_dict({
            "log_dir": logs, "model": {"bundle": str(args.bundle)},
            "sim": {"frame_size": frame, "drift_um_per_min": 1.0},
            "lock": {"rate_hz": args.rate}})
        with serving(config) as (_, port):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", "/api/lock/start", body=b"",
                               headers={"Content-Type": "application/json"})
            reply = connection.getresponse()
            if reply.status != 200:
                raise SystemExit(f"lock start: HTTP {reply.status} {reply.read().decode()}")
            connection.close()
            time.sleep(3 / args.rate)  # a few steps in, so the worker is busy
            before = status(port)
            start = time.monotonic()
            print(f"service on loopback, lock at {args.rate} Hz on {frame}² virtual frames, "
                  f"bundle {args.bundle.name}; {args.requests} requests each")
            for path in ("/api/status", "/metrics", "/api/log?since=0&limit=100"):
                for keep_alive in (True, False):
                    times = timed_requests(port, path, args.requests, keep_alive=keep_alive)
                    mode = "keep-alive" if keep_alive else "new conn. "
                    print(f"  GET {path:<28} {mode}  {percentiles(times)}")
            after = status(port)
            elapsed = time.monotonic() - start
            steps = after["counters"]["steps"] - before["counters"]["steps"]  # type: ignore[index]
            print(f"lock meanwhile: {steps} steps in {elapsed:.1f} s "
                  f"({steps / elapsed:.2f} Hz of {args.rate} Hz), state {after['state']}")


if __name__ == "__main__":
    main()
