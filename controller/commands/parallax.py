"""``focuslock parallax``: calibrate the parallax cue on a collected focal stack
(docs/parallax.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from controller.commands.arguments import bounded_int

PATCH = bounded_int(64, 4096)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "parallax", help="the parallax cue: calibrate it on a focal stack",
        description="The signed defocus from two views under two LED angles (docs/parallax.md).")
    commands = parser.add_subparsers(dest="parallax_command", metavar="PARALLAXCOMMAND",
                                     required=True)
    calibrate = commands.add_parser(
        "calibrate", help="fit µm per pixel and the offset on a collected stack",
        description="Measure the views' shift at every plane of a stack collected with a preset "
                    "that has parallax views (focuslock collect, focuslock sim stack), against "
                    "the focus its ground-truth channel gives, and write the fitted calibration.")
    calibrate.add_argument("stack", type=Path, metavar="STACK", help="focal-stack file")
    calibrate.add_argument("--out", type=Path, required=True, metavar="FILE",
                           help="calibration file to write (JSON)")
    calibrate.add_argument("--patch", type=PATCH, default=512,
                           help="patch side in camera pixels, as the features' (default: "
                                "%(default)s)")
    calibrate.set_defaults(func=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    from controller.files import require_writable_dir
    from controller.parallax import ParallaxCalibration, ParallaxError
    from controller.stackio import read_stack

    if args.out.is_dir():
        raise ParallaxError(f"{args.out}: is a folder; give a file name in it")
    require_writable_dir(args.out.parent)
    stack = read_stack(args.stack)
    calibration = ParallaxCalibration.fit(stack, source=args.stack.name, patch=args.patch)
    path = calibration.save(args.out)
    low, high = calibration.defocus_range_um
    leak = calibration.leak
    print(f"{args.stack}: {calibration.planes} planes, defocus {low:+.1f}..{high:+.1f} µm")
    print(f"  defocus_um = {calibration.um_per_px:+.5f} µm/px x shift_px "
          f"{calibration.offset_um:+.3f} µm")
    colour = f", colour leak unmixed {leak[0]:.3f}" if calibration.views.one_frame else ""
    print(f"  rms residual {calibration.residual_um:.3f} µm{colour}")
    print(f"wrote {path}")
    return 0
