"""``focuslock design-illumination``: the command of training/design_illumination.py
(docs/design-illumination.md).

Registered by training/commands.py without importing the simulator, Dask or Zarr: the box's
``focuslock`` loads every command's parser, and must not load those.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "design-illumination",
        help="recommend autofocus LEDs for a microscope from its optics file",
        description="Run a compact single-LED NA sweep and a multi-LED pattern comparison on "
                    "the virtual microscope with the optics and LEDs of --optics (TOML, "
                    "docs/design-illumination.md) and the sample family, and recommend a "
                    "pattern with its expected RMSE and the exposure it needs. Writes "
                    "design.md, design.json and design.png into --out.")
    p.add_argument("--optics", type=Path, required=True, metavar="FILE",
                   help="optics file: [optics] and [leds] (an array or candidate NAs)")
    p.add_argument("--sample", default="cells", metavar="FAMILY",
                   help="sample family: cells (default: sparse and dense cells) or one "
                        "simulated kind (see docs/families.md)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="report folder")
    p.add_argument("--size", choices=("tiny", "small", "full"), default="small",
                   help="tiny (a smoke test), small (default: minutes), full (a desktop)")
    p.set_defaults(func=run_design)


def run_design(args: argparse.Namespace) -> int:
    from controller.files import require_writable_dir
    from training.design_illumination import NAME, DesignError, design_illumination, families
    from training.experiments.runner import SIZES
    from training.optics_file import read_optics_file

    design = read_optics_file(args.optics)
    known = families()
    if args.sample not in known:
        raise DesignError(f"--sample: unknown family {args.sample!r}; known: {sorted(known)}")
    require_writable_dir(args.out)
    command = (f"focuslock design-illumination --optics {shlex.quote(str(args.optics))} "
               f"--sample {args.sample} --out {shlex.quote(str(args.out))}"
               + ("" if args.size == "small" else f" --size {args.size}"))
    report = design_illumination(design, args.sample, known[args.sample], SIZES[args.size],
                                 args.out, command, lambda line: print(line, flush=True))
    print((args.out / f"{NAME}.md").read_text())
    print(f"{len(report['rows'])} arms; report and figure in {args.out}")
    return 0
