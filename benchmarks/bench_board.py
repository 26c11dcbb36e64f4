"""Benchmark: the focus board link and the firmware's ramp generator, as issue 4 asks.

1. Command round trip: STATUS and MOVE (a zero-length move) through the host driver, the pty
   and the real firmware under the MicroPython unix port. Median, 95th and 99th percentile.
2. Ramp generator under MicroPython: how many ramp evaluations (``Ramp.steps_at``) the firmware's
   own interpreter does per second. Software stepping, with one evaluation per step, could
   sustain that many steps/s. The RP2040 layer evaluates the ramp once per 1 ms chunk, so its
   cost is independent of the step rate.
3. The simulated layer under load: one long move at the simulator's top step rate. It checks
   that the planned and observed durations agree and that the step count is exact, and it
   gives the firmware process's CPU time during the move, which shows that modelled motion
   does not busy-wait.

Run:  .venv/bin/python benchmarks/bench_board.py [--samples 2000] [--steps 400000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from controller.hardware import protocol
from controller.hardware.board import FocusBoard, FocusBoardSettings
from controller.hardware.box import serial_opener
from controller.sim.board import (
    FIRMWARE_DIR,
    SimBoardSettings,
    SimulatedBoard,
    micropython_command,
)

RAMP_SCRIPT = """
import sys, time
sys.path.insert(0, {firmware!r})
from focusboard.motion import Ramp
ramp = Ramp(10**7, 100000, 10**6)
n = {n}
t0 = time.ticks_us()
total = 0
for k in range(n):
    total += ramp.steps_at(k * 1e-5)
dt = time.ticks_diff(time.ticks_us(), t0)
print(n * 1e6 / dt)
"""


def percentiles(samples_s: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples_s)
    q = statistics.quantiles(ms, n=100)
    return f"median {statistics.median(ms):.3f} ms, p95 {q[94]:.3f} ms, p99 {q[98]:.3f} ms"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def round_trips(drive: FocusBoard, samples: int) -> None:
    for command, payload, name in (
        (protocol.STATUS, b"", "STATUS"),
        (protocol.MOVE, struct.pack(protocol.MOVE_REQUEST, 0, 0, 0), "MOVE (0 steps)"),
    ):
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            drive.link.call(command, payload)
            times.append(time.perf_counter() - start)
        print(f"round trip {name:15s} {percentiles(times)}  ({samples} commands)")


def ramp_rate(evaluations: int) -> None:
    script = RAMP_SCRIPT.format(firmware=str(FIRMWARE_DIR), n=evaluations)
    result = subprocess.run([*micropython_command(), "-c", script], capture_output=True,
                            text=True, check=True)
    rate = float(result.stdout.strip())
    print(f"ramp evaluations under MicroPython: {rate:,.0f} per s "
          f"(software stepping ceiling {rate:,.0f} steps/s; one evaluation per 1 ms chunk "
          f"costs {100 * 1000 / rate:.2f} % of a core at any step rate)")


def long_move(sim: SimulatedBoard, drive: FocusBoard, steps: int, speed: int) -> None:
    drive.set_position_um(drive.travel_um[0])
    pid = sim.pid
    assert pid is not None
    before_steps, cpu_before = sim.motor_steps(), cpu_seconds(pid)
    start = time.perf_counter()
    drive.move_by(steps / drive.settings.steps_per_um)
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(pid) - cpu_before
    moved = sim.motor_steps() - before_steps
    planned = steps / speed + speed / (drive.settings.accel_um_s2 * drive.settings.steps_per_um)
    print(f"simulated move of {steps} steps at {speed} steps/s: planned {planned:.3f} s, "
          f"observed {elapsed:.3f} s (includes the driver's status polling), "
          f"{moved} steps arrived; firmware CPU {cpu:.3f} s "
          f"({100 * cpu / elapsed:.1f} % of one core, status polls included)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2000, help="round trips per command")
    parser.add_argument("--evaluations", type=int, default=200000, help="ramp evaluations")
    parser.add_argument("--steps", type=int, default=400000, help="length of the long move")
    args = parser.parse_args()
    speed = 100000
    with tempfile.TemporaryDirectory() as workdir:
        sim_settings = SimBoardSettings(max_speed=speed, max_accel=4000000)
        with SimulatedBoard(Path(workdir), sim_settings) as sim:
            host = FocusBoardSettings(steps_per_um=10, travel_um=(-100000.0, 100000.0),
                                      speed_um_s=speed / 10, accel_um_s2=400000.0, settle_s=0.0)
            with FocusBoard(serial_opener(sim.port), host) as drive:
                drive.set_position_um(0.0)
                round_trips(drive, args.samples)
                long_move(sim, drive, args.steps, speed)
    ramp_rate(args.evaluations)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
