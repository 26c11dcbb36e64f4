"""Benchmark: one simulated training stack, as issue 2 asks.

61 planes (±30 µm, 1 µm) of 1024x1024 frames under the paper preset's single autofocus LED and
its half annulus (19 LEDs), sparse cells, one thread. Goal: at most 20 s and under 1 GiB peak
memory. Run:  .venv/bin/python benchmarks/bench_sim.py [--size 1024] [--sample sparse-cells]
      [--oversample 1]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from controller.optics import preset
from controller.sim import make_sample, render_stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--sample", default="sparse-cells")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--oversample", type=int, default=1,
                        help="simulation grid points per camera pixel and axis")
    args = parser.parse_args()
    system = preset("paper")
    z = np.arange(-30.0, 30.5, 1.0)
    start, cpu_start = time.perf_counter(), time.process_time()
    k = args.oversample
    sample = make_sample(args.sample, (args.size * k, args.size * k), system.optics.pixel_um / k,
                         args.seed)
    made = time.perf_counter()
    stack = render_stack(sample, z, preset=system, seed=args.seed)
    done, cpu_done = time.perf_counter(), time.process_time()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    leds = sum(len(c.leds) for c in stack.channels)
    print(f"{args.sample} {args.size}x{args.size} (oversample {k}), {z.size} planes, {leds} LEDs "
          f"({', '.join(f'{c.name}: {len(c.leds)}' for c in stack.channels)})")
    print(f"sample {made - start:.2f} s, render {done - made:.2f} s, total {done - start:.2f} s "
          f"(goal <= 20 s); CPU time {cpu_done - cpu_start:.2f} s (fairer on a shared machine)")
    print(f"peak RSS {peak_mib:.0f} MiB (goal < 1024 MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
