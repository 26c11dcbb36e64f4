"""Benchmark: the dataset build of issue 11 against its goals.

1. Bytes stored per 61-plane training stack (goal <= 1 MB; a stack as OME-TIFF images: about
   64 MB): the store of a build of the default recipe (512² frames, ±30 µm in 1 µm steps, the
   default feature spec, with the mirrored planes' features as ``train --mirror`` needs),
   all its files (arrays, records, index, metadata) divided by its finished stacks.
2. Throughput with 1 and with 2 local worker processes (fresh stores, the same stacks): stacks
   per minute from the first finished stack to the last (the cluster's start-up, a few
   seconds once per build, is reported apart). Goal: 2 workers >= 1.8x one.
3. A 10,000-stack build of 512² frames on this machine at the 2-worker rate (goal <= 8 h), and
   the peak resident memory of each worker process (goal <= 1.5 GB), read inside the workers at
   the end of the build.

The machine's load average is printed with the figures: other work on the 2 shared cores slows
both builds.

Run:  .venv/bin/python benchmarks/bench_dataset.py [--stacks 12] [--size 512] [--kinds LIST]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from controller.features import FeatureSpec
from training.build import BuildReport, SimulatedPlan, build_dataset
from training.cluster import ClusterChoice

GOAL_STACKS = 10_000


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def usage() -> tuple[float, float]:
    """This process's peak resident memory (MB) and the CPU time it used (s)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_maxrss / 1024, r.ru_utime + r.ru_stime


def timed_build(out: Path, plan: SimulatedPlan, workers: int) -> dict[str, Any]:
    """Build with ``workers`` local processes; rate between the first and last stack, each
    worker's peak memory, and the CPU time the workers used per stack."""
    times: list[float] = []
    workers_usage: dict[str, tuple[float, float]] = {}

    def on_stack(report: BuildReport) -> None:
        times.append(time.monotonic())
        if report.finished == report.to_do:  # the cluster is still up: ask its workers
            from distributed import get_client

            workers_usage.update(get_client().run(usage))

    started = time.monotonic()
    report = build_dataset(out, plan, FeatureSpec(), mirror=True,
                           cluster=ClusterChoice(workers=workers), on_stack=on_stack)
    steady = (len(times) - 1) / (times[-1] - times[0]) * 60 if len(times) > 1 else 0.0
    wall = time.monotonic() - started
    cpu = sum(c for _, c in workers_usage.values())
    return {"report": report, "per_minute": steady, "startup_s": times[0] - started,
            "wall_s": wall, "peaks_mb": sorted(m for m, _ in workers_usage.values()),
            "cpu_per_stack_s": cpu / report.finished, "cores_used": cpu / wall}


def store_bytes(path: Path) -> tuple[int, int]:
    """Apparent size and space on disk (whole blocks) of every file of the store."""
    files = [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files), sum(f.stat().st_blocks * 512 for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=12, help="stacks per build (default 12)")
    parser.add_argument("--size", type=int, default=512, help="frame side (default 512)")
    parser.add_argument("--kinds", default="sparse-cells,dense-cells")
    args = parser.parse_args()
    plan = SimulatedPlan(tuple(args.kinds.split(",")), args.stacks, seed=500_000,
                         size=args.size)
    print(f"{args.stacks} stacks of {args.size}² x {plan.z_um().size} planes ({args.kinds}), "
          f"load average before: {os.getloadavg()[0]:.2f}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            out = Path(tmp) / f"workers-{workers}.zarr"
            results[workers] = r = timed_build(out, plan, workers)
            report = r["report"]
            print(f"{workers} worker(s): {r['per_minute']:.2f} stacks/min from the first "
                  f"stack to the last; {report.finished} stacks ({len(report.skipped)} "
                  f"skipped) in {r['wall_s']:.1f} s, the first after {r['startup_s']:.1f} s; "
                  f"workers' CPU {r['cpu_per_stack_s']:.2f} s per stack, {r['cores_used']:.2f} "
                  f"cores busy on average; peak memory per worker "
                  f"{', '.join(f'{m:.0f}' for m in r['peaks_mb'])} MB; load average "
                  f"{os.getloadavg()[0]:.2f}")
        apparent, on_disk = store_bytes(out)
        done = report.counts["done"]
    one, two = results[1]["per_minute"], results[2]["per_minute"]
    print(f"speed-up of 2 workers over 1: {two / one:.2f}x (goal >= 1.8x)")
    print(f"bytes per stack (with mirrored features): {apparent / done / 1e3:.0f} kB of files, "
          f"{on_disk / done / 1e3:.0f} kB on disk (goal <= 1000 kB)")
    hours = GOAL_STACKS / two / 60
    idle = GOAL_STACKS * results[2]["cpu_per_stack_s"] / os.cpu_count() / 3600
    worst = max(results[2]["peaks_mb"])
    print(f"{GOAL_STACKS} stacks at the measured 2-worker rate: {hours:.1f} h (goal <= 8 h); "
          f"with every core free for the build (the workers' CPU time per stack over "
          f"{os.cpu_count()} cores): {idle:.1f} h; peak memory per worker {worst:.0f} MB (goal "
          f"<= 1536 MB); this process {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
