"""Finishing focus now on the sharpness peak of the incoherent pattern, the ground truth's own
definition of focus.

Near focus the network reads a sample it never saw with a bias of its own: on new red-cell fields
a calibrated bundle read -0.2 to -0.6 µm wherever it lay within ±1.3 µm of focus, so focus now
ended 0.3-1.2 µm off while the model said "in focus". The sharpness of a frame under the
incoherent half annulus (controller/groundtruth.py) has no such bias: its peak is where training
put focus, and near focus its curve has one shape whatever the sample (measured on the twin: the
drop from the peak at ±1 µm and ±2 µm keeps the same proportions across eleven families, only its
scale changes). So once the model brings focus within ``focus.sharpness_finish_um`` (or its
first reading after a correction is refused: FocusLoop._finish_around), focus now measures the
sharpness where it stands and at two more points of the bracket ``step_um`` either side of the
model's focus, fits a parabola through the three, and moves to its peak, never outside that
bracket: two or three more moves (``finish_stops``).

Where the three hardly differ (a thick sample whose curve is flat, a field too sparse to rise
above the noise), the finish keeps the model's focus: it moves there and says why. Where they
rise without a peak, or peak beyond the bracket (the model's reading was wrong by more than a
step), it moves to the sharpest of the three or to the bracket's end, and focus now does not
call that a success.

Beyond about 4 µm the curve is flat (the band's power is gone), so sharpness cannot replace the
model far from focus, nor decide the sign there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from controller.groundtruth import pattern_sharpness
from controller.optics import Optics, Pattern

# The most moves a finish makes: to two points of the bracket, then to the peak
FINISH_MOVES = 3
# How far from focus the sharpness still changes: beyond, its band's power is gone (the twin)
SHARPNESS_RANGE_UM = 4.0
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
                   step_um: float) -> Peak:
    """The peak of the parabola through the three measurements; where they hardly rise, the
    model's ``focus_um``; where they rise without a peak, the sharpest of them, and where the
    peak lies beyond the bracket ``focus_um ± step_um``, the bracket's end."""
    if len(z_um) != 3 or len(sharpness) != 3:
        raise ValueError(f"a parabola needs three measurements, got {len(z_um)}")
    z = np.asarray(z_um, dtype=float) - focus_um
    s = np.asarray(sharpness, dtype=float)
    if np.min(np.abs(np.diff(np.sort(z)))) < step_um / 4:
        raise ValueError(f"the measurements must lie apart, got {z_um}")
    rise = float(s.max() - s.min())
    if rise < MIN_RISE:
        return Peak(focus_um, Landing.MODEL, f"kept the model's focus: the sharpness rises "
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
                    f"the sharpness peaks beyond the bracket ({vertex:+.2f} µm from the "
                    f"model's focus): moved to its end")
    return Peak(focus_um + vertex, Landing.PEAK,
                f"focused on the sharpness peak, {vertex:+.2f} µm from the model's focus")
