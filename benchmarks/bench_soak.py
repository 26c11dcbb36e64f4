"""Soak of the real `focuslock serve` on the digital twin, under faults injected on a schedule.

The service runs as a subprocess, exactly as systemd starts it, on the twin (the virtual camera
and optics, the real firmware under MicroPython behind a pty driving the focus; the bundled
model reads the frames) with the lock started at boot. This script plays the lab around it:
it unplugs and replugs the board, kills the camera for a while (timeouts), takes the sample out
of the field of view, knocks the focus, floods the API with loopback clients, and at the end
sends SIGTERM while the lock is moving the focus. After a fault it recovers as an operator
would (the drive's position given back over the API, the lock started again), through the API
only. The faults and the truth go through the twin's fault line (controller/sim/fault_line.py).

It reports (a table, and a JSON file): the service's resident memory every 10 s and its slope
(least squares, the first 2 minutes dropped; and from the second round of faults on, once each
fault's one-off allocations are behind), every fault and whether the service reported it,
moves made without a trusted reading (from the run log: must be 0), run-log records lost (must
be 0), the lock's RMS error against the truth while locked, and how the SIGTERM went.

Run:  nice .venv/bin/python benchmarks/bench_soak.py [--minutes 20] [--out soak.json]
      nice .venv/bin/python benchmarks/bench_soak.py --minutes 4     (a short try)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import http.client
import itertools
import json
import math
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.sim.fault_line import SOCKET_NAME, TWIN_DIR_ENV, send

ROOT = Path(__file__).resolve().parents[1]
MEMORY_EVERY_S = 10.0
MEMORY_WARMUP_S = 120.0  # dropped from the slope: imports, first allocations, caches filling
FAULT_KINDS = ("unplug", "camera-timeout", "blank-field", "flood", "knock")
FAULTS_PER_10_MIN = len(FAULT_KINDS)
DETECT_TIMEOUT_S = 90.0  # a board unplugged mid-step takes ~30 s to report (docs/service.md)
RECOVER_TIMEOUT_S = 90.0
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0  # TimeoutStopSec is 30 s; more, to see what happens


# -- the service --------------------------------------------------------------------------------

@dataclass
class Api:
    """JSON over loopback HTTP, with the service's bearer token."""

    port: int
    token: str

    def call(self, method: str, path: str, body: Any = None,
             timeout_s: float = 30.0) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        payload = b"" if body is None and method != "GET" else (
            None if body is None else json.dumps(body).encode())
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data.decode(errors="replace")

    def status(self) -> dict[str, Any]:
        code, body = self.call("GET", "/api/status")
        if code != 200 or not isinstance(body, dict):
            raise RuntimeError(f"GET /api/status: HTTP {code}: {body}")
        return body

    def wait_for(self, condition: Callable[[dict[str, Any]], bool],
                 timeout_s: float) -> dict[str, Any] | None:
        """The first status that meets ``condition``, or None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if condition(status):
                return status
            time.sleep(0.25)
        return None


def write_config(folder: Path, frame_size: int, rate_hz: float) -> tuple[Path, str]:
    """The soak's config (the twin, the lock from boot, a slow drift to follow, an API token as
    the installer makes one) and its token."""
    token = secrets.token_urlsafe(32)
    token_file = folder / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    lines = [f'log_dir = "{folder / "runs"}"', "[board]", 'backend = "firmware-sim"',
             "[sim]", f"frame_size = {frame_size}", "drift_um_per_min = 0.3",
             "random_walk_um_per_sqrt_s = 0.01", "[lock]", f"rate_hz = {rate_hz}",
             "[service]", "port = 0", "autostart_lock = true", f'token_file = "{token_file}"']
    path = folder / "soak.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, token


@contextlib.contextmanager
def running_service(folder: Path, config: Path) -> Iterator[tuple[subprocess.Popen[bytes], int,
                                                                   Path]]:
    """`focuslock serve` as a subprocess on the twin; (process, port, its stderr log)."""
    twin_dir = folder / "twin"
    twin_dir.mkdir()
    log_path = folder / "serve.log"
    env = {**os.environ, TWIN_DIR_ENV: str(twin_dir),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "controller.cli", "serve",
                                    "--config", str(config)], stdout=log, stderr=log, env=env)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not (found := re.search(rb"listening on http://127\.0\.0\.1:(\d+)/",
                                      log_path.read_bytes())):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"focuslock serve did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield process, int(found.group(1)), log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


# -- watching it --------------------------------------------------------------------------------

@dataclass
class Watch:
    """What a thread samples while the soak runs: memory, the lock against the truth, the log."""

    api: Api
    pid: int
    fault_line: Path
    started: float
    memory: list[tuple[float, float]] = field(default_factory=list)  # (s, MB)
    locked_errors_um: list[float] = field(default_factory=list)
    last_seq: int = 0
    seq_gaps: int = 0
    missed: int = 0
    last_z_um: float | None = None
    # set from a fault's injection until the lock is back: the truth of a frame rendered after
    # a knock may meet a status that still says locked, which would count the knock as lock error
    disturbed: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        next_memory = 0.0
        seen_step = -1
        while not self.stop.wait(1.0):
            elapsed = time.monotonic() - self.started
            if elapsed >= next_memory:
                self.memory.append((elapsed, resident_mb(self.pid)))
                next_memory += MEMORY_EVERY_S
            with contextlib.suppress(OSError, RuntimeError, http.client.HTTPException):
                status = self.api.status()
                if status["z_um"] is not None and status["state"] != "fault":
                    self.last_z_um = status["z_um"]
                step = status["last_step"]
                quiet = not self.disturbed.is_set()
                if quiet and status["state"] == "locked" and step and step["seq"] != seen_step:
                    seen_step = step["seq"]
                    truth = send(self.fault_line, "truth")["defocus_um"]
                    if truth is not None and not self.disturbed.is_set():
                        # the lock holds z_focus + offset: its error is -(defocus + offset)
                        self.locked_errors_um.append(-(truth + status["offset_um"]))
                self.follow_log()

    def follow_log(self) -> None:
        """Read the API's step log on from the last seq: every seq must come, none be missed."""
        more = True
        while more:
            code, page = self.api.call("GET", f"/api/log?since={self.last_seq}&limit=500")
            if code != 200:
                return
            for record in page["records"]:
                self.seq_gaps += record["seq"] != self.last_seq + 1
                self.last_seq = record["seq"]
            self.missed += page["missed"]
            more = page["more"]


# -- the faults ---------------------------------------------------------------------------------

@dataclass
class FaultResult:
    kind: str
    at_s: float
    reported: bool
    how: str
    recovered_s: float | None  # from the fault's end to locked again; None: not within the time
    detail: dict[str, Any] = field(default_factory=dict)


class Lab:
    """Injects one fault at a time and recovers from it through the API, as an operator."""

    def __init__(self, api: Api, watch: Watch, flood_clients: int, flood_s: float) -> None:
        self.api = api
        self.watch = watch
        self.flood_clients = flood_clients
        self.flood_s = flood_s

    def twin(self, command: str) -> None:
        send(self.watch.fault_line, command)

    def inject(self, kind: str) -> FaultResult:
        at = round(time.monotonic() - self.watch.started, 1)
        self.watch.disturbed.set()
        try:
            result: FaultResult = getattr(self, kind.replace("-", "_"))(at)
        finally:
            self.watch.disturbed.clear()
        return result

    def unplug(self, at: float) -> FaultResult:
        """The USB cable out for 5 s: a fault naming the lost board; the operator gives the
        drive its position back (the last z the status showed) and starts the lock again."""
        z_before = self.watch.last_z_um
        self.twin("unplug")
        time.sleep(5)
        self.twin("replug")
        fault = self.api.wait_for(lambda s: s["state"] == "fault", DETECT_TIMEOUT_S)
        health = self.api.call("GET", "/api/health")[0]
        ended = time.monotonic()
        if fault is not None:
            self.api.wait_for(lambda s: s["mode"] == "idle", RECOVER_TIMEOUT_S)
            code, _ = self.api.call("PUT", "/api/drive/position", {"z_um": z_before or 0.0})
            if code != 200:  # the board never lost its reference: nothing to give back
                self.api.call("POST", "/api/drive/clear-fault")
        return self._result("unplug", at, fault, health, ended, restart=fault is not None)

    def camera_timeout(self, at: float) -> FaultResult:
        """No frame for 10 s: a CameraTimeout fault; the lock is started again afterwards."""
        self.twin("camera-dead")
        fault = self.api.wait_for(lambda s: s["state"] == "fault", DETECT_TIMEOUT_S)
        health = self.api.call("GET", "/api/health")[0]
        time.sleep(10)
        self.twin("camera-alive")
        ended = time.monotonic()
        return self._result("camera-timeout", at, fault, health, ended, restart=True)

    def blank_field(self, at: float) -> FaultResult:
        """The sample out of the field of view for 30 s: readings rejected (empty field), the
        lock lost and not moving; it resumes by itself when the sample is back."""
        before = self.api.status()["counters"]["rejected"].get("empty", 0)
        self.twin("empty-field")
        lost = self.api.wait_for(lambda s: s["state"] == "lost", DETECT_TIMEOUT_S)
        time.sleep(max(0.0, 30 - (time.monotonic() - self.watch.started - at)))
        rejected = self.api.status()["counters"]["rejected"].get("empty", 0) - before
        self.twin("sample-back")
        ended = time.monotonic()
        result = self._result("blank-field", at, lost, 200, ended, restart=False)
        result.detail["empty_field_rejections"] = rejected
        return result

    def knock(self, at: float) -> FaultResult:
        """The focus jumps 8 µm: the lock sees the error and corrects it."""
        self.twin("knock 8")
        left = self.api.wait_for(lambda s: s["state"] != "locked", 30)
        return self._result("knock", at, left, 200, time.monotonic(), restart=False)

    def flood(self, at: float) -> FaultResult:
        """``flood_clients`` loopback clients, each a new connection per GET /api/status, for
        ``flood_s``: the lock must keep its rate and the service its health."""
        steps_before = self.api.status()["counters"]["steps"]
        started = time.monotonic()
        outcomes: list[tuple[bool, float]] = []
        failures: collections.Counter[str] = collections.Counter()

        def client() -> None:
            while time.monotonic() - started < self.flood_s:
                begun = time.perf_counter()
                try:
                    code = self.api.call("GET", "/api/status", timeout_s=10)[0]
                    failures.update([f"HTTP {code}"] if code != 200 else [])
                except (OSError, http.client.HTTPException) as exc:
                    code = 0
                    failures[type(exc).__name__] += 1
                outcomes.append((code == 200, time.perf_counter() - begun))

        threads = [threading.Thread(target=client) for _ in range(self.flood_clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        took = time.monotonic() - started
        status = self.api.status()
        health = self.api.call("GET", "/api/health")[0]
        latencies_ms = sorted(s * 1e3 for ok, s in outcomes if ok)
        failed = sum(not ok for ok, _ in outcomes)
        detail = {"requests": len(outcomes), "failed": failed, "failures": dict(failures),
                  "p50_ms": round(statistics.median(latencies_ms), 1) if latencies_ms else None,
                  "p99_ms": round(latencies_ms[int(0.99 * (len(latencies_ms) - 1))], 1)
                  if latencies_ms else None,
                  "lock_hz": round((status["counters"]["steps"] - steps_before) / took, 2)}
        return FaultResult("flood", at, health == 200,
                           f"health {health} after the flood, state {status['state']}", 0.0,
                           detail)

    def _result(self, kind: str, at: float, seen: dict[str, Any] | None, health: int,
                ended: float, *, restart: bool) -> FaultResult:
        how = f"{seen['state']}: {seen['reason']}; health {health}" if seen else "not reported"
        if restart:
            self.start_lock()
        locked = self.api.wait_for(lambda s: s["state"] == "locked", RECOVER_TIMEOUT_S)
        recovered = None if locked is None else round(time.monotonic() - ended, 1)
        return FaultResult(kind, at, seen is not None, how, recovered)

    def start_lock(self) -> None:
        """What the operator does once the cause is gone: start the lock, again each second
        while the service still refuses (the fault may still be settling)."""
        deadline = time.monotonic() + RECOVER_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.api.call("POST", "/api/lock/start")[0] in (200, 409):  # 409: it runs
                return
            time.sleep(1.0)

    def sigterm_during_a_move(self, process: subprocess.Popen[bytes],
                              twin_dir: Path, log_path: Path) -> dict[str, Any]:
        """Knock the focus 20 µm and send SIGTERM as soon as the lock has moved: the service
        must exit 0 with the drive stopped and the LEDs off (the board's last published state)."""
        seq = self.api.status()["counters"]["moves"]
        self.twin("knock 20")
        moving = self.api.wait_for(lambda s: s["counters"]["moves"] > seq, 30)
        board_at_signal = send(self.watch.fault_line, "truth")["board"]
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        board = json.loads((twin_dir / "board-state.json").read_text())
        summary = [line for line in log_path.read_text().splitlines() if "stopped:" in line]
        return {"moves_seen_before_signal": moving is not None,
                "state_at_signal": moving["state"] if moving else None,
                "board_moving_at_signal": board_at_signal.get("moving"),
                "exit_code": code, "board_moving_after": board.get("moving"),
                "board_leds_after": board.get("leds"),
                "service_said": summary[-1].split(": ", 1)[-1] if summary else None,
                "ok": code == 0 and not board.get("moving") and not board.get("leds")}


def schedule(duration_s: float) -> list[tuple[float, str]]:
    """The faults, in turn, evenly spaced from 2 minutes (or a tenth of a short run) to a
    minute before the end (kept for the SIGTERM)."""
    count = max(len(FAULT_KINDS), round(duration_s / 600 * FAULTS_PER_10_MIN))
    first = min(MEMORY_WARMUP_S, duration_s / 10)
    spacing = (duration_s - 60 - first) / count
    return [(first + i * spacing, FAULT_KINDS[i % len(FAULT_KINDS)]) for i in range(count)]


# -- the run log --------------------------------------------------------------------------------

def audit_run_log(runs: Path) -> dict[str, int]:
    """Moves made without a trusted reading, and records missing from steps.jsonl (each run's
    steps count 1, 2, 3, ...)."""
    def age(path: Path) -> tuple[str, int]:  # steps.jsonl.2 before .1 before steps.jsonl
        rotation = path.name.removeprefix("steps.jsonl").lstrip(".")
        return path.parent.name, -int(rotation or 0)

    files = sorted(runs.glob("serve-*/steps.jsonl*"), key=age)
    records = [json.loads(line) for path in files for line in path.read_text().splitlines()]
    untrusted_moves = sum(1 for r in records if r["move_um"] and (
        r["rejected"] or (r["defocus_um"] is None and r["distance_um"] is None)))
    step_gaps = sum(1 for before, after in itertools.pairwise(records)
                    if after["step"] not in (1, before["step"] + 1))
    return {"records": len(records), "untrusted_moves": untrusted_moves,
            "step_gaps": step_gaps}


def slope_mb_per_hour(samples: list[tuple[float, float]], drop_s: float) -> float | None:
    kept = [(t / 3600, mb) for t, mb in samples if t >= drop_s]
    if len(kept) < 3:
        return None
    return round(statistics.linear_regression([t for t, _ in kept],
                                              [mb for _, mb in kept]).slope, 2)


# -- the soak -----------------------------------------------------------------------------------

def soak(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    duration_s = args.minutes * 60
    config, token = write_config(folder, args.frame_size, args.rate)
    with running_service(folder, config) as (process, port, log_path):
        api = Api(port, token)
        started = time.monotonic()
        watch = Watch(api, process.pid, folder / "twin" / SOCKET_NAME, started)
        watcher = threading.Thread(target=watch.run, name="soak-watch", daemon=True)
        watcher.start()
        lab = Lab(api, watch, args.flood_clients, args.flood_s)
        if api.wait_for(lambda s: s["state"] == "locked", STARTUP_TIMEOUT_S) is None:
            raise SystemExit(f"the lock never locked:\n{json.dumps(api.status(), indent=1)}")
        faults = []
        plan = schedule(duration_s)
        for at, kind in plan:
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            faults.append(lab.inject(kind))
            print(f"  {faults[-1].at_s:7.1f} s  {kind:15s} {faults[-1].how}", flush=True)
        time.sleep(max(0.0, duration_s - (time.monotonic() - started)))
        final = api.status()
        watch.follow_log()
        watch.stop.set()
        watcher.join()
        stop = lab.sigterm_during_a_move(process, folder / "twin", log_path)
        elapsed = time.monotonic() - started
    audit = audit_run_log(folder / "runs")
    errors = watch.locked_errors_um
    drop = min(MEMORY_WARMUP_S, duration_s / 4)
    # Each fault's first time may allocate for good (the twin renders an empty field with an
    # imager of its own); from the second round on, growth is what a long run would see.
    second_round = plan[len(FAULT_KINDS)][0] if len(plan) > len(FAULT_KINDS) else None
    return {
        "minutes": round(elapsed / 60, 2), "frame_size": args.frame_size, "rate_hz": args.rate,
        "memory_mb": {"first": watch.memory[0][1], "last": watch.memory[-1][1],
                      "max": max(mb for _, mb in watch.memory),
                      "slope_mb_per_hour": slope_mb_per_hour(watch.memory, drop),
                      "dropped_first_s": drop,
                      "slope_from_second_round_mb_per_hour": None if second_round is None
                      else slope_mb_per_hour(watch.memory, second_round),
                      "second_round_from_s": second_round, "samples": watch.memory},
        "faults": [dataclasses.asdict(f) for f in faults],
        "untrusted_moves": audit["untrusted_moves"],
        "records": {"run_log": audit["records"], "api_last_seq": watch.last_seq,
                    "lost": max(0, watch.last_seq - audit["records"]) + audit["step_gaps"]
                    + watch.seq_gaps + watch.missed,
                    "api_seq_gaps": watch.seq_gaps, "api_missed": watch.missed,
                    "run_log_step_gaps": audit["step_gaps"]},
        "lock": {"locked_samples": len(errors),
                 "rms_um": round(math.sqrt(statistics.fmean(e * e for e in errors)), 3)
                 if errors else None,
                 "max_abs_um": round(max(map(abs, errors)), 3) if errors else None,
                 "counters": final["counters"]},
        "sigterm": stop,
    }


def print_report(report: dict[str, Any]) -> None:
    memory, records, lock = report["memory_mb"], report["records"], report["lock"]
    print(f"\nsoak: {report['minutes']} min of `focuslock serve` on the twin "
          f"({report['frame_size']}² frames, lock at {report['rate_hz']} Hz)")
    print(f"{'fault':15s} {'at s':>7s}  reported  {'re-locked after':>15s}  how")
    for fault in report["faults"]:
        again = "-" if fault["recovered_s"] is None else f"{fault['recovered_s']:.1f} s"
        print(f"{fault['kind']:15s} {fault['at_s']:7.1f}  {'yes' if fault['reported'] else 'NO':8s}"
              f"  {again:>15s}  {fault['how']}"
              + (f"  {fault['detail']}" if fault["detail"] else ""))
    print(f"resident memory: {memory['first']:.1f} -> {memory['last']:.1f} MB (max "
          f"{memory['max']:.1f}), slope {memory['slope_mb_per_hour']} MB/hour (first "
          f"{memory['dropped_first_s']:.0f} s dropped); from the second round of faults on "
          f"({memory['second_round_from_s']} s): "
          f"{memory['slope_from_second_round_mb_per_hour']} MB/hour")
    print(f"moves without a trusted reading: {report['untrusted_moves']}")
    print(f"run-log records lost: {records['lost']} ({records['run_log']} in steps.jsonl, "
          f"API seq up to {records['api_last_seq']})")
    print(f"lock RMS vs truth while locked (no fault under way): {lock['rms_um']} µm over "
          f"{lock['locked_samples']} samples (max |error| {lock['max_abs_um']} µm)")
    stop = report["sigterm"]
    print(f"SIGTERM during a move: exit {stop['exit_code']}, board moving "
          f"{stop['board_moving_after']}, LEDs {stop['board_leds_after']}: "
          f"{'OK' if stop['ok'] else 'FAILED'} ({stop['service_said']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="real minutes (>= 3)")
    parser.add_argument("--out", type=Path, default=Path("soak.json"), help="the JSON report")
    parser.add_argument("--frame-size", type=int, default=1024,
                        help="square frames; the bundled model needs four 512² patches")
    parser.add_argument("--rate", type=float, default=2.0, help="lock steps per second")
    parser.add_argument("--flood-clients", type=int, default=50)
    parser.add_argument("--flood-s", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs)")
    args = parser.parse_args()
    if not 3 <= args.minutes <= 24 * 60:
        raise SystemExit("--minutes: must be in [3, 1440]")
    if not 1 <= args.flood_clients <= 200 or not 0 < args.flood_s <= 60:
        raise SystemExit("--flood-clients: 1..200, --flood-s: up to 60")
    folder = Path(tempfile.mkdtemp(prefix="focuslock-soak-"))
    try:
        report = soak(args, folder)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"run folder: {folder}")
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print_report(report)
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
