"""``focuslock experiment NAME --out DIR [--full]``: one of the paper's analyses, reproduced.

Registered by training/commands.py; TensorFlow and Dask are imported only once one runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import shlex
from pathlib import Path
from types import ModuleType
from typing import Any

# experiment name -> module of training/experiments, in the order of the paper's value to a user
EXPERIMENTS = {"stack-count": "stack_count", "representation": "representation",
               "na-sweep": "na_sweep", "patterns": "patterns",
               "generalisation": "generalisation", "saliency": "saliency"}


def experiment_module(name: str) -> ModuleType:
    return importlib.import_module(f"training.experiments.{EXPERIMENTS[name]}")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "experiment", help="reproduce one of the paper's analyses on the virtual microscope",
        description="Build simulated training and held-out stores through the data engine, "
                    "train small networks, read the held-out stacks and write a table (CSV, "
                    "markdown) and a figure (PNG) into --out. The default size finishes in "
                    "minutes on a small machine and is NOT the paper's; --full is (for a "
                    "desktop or a Dask cluster). A rerun reuses the stores it built.")
    p.add_argument("name", choices=sorted(EXPERIMENTS), metavar="NAME",
                   help="one of: " + ", ".join(EXPERIMENTS))
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="report folder")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--full", dest="size", action="store_const", const="full",
                      help="the paper's size: 512² frames, ±30 µm in 1 µm steps, hundreds of "
                           "stacks, the default network")
    size.add_argument("--size", choices=("tiny", "small", "full"),
                      help="tiny (a smoke test), small (default), full")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="build the stores on this Dask cluster (tcp://host:8786)")
    p.set_defaults(func=run_experiment, size="small")


def run_experiment(args: argparse.Namespace) -> int:
    from controller.files import require_writable_dir
    from training.cluster import ClusterChoice, check_scheduler_address
    from training.experiments.runner import SIZES

    size = SIZES[args.size]
    if args.scheduler is not None:
        check_scheduler_address(args.scheduler)
        size = size.with_cluster(ClusterChoice(scheduler=args.scheduler))
    require_writable_dir(args.out)
    logging.getLogger("training.experiments").setLevel(logging.INFO)
    module = experiment_module(args.name)
    sized = {"small": "", "full": " --full"}.get(args.size, f" --size {args.size}")
    command = f"focuslock experiment {args.name} --out {shlex.quote(str(args.out))}{sized}"
    rows = module.run(args.out, size, command)
    print((args.out / f"{module.NAME}.md").read_text())
    print(f"{len(rows)} rows; table and figure in {args.out}")
    return 0
