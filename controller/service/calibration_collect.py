"""The collecting part of a guided calibration, stepped by the service's worker thread one plane
at a time (controller/collect.py's StackAcquisition), so that commands (a cancel, the status)
are answered between two planes and the worker's heartbeat goes on.

Between stacks it waits for the user's ``next``; on a simulated rig the next field is the
sample of the next seed, as for ``focuslock collect``. Abandoning it (a cancel, a stop, a fault)
turns the LEDs off and returns the drive to where the calibration started.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from controller.collect import (
    StackAcquisition,
    position_metadata,
    position_path,
    show_simulated_field,
)
from controller.config import Config
from controller.errors import FocuslockError
from controller.service.calibration import CalibrationJob, Curve, Phase
from controller.stackio import write_stack

if TYPE_CHECKING:
    from controller.hardware.rig import Rig


class FieldCollection:
    """The stacks of one job on the open rig (the worker thread only)."""

    def __init__(self, job: CalibrationJob, rig: Rig, config: Config) -> None:
        self.job = job
        self.rig = rig
        self.config = config
        self.z_home = rig.drive.position_um()  # where a cancel puts the drive back
        self.index = 0  # the stack being collected, from 0
        self._acquisition: StackAcquisition | None = None
        job.stacks_dir.mkdir(parents=True)
        show_simulated_field(rig, config, 0)

    @property
    def due(self) -> bool:
        """Whether a plane is to be taken now (not while waiting for the next field)."""
        return self.job.phase is Phase.COLLECTING

    def step(self) -> bool:
        """Take one plane (and finish its stack after the last one); True once every stack is
        written."""
        started = time.monotonic()
        acquisition = self._acquisition
        if acquisition is None:
            acquisition = StackAcquisition(self.rig, self.job.request.offsets_um,
                                           self.rig.preset.patterns)
            self._acquisition = acquisition
        acquisition.take_plane()
        self.job.plane_taken(time.monotonic() - started)
        if not acquisition.complete:
            return False
        acquisition.leave()
        self._acquisition = None
        stack = acquisition.stack(position_metadata(self.rig, self.index))
        path = write_stack(position_path(self.job.stacks_dir, self.index), stack)
        self.job.stack_done(Curve.of(path.name, stack))
        return self.index + 1 == self.job.request.stacks

    def next_field(self) -> None:
        """The user has brought a new field into view (the twin: its next sample)."""
        self.index = self.job.next_field()
        show_simulated_field(self.rig, self.config, self.index)

    def abandon(self) -> str:
        """LEDs off and the drive back where the calibration started, as far as they obey;
        what was done, for the job's last message."""
        drive = self.rig.drive
        try:
            self.rig.illuminator.off()
            low, high = drive.travel_um
            drive.move_to(min(max(self.z_home, low), high))
        except FocuslockError as exc:
            with contextlib.suppress(FocuslockError):
                drive.stop()
            return f"the drive could not go back to z = {self.z_home:.2f} µm ({exc})"
        return f"the drive is back at z = {self.z_home:.2f} µm"
