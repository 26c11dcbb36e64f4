"""Data collection on the box: focal stacks of the user's own sample, in the training format.

At each sample position (a field of view the user brings under the objective, or the twin's next
seed) the drive steps through ``z_start + offsets`` and, at every plane, the camera takes one
frame under each pattern the preset names: the model's autofocus LED, the incoherent half
annulus from which training finds the true focus and, where the preset has them, the parallax
views (whose shift against that focus calibrates the parallax cue). Planes are visited in
increasing z after a run-up from below, so backlash is taken up once and every plane is
approached from the same side. Each position becomes one OME-TIFF focal stack
(controller/stackio.py); a crash loses at most the stack being acquired.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from controller import __version__
from controller.hardware.rig import Rig
from controller.optics import Pattern
from controller.stackio import FocalStack, write_stack

RUN_UP_UM = 5.0  # approach the first plane from this far below it

Progress = Callable[[int, int, int, int], None]  # (position, positions, plane, planes)


def collect_stack(rig: Rig, offsets_um: Sequence[float], patterns: Sequence[Pattern],
                  *, metadata: dict[str, object] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> FocalStack:
    """One focal stack around the drive's current z; the drive returns there afterwards."""
    drive, camera = rig.drive, rig.camera
    z_start = drive.position_um()
    planes = sorted(z_start + float(o) for o in offsets_um)
    images = np.empty((len(patterns), len(planes), *camera.shape), dtype=np.uint16)
    z_measured = np.empty(len(planes))
    low, high = drive.travel_um
    drive.move_to(max(planes[0] - RUN_UP_UM, low))
    try:
        for p, z in enumerate(planes):
            z_measured[p] = drive.move_to(z)
            for c, pattern in enumerate(patterns):
                rig.illuminator.show(pattern)
                images[c, p] = camera.capture(not_before=drive.settled_at).image
            if progress is not None:
                progress(p + 1, len(planes))
    finally:
        rig.illuminator.off()
        drive.move_to(min(max(z_start, low), high))
    focus = None if rig.scope is None else rig.scope.focal_plane.z_um()  # known on the twin only
    record = {"source": f"focuslock {__version__} collect", "z_start_um": z_start,
              "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              **(metadata or {})}
    optics = replace(rig.preset.optics, frame_shape=camera.shape)
    return FocalStack(images, z_measured, tuple(patterns), optics, focus, record)


def collect(rig: Rig, out_dir: Path, *, positions: int, offsets_um: Sequence[float],
            next_position: Callable[[int], None],
            progress: Progress | None = None) -> list[Path]:
    """``positions`` stacks under every pattern the preset names (``Preset.patterns``), written
    to ``out_dir/position-NNN.ome.tif``; ``next_position(i)`` brings position i into view."""
    patterns = rig.preset.patterns
    written = []
    for i in range(positions):
        next_position(i)

        def plane_done(plane: int, planes: int, i: int = i) -> None:
            if progress is not None:
                progress(i + 1, positions, plane, planes)

        stack = collect_stack(rig, offsets_um, patterns,
                              metadata={"position": i, "preset": rig.preset.name},
                              progress=plane_done)
        written.append(write_stack(out_dir / f"position-{i:03d}.ome.tif", stack))
    return written
