"""Benchmark of the HTTP layer alone: the standard library's threading server as the service
runs it (controller/service/connections.py: bounded, timed) against a well-kept ASGI stack
(Starlette on uvicorn), both serving the same trivial JSON status route, each in a process of
its own on loopback. For the decision in docs/service.md ("Why the standard library's HTTP
server").

Measures, per server: resident memory idle and after the requests, p50/p99 latency of 1000
sequential GETs on one kept-alive connection and of 200 concurrent GETs (one connection each,
all started together), the import time of the stack, and for the ASGI stack its dependencies
and installed size (plain ``uvicorn`` and ``uvicorn[standard]``, whose C parts, uvloop and
httptools, are measured as a server of their own), and whether each has wheels for the Pi
(aarch64, CPython 3.11 and 3.13).

The ASGI side runs in a throwaway venv, never the project's: ``--asgi-python`` names its
python; without it one is made under the system temp folder (``pip install starlette
'uvicorn[standard]'``) and kept there for the next run.

Run:  .venv/bin/python benchmarks/bench_http_stack.py [--asgi-python PATH] [--requests 1000]
          [--concurrent 200]

This file is also each server: ``--serve stdlib|asgi|asgi-pure PORT`` (the ASGI ones under the
throwaway venv's python, so this file imports only the standard library at the top).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATUS = {"state": "locked", "reason": "in tolerance", "mode": "lock", "z_um": -0.1,
          "offset_um": 0.0, "healthy": True, "health": "ok"}
THROWAWAY_VENV = Path(tempfile.gettempdir()) / "focuslock-bench-asgi"
ASGI_PACKAGES = ("starlette", "uvicorn[standard]")
PI_WHEELS = [("manylinux2014_aarch64", version) for version in ("3.11", "3.13")]
IMPORTS = {"http.server": "import http.server",
           "http.server + connections.py": "import http.server, controller.service.connections",
           "starlette + uvicorn": "import starlette.applications, starlette.responses, uvicorn"}
MAX_REQUESTS = 20_000
WAIT_S = 30.0


# -- the servers (run by --serve in a process of their own) ------------------------------------

def serve_stdlib(port: int) -> None:
    from controller.service.connections import BoundedHTTPServer, DeadlineHandler

    body = json.dumps(STATUS).encode()

    class StatusHandler(DeadlineHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    # the shipped default of service.max_connections
    BoundedHTTPServer(("127.0.0.1", port), StatusHandler, max_connections=32).serve_forever()


def serve_asgi(port: int, *, pure: bool) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def status(request: Any) -> JSONResponse:
        return JSONResponse(STATUS)

    app = Starlette(routes=[Route("/api/status", status)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                loop="asyncio" if pure else "auto", http="h11" if pure else "auto")


# -- measuring ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(python: str, kind: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([python, __file__, "--serve", kind, str(port)], env=env, cwd=ROOT)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:  # a bare connect: "idle" means no request yet
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.5)  # let it settle after its first accept
            return process, port
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the {kind} server did not start")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmRSS in /proc")


def get(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/api/status")
    response = connection.getresponse()
    response.read()
    return response.status


def sequential(port: int, count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    times = []
    for _ in range(count):
        begin = time.perf_counter()
        if get(connection) != 200:
            raise SystemExit("a sequential GET was refused")
        times.append(time.perf_counter() - begin)
    connection.close()
    return times


def concurrent(port: int, count: int) -> tuple[list[float], dict[str, int]]:
    """``count`` clients, one connection each, released together; latencies of the 200s and
    how each ended."""
    gate = threading.Barrier(count)
    times: list[float] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    def client() -> None:
        gate.wait()
        begin = time.perf_counter()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
            outcome = str(get(connection))
            connection.close()
        except OSError as exc:
            outcome = type(exc).__name__
        with lock:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome == "200":
                times.append(time.perf_counter() - begin)

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times, outcomes


def percentiles(samples_s: list[float]) -> str:
    if not samples_s:
        return "none answered"
    ms = sorted(s * 1e3 for s in samples_s)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):6.2f} ms  p99 {p99:7.2f} ms"


def import_ms(python: str, statement: str, repeats: int = 7) -> float:
    """The median wall time of importing ``statement`` in a fresh python, less a bare start."""
    def run(code: str) -> float:
        begin = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        return time.perf_counter() - begin
    bare = statistics.median(run("pass") for _ in range(repeats))
    return (statistics.median(run(statement) for _ in range(repeats)) - bare) * 1e3


def measure(python: str, kind: str, requests: int, clients: int) -> None:
    process, port = start(python, kind)
    try:
        idle = rss_mb(process.pid)
        seq = sequential(port, requests)
        after = rss_mb(process.pid)
        together, outcomes = concurrent(port, clients)
        final = rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(WAIT_S)
    print(f"{kind:10s} RSS idle {idle:5.1f} MB, after {requests} requests {after:5.1f} MB, "
          f"after {clients} concurrent {final:5.1f} MB")
    print(f"{'':10s} {requests} sequential keep-alive: {percentiles(seq)}")
    print(f"{'':10s} {clients} concurrent: {percentiles(together)}  outcomes {outcomes}")


# -- the ASGI stack's footprint ---------------------------------------------------------------

FOOTPRINT = r"""
import json, sys
from importlib import metadata
from pip._vendor.packaging.requirements import Requirement

def closure(names, extras=()):
    seen, todo = {}, [(n, tuple(extras)) for n in names]
    while todo:
        name, wanted = todo.pop()
        dist = metadata.distribution(name)
        key = dist.metadata["Name"].lower()
        if key in seen:
            continue
        seen[key] = sum(f.size or 0 for f in dist.files or [])
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in
                                         (wanted or ("",))):
                todo.append((req.name, tuple(req.extras)))
    return seen

plain = closure(["starlette", "uvicorn"])
standard = closure(["starlette"]) | closure(["uvicorn"], ["standard"])
print(json.dumps({"plain": plain, "standard": standard}))
"""


def footprint(python: str) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = json.loads(subprocess.run(
        [python, "-c", FOOTPRINT], check=True, capture_output=True, text=True).stdout)
    return found


def pi_wheels(python: str) -> list[str]:
    """Whether pip finds a wheel of every package of ``uvicorn[standard]`` and Starlette for the
    Pi (no compiler there): one line per platform and Python."""
    lines = []
    for platform, version in PI_WHEELS:
        with tempfile.TemporaryDirectory() as target:
            done = subprocess.run(
                [python, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
                 "--only-binary=:all:", "--platform", platform, "--python-version", version,
                 "--target", target, "--report", "-", *ASGI_PACKAGES],
                capture_output=True, text=True)
        if done.returncode:
            lines.append(f"{platform} cp{version}: NOT all as wheels: "
                         f"{done.stderr.strip().splitlines()[-1:]}")
            continue
        report = json.loads(done.stdout)
        wheels = sorted(f"{item['metadata']['name']} {item['metadata']['version']}"
                        for item in report["install"]
                        if not item["download_info"]["url"].endswith("-none-any.whl"))
        lines.append(f"{platform} cp{version}: all as wheels; compiled: {', '.join(wheels)}")
    return lines


def throwaway_python() -> str:
    python = THROWAWAY_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(THROWAWAY_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *ASGI_PACKAGES],
                       check=True)
    return str(python)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asgi-python", help="python of a venv with starlette and "
                                              "uvicorn[standard] (default: a throwaway one)")
    parser.add_argument("--requests", type=int, default=1000, help="sequential GETs")
    parser.add_argument("--concurrent", type=int, default=200, help="concurrent GETs")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, port = args.serve[0], int(args.serve[1])
        if kind == "stdlib":
            serve_stdlib(port)
        else:
            serve_asgi(port, pure=kind == "asgi-pure")
        return
    if not 1 <= args.requests <= MAX_REQUESTS or not 1 <= args.concurrent <= 1000:
        raise SystemExit(f"--requests: in [1, {MAX_REQUESTS}]; --concurrent: in [1, 1000]")
    asgi = args.asgi_python or throwaway_python()
    print(f"{os.uname().machine}, {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    for python, kind in ((sys.executable, "stdlib"), (asgi, "asgi"), (asgi, "asgi-pure")):
        measure(python, kind, args.requests, args.concurrent)
    print("import: " + ", ".join(
        f"{name} {import_ms(asgi if 'uvicorn' in name else sys.executable, code):.0f} ms"
        for name, code in IMPORTS.items()))
    for name, dists in footprint(asgi).items():
        print(f"uvicorn ({name}) + starlette: {len(dists)} distributions, "
              f"{sum(dists.values()) / 1e6:.1f} MB installed: {', '.join(sorted(dists))}")
    for line in pi_wheels(asgi):
        print(line)


if __name__ == "__main__":
    main()
