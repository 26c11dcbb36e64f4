"""Benchmark: the alignment check from one frame (issue 17: a 0.03 NA misplacement found within
0.005 NA), on the virtual microscope at the box's frame size.

For each LED misplacement (±0.03 NA along x and y, and none) and each defocus, one frame of the
paper preset's rig (``[sim] led_shift_na_x/y``) is read by ``check_alignment`` as
``GET /api/alignment`` reads it; the error is the distance between the fitted and the true
misplacement, in NA.

Run:  .venv/bin/python benchmarks/bench_alignment.py [--size 2048]
"""

from __future__ import annotations

import argparse
import math
import time

from controller.alignment import check_alignment
from controller.config import config_from_dict
from controller.hardware.rig import open_rig

GOAL_NA = 0.005
CASES = (((0.03, 0.0), "sparse-cells"), ((-0.03, 0.0), "dense-cells"),
         ((0.0, 0.03), "dense-cells"), ((0.0, -0.03), "sparse-cells"), ((0.0, 0.0), "dense-cells"))
DEFOCI_UM = (-15.0, 5.0, 25.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="frame side (default 2048)")
    args = parser.parse_args(argv)
    errors, seconds = [], []
    for shift, sample in CASES:
        config = config_from_dict({"sim": {"frame_size": args.size, "sample": sample, "seed": 3,
                                           "focus_z_um": 0.0, "led_shift_na_x": shift[0],
                                           "led_shift_na_y": shift[1]}})
        rig = open_rig(config)
        try:
            rig.illuminator.show(rig.preset.autofocus)
            for defocus in DEFOCI_UM:
                rig.drive.move_to(-defocus)  # defocus = z_focus - z
                frame = rig.camera.capture(not_before=rig.clock.now()).image
                start = time.perf_counter()
                result = check_alignment([frame], rig.preset.optics, rig.preset.autofocus, 60.0)
                seconds.append(time.perf_counter() - start)
                error = math.hypot(result.offset_na[0] - shift[0],
                                   result.offset_na[1] - shift[1])
                errors.append(error)
                print(f"{sample:<13} LED off by ({shift[0]:+.2f}, {shift[1]:+.2f}) NA, defocus "
                      f"{defocus:+.0f} µm: error {error:.4f} NA", flush=True)
        finally:
            rig.close()
    worst = max(errors)
    print(f"one {args.size}² frame: error {min(errors):.4f}–{worst:.4f} NA over {len(errors)} "
          f"cases (goal ≤ {GOAL_NA} NA: {'met' if worst <= GOAL_NA else 'MISSED'}); fit "
          f"{min(seconds):.1f}–{max(seconds):.1f} s")


if __name__ == "__main__":
    main()
