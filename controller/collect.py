"""Data collection on the box: focal stacks of the user's own sample, in the training format.

At each sample position (a field of view the user brings under the objective, or the twin's next
seed) the drive steps through ``z_start + offsets`` and, at every plane, the camera takes one
frame under each pattern the preset names: the model's autofocus LED, the incoherent half
annulus from which training finds the true focus and, where the preset has them, the parallax
views (whose shift against that focus calibrates the parallax cue). Planes are visited in
increasing z after a run-up from below, so backlash is taken up once and every plane is
approached from the same side. Each position becomes one OME-TIFF focal stack
(controller/stackio.py); a crash loses at most the stack being acquired. ``focuslock collect``
and ``focuslock calibrate`` collect through here alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from controller import __version__
from controller.config import Config
from controller.errors import FocuslockError
from controller.hardware.rig import Rig
from controller.optics import Pattern
from controller.stackio import FocalStack, write_stack

RUN_UP_UM = 5.0  # approach the first plane from this far below it

Progress = Callable[[int, int, int, int], None]  # (position, positions, plane, planes)


class CollectError(FocuslockError):
    """A collection the box cannot make as asked."""


def plane_offsets(range_um: float, step_um: float) -> list[float]:
    """The planes from ``-range_um`` to ``+range_um`` around the current z, ``step_um`` apart."""
    if not (range_um > 0 and step_um > 0):
        raise CollectError(f"the range and the plane spacing must be positive, got "
                           f"{range_um:g} and {step_um:g} µm")
    return np.arange(-range_um, range_um + step_um / 2, step_um).tolist()


def check_rig_free(config: Config) -> None:
    """Refuse to open a real rig that the running service holds: two programs would drive one
    board and one camera."""
    from controller.service.client import service_answers, service_url

    if config.board.backend == "serial" and service_answers(config):
        raise CollectError(f"the focuslock service at {service_url(config)} holds the camera and "
                           f"the board; stop it first (sudo systemctl stop focuslock) and start "
                           f"it again afterwards")


def next_field(rig: Rig, config: Config, positions: int) -> Callable[[int], None]:
    """What brings position i into view: on a simulated rig the sample of the next seed, on a
    real one the user, asked to move the sample, focus roughly and press Enter."""
    def next_position(i: int) -> None:
        if rig.scope is not None:
            from controller.sim import make_sample

            rig.scope.replace_sample(make_sample(config.sim.sample, rig.camera.shape,
                                                 rig.preset.optics.pixel_um,
                                                 config.sim.seed + i))
        elif i > 0:
            input(f"move the sample to position {i + 1} of {positions}, focus roughly, "
                  f"then press Enter ")
    return next_position


def print_progress(position: int, positions: int, plane: int, planes: int) -> None:
    """One line per stack on a terminal, rewritten at every plane."""
    end = "\n" if plane == planes else ""
    print(f"\rposition {position}/{positions}: plane {plane}/{planes}", end=end, flush=True)


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
