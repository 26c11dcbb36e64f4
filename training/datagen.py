"""Simulated training data: many seeded focal stacks from the virtual microscope.

Stack ``i`` of a run shows sample kind ``kinds[i % len(kinds)]`` with sample seed ``seed + i``
(every other parameter of the sample is drawn from its realistic range by that seed) and its focal
plane at a random offset within ±``focus_jitter_um`` of z = 0, so labels are not all whole
micrometres. Files are named after kind and seed, and existing files are kept: an interrupted run
resumes where it stopped, and a longer run extends a shorter one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from controller.errors import FocuslockError
from controller.files import require_writable_dir
from controller.optics import preset
from controller.sim.samples import make_sample
from controller.sim.stacks import render_stack, require_render_memory, resolve_patterns
from controller.stackio import write_stack


def stack_name(kind: str, sample_seed: int) -> str:
    return f"{kind}-{sample_seed:06d}.ome.tif"


def generate(out: Path, count: int, *, kinds: Sequence[str], seed: int, size: int,
             preset_name: str = "paper", z_range_um: float = 30.0, z_step_um: float = 1.0,
             focus_jitter_um: float = 1.0, progress: bool = True) -> list[Path]:
    """Render ``count`` stacks into ``out`` (skipping those already there); their paths."""
    if count < 1 or size < 8 or not z_range_um > 0 or not z_step_um > 0 or not kinds:
        raise FocuslockError("train-data: count, size, z range, z step and the sample kinds "
                             "must be positive / non-empty")
    system = preset(preset_name)
    pixel_um = system.optics.pixel_um
    half_planes = z_range_um / z_step_um
    require_render_memory("train-data", (size, size), 1, len(resolve_patterns(system, None)),
                          2 * half_planes + 1)
    require_writable_dir(out)
    n_steps = round(half_planes)
    z = np.arange(-n_steps, n_steps + 1) * z_step_um
    paths = []
    for i in tqdm(range(count), desc="rendering stacks", unit="stack", disable=not progress):
        kind = kinds[i % len(kinds)]
        sample_seed = seed + i
        path = out / stack_name(kind, sample_seed)
        paths.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng([sample_seed, 7])
        focus = float(rng.uniform(-focus_jitter_um, focus_jitter_um))
        sample = make_sample(kind, (size, size), pixel_um, sample_seed)
        stack = render_stack(sample, z, preset=system, focus_z_um=focus, seed=sample_seed)
        stack.metadata["name"] = path.name
        write_stack(path, stack)
    return paths
