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


def show_simulated_field(rig: Rig, config: Config, i: int) -> bool:
    """On a simulated rig, bring position i into view (the sample of the next seed) and say
    so; False on a real rig, where the user moves the sample."""
    if rig.scope is None:
        return False
    from controller.sim import make_sample

    rig.scope.replace_sample(make_sample(config.sim.sample, rig.camera.shape,
                                         rig.preset.optics.pixel_um, config.sim.seed + i))
    return True


def next_field(rig: Rig, config: Config, positions: int) -> Callable[[int], None]:
    """What brings position i into view: on a simulated rig the sample of the next seed, on a
    real one the user, asked to move the sample, focus roughly and press Enter."""
    def next_position(i: int) -> None:
        if not show_simulated_field(rig, config, i) and i > 0:
            input(f"move the sample to position {i + 1} of {positions}, focus roughly, "
                  f"then press Enter ")
    return next_position


def print_progress(position: int, positions: int, plane: int, planes: int) -> None:
    """One line per stack on a terminal, rewritten at every plane."""
    end = "\n" if plane == planes else ""
    print(f"\rposition {position}/{positions}: plane {plane}/{planes}", end=end, flush=True)


class StackAcquisition:
    """One focal stack around the drive's current z, taken a plane at a time, so that a caller
    (the service's worker) can do other things between two planes or give up: ``leave`` turns
    the LEDs off and returns the drive to where the stack began, whatever happened."""

    def __init__(self, rig: Rig, offsets_um: Sequence[float], patterns: Sequence[Pattern]
                 ) -> None:
        self.rig = rig
        self.patterns = tuple(patterns)
        drive = rig.drive
        self.z_start = drive.position_um()
        self.planes = sorted(self.z_start + float(o) for o in offsets_um)
        self.images = np.empty((len(self.patterns), len(self.planes), *rig.camera.shape),
                               dtype=np.uint16)
        self.z_measured = np.empty(len(self.planes))
        self.done = 0  # planes taken
        drive.move_to(max(self.planes[0] - RUN_UP_UM, drive.travel_um[0]))

    @property
    def complete(self) -> bool:
        return self.done == len(self.planes)

    def take_plane(self) -> None:
        """Move to the next plane and take a frame under each pattern there."""
        rig, p = self.rig, self.done
        self.z_measured[p] = rig.drive.move_to(self.planes[p])
        for c, pattern in enumerate(self.patterns):
            rig.illuminator.show(pattern)
            self.images[c, p] = rig.camera.capture(not_before=rig.drive.settled_at).image
        self.done += 1

    def leave(self) -> None:
        """LEDs off, the drive back where the stack began."""
        self.rig.illuminator.off()
        low, high = self.rig.drive.travel_um
        self.rig.drive.move_to(min(max(self.z_start, low), high))

    def stack(self, metadata: dict[str, object] | None = None) -> FocalStack:
        """The complete stack, once the drive has left it."""
        rig = self.rig
        focus = None if rig.scope is None else rig.scope.focal_plane.z_um()  # the twin's only
        record = {"source": f"focuslock {__version__} collect", "z_start_um": self.z_start,
                  "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  **(metadata or {})}
        optics = replace(rig.preset.optics, frame_shape=rig.camera.shape)
        return FocalStack(self.images, self.z_measured, self.patterns, optics, focus, record)


def collect_stack(rig: Rig, offsets_um: Sequence[float], patterns: Sequence[Pattern],
                  *, metadata: dict[str, object] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> FocalStack:
    """One focal stack around the drive's current z; the drive returns there afterwards."""
    acquisition = StackAcquisition(rig, offsets_um, patterns)
    try:
        while not acquisition.complete:
            acquisition.take_plane()
            if progress is not None:
                progress(acquisition.done, len(acquisition.planes))
    finally:
        acquisition.leave()
    return acquisition.stack(metadata)


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

        stack = collect_stack(rig, offsets_um, patterns, metadata=position_metadata(rig, i),
                              progress=plane_done)
        written.append(write_stack(position_path(out_dir, i), stack))
    return written


def position_path(out_dir: Path, i: int) -> Path:
    """Where position i's stack goes: names that sort in the order they were taken."""
    return out_dir / f"position-{i:03d}.ome.tif"


def position_metadata(rig: Rig, i: int) -> dict[str, object]:
    return {"position": i, "preset": rig.preset.name}
