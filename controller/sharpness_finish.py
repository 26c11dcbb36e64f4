"""Finishing focus now on the sharpness peak of the incoherent pattern, the ground truth's own
definition of focus.

Near focus the network reads a sample it never saw with a bias of its own: on new red-cell fields
a calibrated bundle read -0.2 to -0.6 µm wherever it lay within ±1.3 µm of focus, so focus now
ended 0.3-1.2 µm off while the model said "in focus". The sharpness of a frame under the
incoherent half annulus (controller/groundtruth.py) has no such bias: its peak is where training
put focus, and near focus its curve has one shape whatever the sample (measured on the twin: the
drop from the peak at ±1 µm and ±2 µm keeps the same proportions across eleven families, only its
scale changes). So once the model brings focus within ``focus.sharpness_finish_um`` (or its
first reading after a correction is refused: ``finish_centre``), focus now measures the
sharpness where it stands and at two more points of the bracket ``step_um`` either side of the
model's focus, fits a parabola through the three, and moves to its peak, never outside that
bracket: two or three more moves (``finish_stops``).

Where the three hardly differ (a thick sample whose curve is flat, a field too sparse to rise
above the noise), the finish keeps the model's focus: it moves there and says why. Where they
rise without a peak, or peak beyond the bracket (the model's reading was wrong by more than a
step), it measures a step past the sharpest end where two moves are left (``step_beyond``) and
fits again there; otherwise it moves to the sharpest of the three or to the bracket's end, and
focus now does not call that a success.

Beyond about 4 µm the curve is flat (the band's power is gone), so sharpness cannot replace the
model far from focus, nor decide the sign there.

At the peak the model is read three more times: what it reads there is its bias on this sample
(``bias_of``), which the lock then holds (controller/loop.py). This module holds the finish's
rules (where it centres, the correction that hands over to it, its stops, its peak, whether a
bias is kept); the loop makes the moves and takes the frames.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from controller.config import FocusSettings
from controller.groundtruth import pattern_sharpness
from controller.move_guard import MoveGuard
from controller.optics import Optics, Pattern

# The most moves a finish makes: to two points of the bracket, then to the peak
FINISH_MOVES = 3
# How far from focus the sharpness still changes: beyond, its band's power is gone (the twin)
SHARPNESS_RANGE_UM = 4.0
# A correction that hands over to the finish stops this share of a step short of the model's
# focus: the middle of half a step to a step, from where the finish measures that focus last
FINISH_SHORT = 0.75
# Readings of the model at the sharpness peak; their median is its bias on the sample
BIAS_READINGS = 3
# The smallest rise of the sharpness across the bracket that counts as a peak, in the measure's
# units (mean log power): ten times the frame-to-frame noise of the twin's camera (standard
# deviation 0.0002-0.0026 over 39 fields); a thin sample's curve rises 0.03-0.4 over 1.5 µm.
MIN_RISE = 0.02


@dataclass(frozen=True)
class SharpnessMeter:
    """What the finish lights and how it measures a frame: the preset's incoherent pattern
    through its optics."""

    pattern: Pattern
    optics: Optics

    def measure(self, image: np.ndarray) -> float:
        """The sharpness of one frame taken under ``pattern``."""
        return float(pattern_sharpness(image[np.newaxis], self.optics, self.pattern)[0])


class Landing(StrEnum):
    """What the finish moves to."""

    PEAK = "peak"  # the sharpness peak: focus
    MODEL = "model"  # the model's focus: the sharpness cannot say (too flat, a refused frame)
    SEARCHED = "searched"  # the best the bracket holds: the sharpness says focus lies beyond


@dataclass(frozen=True)
class Peak:
    """Where the finish moves, what that is, and why."""

    z_um: float
    landing: Landing
    reason: str


def finish_stops(here_um: float, focus_um: float, step_um: float) -> tuple[float, float]:
    """The two positions the finish measures after the one where the drive stands, in order.
    From half a step or more off the model's focus: the bracket's far end, then the model's
    focus itself, so that where the model was right the finish already stands at the peak and
    need not move again. From nearer: the bracket's two ends, the nearer first."""
    low, high = focus_um - step_um, focus_um + step_um
    if abs(here_um - focus_um) >= step_um / 2:
        return (low if here_um > focus_um else high), focus_um
    return (low, high) if here_um - low <= high - here_um else (high, low)


def sharpness_peak(z_um: list[float], sharpness: list[float], focus_um: float,
                   step_um: float, centre: str = "the model's focus") -> Peak:
    """The peak of the parabola through the three measurements; where they hardly rise, the
    bracket's centre ``focus_um`` (``centre`` names it); where they rise without a peak, the
    sharpest of them, and where the peak lies beyond the bracket ``focus_um ± step_um``, the
    bracket's end."""
    if len(z_um) != 3 or len(sharpness) != 3:
        raise ValueError(f"a parabola needs three measurements, got {len(z_um)}")
    z = np.asarray(z_um, dtype=float) - focus_um
    s = np.asarray(sharpness, dtype=float)
    if np.min(np.abs(np.diff(np.sort(z)))) < step_um / 4:
        raise ValueError(f"the measurements must lie apart, got {z_um}")
    rise = float(s.max() - s.min())
    if rise < MIN_RISE:
        return Peak(focus_um, Landing.MODEL, f"kept {centre}: the sharpness rises "
                                             f"only {rise:.3f} across the bracket (a peak needs "
                                             f"{MIN_RISE})")
    # the parabola s = a z² + b z + c through three points (Lagrange's divided differences)
    d01 = (s[1] - s[0]) / (z[1] - z[0])
    d12 = (s[2] - s[1]) / (z[2] - z[1])
    a = (d12 - d01) / (z[2] - z[0])
    if a >= 0:
        sharpest = float(z_um[int(np.argmax(s))])
        return Peak(sharpest, Landing.SEARCHED, "the sharpness does not peak inside the "
                                                "bracket (is focus beyond it?): moved to the "
                                                "sharpest of the three")
    b = d01 - a * (z[0] + z[1])
    vertex = float(-b / (2 * a))
    if abs(vertex) > step_um:
        end = float(np.copysign(step_um, vertex))
        return Peak(focus_um + end, Landing.SEARCHED,
                    f"the sharpness peaks beyond the bracket ({vertex:+.2f} µm from "
                    f"{centre}): moved to its end")
    return Peak(focus_um + vertex, Landing.PEAK,
                f"focused on the sharpness peak, {vertex:+.2f} µm from {centre}")


def step_beyond(z_um: list[float], sharpness: list[float],
                step_um: float) -> tuple[int, int, float]:
    """Where a finish whose three measurements peak beyond its bracket measures next: a step
    past the sharpest of them (then one of the outer two), away from the others. Returns the
    indices of the measurement nearest the sharpest and of the sharpest, and that stop: the
    three points the next parabola goes through."""
    best = int(np.argmax(sharpness))
    sharpest = z_um[best]
    others = [i for i in range(len(z_um)) if i != best]
    side = 1.0 if sharpest > max(z_um[i] for i in others) else -1.0
    neighbour = min(others, key=lambda i: abs(z_um[i] - sharpest))
    return neighbour, best, sharpest + side * step_um


def finish_centre(z_um: float, settings: FocusSettings, guard: MoveGuard, *,
                  to_focus_um: float | None, refusal: str | None, distance_um: float,
                  landed_um: float | None) -> tuple[float, str] | None:
    """Where focus now finishes around on the sharpness, and why; None where the model does
    not put focus within ``sharpness_finish_um`` or the bracket would leave ``guard``. The
    reading at ``z_um`` was refused (``refusal``: why), or trusted with a sign
    (``to_focus_um``: the move to the model's focus), or trusted without one (``distance_um``:
    its sign-free distance). A reading whose sign is undecided is bracketed around the drive
    (focus, within the bracket's half width on either side, is inside it: no sign is guessed).
    The first reading after a trusted correction (``landed_um``: where that put focus), if
    refused or of an undecided sign within the sharpness's range, is bracketed around that
    focus: near focus a model refuses the samples it knows least, and its sign-free distance
    reads them worst (a calibrated tissue bundle: 3.2 µm at 0.6 µm), so a probe there would
    spend the moves the finish needs."""
    within = settings.sharpness_finish_um
    step = settings.sharpness_step_um
    if refusal is not None:
        if landed_um is None:
            return None
        focus = landed_um
        why = f"the model's reading is refused ({refusal}) where it put focus"
    elif to_focus_um is not None:
        if abs(to_focus_um) > within:
            return None
        focus = z_um + to_focus_um
        why = f"the model puts focus {to_focus_um:+.2f} µm away"
    elif distance_um <= min(within, step):
        focus = z_um
        why = f"the model puts focus {distance_um:.2f} µm away on a side it cannot tell"
    elif landed_um is not None and distance_um <= SHARPNESS_RANGE_UM:
        focus = landed_um
        why = (f"the model reads {distance_um:.2f} µm on a side it cannot tell where it put "
               f"focus")
    else:
        return None
    for end in (focus - step, focus + step):
        if guard.clip(z_um, end - z_um)[1]:
            return None
    return focus, f"{why}: finishing on the sharpness"


def handover_move(z_um: float, to_focus_um: float, settings: FocusSettings,
                  guard: MoveGuard) -> float | None:
    """The correction that hands over to the finish, made in full: to ``FINISH_SHORT`` of a
    step short of the model's focus (``to_focus_um`` away), not of a lock offset's target (the
    finish measures around the focus and adds the offset last), so that the finish starts
    half a step or more off that focus, measures it last and, where the model was right, needs
    two moves, not three. None where the model puts focus no farther than the finish starts
    from, or ``guard`` would cut the move."""
    short = FINISH_SHORT * settings.sharpness_step_um
    if abs(to_focus_um) <= max(settings.sharpness_finish_um, short):
        return None
    move, limited = guard.clip(z_um, to_focus_um - math.copysign(short, to_focus_um))
    return None if limited else move


def bias_of(corrections_um: list[float], settings: FocusSettings) -> tuple[float | None, str]:
    """The model's bias on a sample from the corrections it asked for at the sharpness peak
    (trusted readings with a sign; the peak plus any offset is where they were read), and what
    was found: their median, if at least two agree within the tolerance and it is no farther
    than the finish moves (``sharpness_finish_um + sharpness_step_um``, which the config keeps
    within a probe, so the lock's plane moves by no more than that); else None and why."""
    keeps = "the lock holds the model's own focus"
    if len(corrections_um) < 2:
        return None, (f"the model's bias is unknown ({len(corrections_um)} of {BIAS_READINGS} "
                      f"readings at the peak trusted with a sign): {keeps}")
    spread = max(corrections_um) - min(corrections_um)
    if spread > settings.tolerance_um:
        return None, (f"the model's readings at the peak spread {spread:.2f} µm, more than the "
                      f"tolerance: {keeps}")
    bias = statistics.median(corrections_um)
    limit = settings.sharpness_finish_um + settings.sharpness_step_um
    if abs(bias) > limit:
        return None, (f"the model reads {bias:+.2f} µm at the peak, farther than the finish "
                      f"moves ({limit:g} µm): {keeps}")
    return bias, f"the model reads {bias:+.2f} µm here: the lock holds that reading"
