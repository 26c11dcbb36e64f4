"""Simulated training data: many seeded focal stacks from the virtual microscope.

Stack ``i`` of a run shows sample kind ``kinds[i % len(kinds)]`` with sample seed ``seed + i``
(every other parameter of the sample is drawn from its realistic range by that seed) and its focal
plane at a random offset within ±``focus_jitter_um`` of z = 0, so labels are not all whole
micrometres. Files are named after kind and seed, and existing files are kept: an interrupted run
resumes where it stopped, and a longer run extends a shorter one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from controller.errors import FocuslockError
from controller.files import require_writable_dir
from controller.optics import Pattern, Preset, preset
from controller.sim.instrument import Instrument, InstrumentVariation
from controller.sim.samples import SAMPLE_KINDS, make_sample
from controller.sim.stacks import render_stack, require_render_memory, resolve_patterns
from controller.stackio import AUTOFOCUS_CHANNEL, FocalStack, write_stack

FOCUS_JITTER_UM = 1.0  # the focal plane lies within ±this of z = 0


def stack_name(kind: str, sample_seed: int) -> str:
    return f"{kind}-{sample_seed:06d}.ome.tif"


def generate(out: Path, count: int, *, kinds: Sequence[str], seed: int, size: int,
             preset_name: str = "paper", z_range_um: float = 30.0, z_step_um: float = 1.0,
             focus_jitter_um: float = FOCUS_JITTER_UM, progress: bool = True) -> list[Path]:
    """Render ``count`` stacks into ``out`` (skipping those already there); their paths."""
    z, system = check_render(count, kinds=kinds, size=size, preset_name=preset_name,
                             z_range_um=z_range_um, z_step_um=z_step_um, what="train-data")
    require_writable_dir(out)
    paths = []
    for i in tqdm(range(count), desc="rendering stacks", unit="stack", disable=not progress):
        kind = kinds[i % len(kinds)]
        path = out / stack_name(kind, seed + i)
        paths.append(path)
        if not path.exists():
            write_stack(path, simulated_stack(kind, seed + i, size, system, z, focus_jitter_um))
    return paths


def check_render(count: int, *, kinds: Sequence[str], size: int, preset_name: str,
                 z_range_um: float, z_step_um: float, what: str,
                 system: Preset | None = None) -> tuple[np.ndarray, Preset]:
    """Refuse numbers that cannot make stacks, before any work; the planes' z and the preset
    (``system`` instead of the named one when given)."""
    if count < 1 or size < 8 or not z_range_um > 0 or not z_step_um > 0 or not kinds:
        raise FocuslockError(f"{what}: count, size, z range, z step and the sample kinds "
                             f"must be positive / non-empty")
    unknown = sorted(set(kinds) - set(SAMPLE_KINDS))
    if unknown:
        raise FocuslockError(f"{what}: unknown sample kind(s) {unknown}; known: "
                             f"{sorted(SAMPLE_KINDS)}")
    system = preset(preset_name) if system is None else system
    half_planes = z_range_um / z_step_um
    require_render_memory(what, (size, size), 1, len(resolve_patterns(system, None)),
                          2 * half_planes + 1)
    n_steps = round(half_planes)
    return np.arange(-n_steps, n_steps + 1) * z_step_um, system


def with_autofocus(system: Preset, autofocus: Pattern | None) -> Preset:
    """``system`` with another autofocus pattern (None: unchanged); the pattern is renamed to
    the autofocus channel's name, which the datasets look the channel up by."""
    if autofocus is None:
        return system
    return dataclasses.replace(system, autofocus=dataclasses.replace(autofocus,
                                                                    name=AUTOFOCUS_CHANNEL))


def simulated_stack(kind: str, sample_seed: int, size: int, system: Preset, z_um: np.ndarray,
                    focus_jitter_um: float = FOCUS_JITTER_UM,
                    variation: InstrumentVariation | None = None,
                    instrument: Instrument | None = None) -> FocalStack:
    """The stack of sample kind ``kind`` and seed ``sample_seed``, named as its file is; taken
    on the preset's ideal instrument, on one drawn from ``variation`` by the same seed, or on
    ``instrument`` (one microscope for every stack, as a box calibrates)."""
    if variation is not None and instrument is not None:
        raise ValueError("a stack is taken on a drawn instrument or on a given one, not both")
    rng = np.random.default_rng([sample_seed, 7])
    focus = float(rng.uniform(-focus_jitter_um, focus_jitter_um))
    sample = make_sample(kind, (size, size), system.optics.pixel_um, sample_seed)
    if variation is not None:
        instrument = variation.draw(sample_seed)
    stack = render_stack(sample, z_um, preset=system, focus_z_um=focus, seed=sample_seed,
                         instrument=instrument)
    stack.metadata["name"] = stack_name(kind, sample_seed)
    return stack
