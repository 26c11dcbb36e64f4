"""The one answer to "may the drive go there?": every move the host plans goes through a guard.

A MoveGuard is a window of positions, always inside the drive's own travel limits, and a
largest single step. The lock's guard is its travel window (± ``lock.travel_window_um / 2``
around where the lock started, steps of at most ``lock.max_step_um``); focus now's is its
search window (± ``focus.search_window_um / 2`` around where it started, ``focus.max_step_um``);
an absolute move asked for by a person is checked against the drive's travel. The firmware
enforces its travel limits once more by itself (docs/conventions.md, Safety).

``clip`` shortens a planned relative move to fit and says which limit cut it; ``check_target``
refuses an absolute target outside the window. A non-finite number, or a position outside the
window to start from, is refused before the drive is asked: nothing moves on a number nobody
can vouch for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controller.errors import FocuslockError

MAX_STEP = "max_step"  # the tag of a move the largest step cut short


class MoveRefused(FocuslockError):
    """A move the guard does not let the drive make; the message names the number and why."""


@dataclass(frozen=True)
class MoveGuard:
    """Moves stay inside ``window`` (low, high) µm, each at most ``max_step_um`` long.
    ``name`` tags a move the window cut short (a step record's ``limited``) and, with its
    underscores read as spaces, names the window in messages."""

    window: tuple[float, float]
    max_step_um: float = math.inf
    name: str = "drive_travel"

    def __post_init__(self) -> None:
        low, high = self.window
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise MoveRefused(f"{self.label}: not a window of positions: [{low}, {high}] µm")
        if not self.max_step_um > 0:  # NaN fails too
            raise MoveRefused(f"{self.label}: the largest step must be > 0 µm, "
                              f"got {self.max_step_um}")

    @classmethod
    def around(cls, z_um: float, width_um: float, travel: tuple[float, float], *,
               max_step_um: float, name: str) -> MoveGuard:
        """± ``width_um / 2`` around ``z_um``, inside the drive's ``travel``."""
        _require_finite("the position to centre the window on", z_um)
        _require_finite(f"the width of the {name.replace('_', ' ')}", width_um)
        low, high = travel
        if not low <= z_um <= high:
            raise MoveRefused(f"the drive reports z = {z_um:g} µm, outside its travel "
                              f"[{low:g}, {high:g}] µm")
        half = width_um / 2
        return cls((max(z_um - half, low), min(z_um + half, high)), max_step_um, name)

    @classmethod
    def for_drive(cls, travel: tuple[float, float]) -> MoveGuard:
        """The drive's own travel limits, for an absolute move a person asks for."""
        return cls(travel)

    @property
    def label(self) -> str:
        """The window's name in a sentence, e.g. "travel window"."""
        return self.name.replace("_", " ")

    def describe(self) -> str:
        low, high = self.window
        return f"the {self.label} [{low:.1f}, {high:.1f}] µm"

    def clip(self, z_um: float, move_um: float) -> tuple[float, str]:
        """``move_um`` from ``z_um`` cut to the largest step, then to the window; and which
        limit cut it last (``MAX_STEP``, ``name``, or '' for none). From a position outside
        the window (a drive that rounds to whole steps, or was moved by other means) a move
        may go back towards it, never further out."""
        _require_finite("the drive's position z_um", z_um)
        _require_finite("the planned move", move_um)
        low, high = min(self.window[0], z_um), max(self.window[1], z_um)
        limited = ""
        if abs(move_um) > self.max_step_um:
            move_um = math.copysign(self.max_step_um, move_um)
            limited = MAX_STEP
        target = min(max(z_um + move_um, low), high)
        if target != z_um + move_um:
            move_um = target - z_um
            limited = self.name
        return move_um, limited

    def check_target(self, z_um: float, what: str = "z_um") -> float:
        """``z_um`` if an absolute move may go there; MoveRefused naming ``what`` (the asked-for
        number, in the asker's words) and the window if not."""
        _require_finite(f"the target {what}", z_um)
        low, high = self.window
        if not low <= z_um <= high:
            raise MoveRefused(f"{what}: must be within {self.describe()}, got {z_um:g}")
        return z_um


def _require_finite(what: str, value: float) -> None:
    if not math.isfinite(value):
        raise MoveRefused(f"{what} is not a finite number: {value}")
