"""The parallax cue: a signed defocus from the sideways shift between two views under two
illumination angles, with no training (docs/parallax.md).

Under two LEDs at different angles (``ParallaxViews``: two frames, or one raw colour frame under
two colours) the views shift against each other in proportion to the defocus, with its sign,
for any sample with texture. ``controller/parallax_shift.py`` measures that shift per patch of
the features' grid; here it becomes µm through a ``ParallaxCalibration``
(``defocus_um = um_per_px · shift_px + offset_um``), fitted on a collected focal stack against
its ground truth (``ParallaxCalibration.fit``; never typed in) or, uncalibrated, predicted from
the optics (``from_optics``).

API for the loop::

    cue = ParallaxCue(preset.parallax, preset.optics, ParallaxCalibration.load(path))
    for pattern in cue.patterns: ...       # light each, capture one frame per pattern
    reading = cue.measure(frames)          # a ParallaxReading
    reading.defocus_um, reading.confidence  # trusted from cue.min_confidence up
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from controller.files import replaced_file
from controller.groundtruth import find_focus
from controller.optics import (
    PARALLAX_FIRST,
    PARALLAX_PATTERN,
    PARALLAX_SECOND,
    Optics,
    OpticsError,
    ParallaxViews,
    Pattern,
)
from controller.parallax_shift import (
    ParallaxError,
    PatchShifts,
    ShiftMeter,
    baseline,
    view_shift_px_per_um,
)
from controller.stackio import FocalStack

__all__ = ["ParallaxCalibration", "ParallaxCue", "ParallaxError", "ParallaxReading"]

CALIBRATION_FORMAT = 1
MIN_PLANES = 9  # planes a calibration fit needs (after dropping the unreadable ones)
MIN_SPAN_DOF = 4.0  # the fitted planes must span this many depths of field
MAX_RESIDUAL_DOF = 0.5  # a fit whose rms residual exceeds this fraction of the DOF is refused
MAX_SLOPE_ERROR = 0.3  # a fitted µm per pixel this far (relative) from the optics' is refused
OUTLIER_MADS = 4.0  # planes beyond this many robust sigmas of the first fit are dropped
MAX_LEAK = 0.3  # the colour leak is searched in [0, MAX_LEAK] (a sensor's is a few per cent)
LEAK_TOLERANCE = 0.005
OPTICS_RANGE_WINDOWS = 0.25  # uncalibrated range: shifts up to this fraction of a patch
# Confidence (docs/parallax.md has the measurements behind these): a patch counts when its
# correlation peak stands SHARPNESS_FLOOR times above the surface's rms; the reading's
# confidence is its median peak height (1 for identical textures) times the patches' agreement.
SHARPNESS_FLOOR = 8.0
AGREEMENT_DOF = 0.25  # the patches' robust spread (in depths of field) that halves confidence
MIN_CONFIDENCE = 0.3


@dataclass(frozen=True)
class ParallaxCalibration:
    """Shift to defocus: ``defocus_um = um_per_px · shift_px + offset_um`` for these views."""

    um_per_px: float  # signed
    offset_um: float  # zero-parallax plane against true focus (chromatic shift, LED placement)
    source: str  # "optics" (geometric prediction, uncalibrated) or the stack's file name
    views: ParallaxViews
    defocus_range_um: tuple[float, float]  # where the relation was fitted (or predicted)
    residual_um: float = math.nan  # rms of the fit's residuals (NaN: not fitted)
    planes: int = 0  # planes the fit used
    leak: tuple[float, float] = (0.0, 0.0)  # colour frames: the other view unmixed from each
    patch: int = 512

    def __post_init__(self) -> None:
        for name in ("um_per_px", "offset_um"):
            if not math.isfinite(getattr(self, name)):
                raise ParallaxError(f"parallax calibration: {name} must be a finite number, "
                                    f"got {getattr(self, name)!r}")
        if self.um_per_px == 0:
            raise ParallaxError("parallax calibration: um_per_px must not be zero")
        low, high = self.defocus_range_um
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ParallaxError(f"parallax calibration: defocus range {self.defocus_range_um} "
                                f"must be two finite numbers, low < high")

    def defocus_um(self, shift_px: float) -> float:
        return self.um_per_px * shift_px + self.offset_um

    @classmethod
    def from_optics(cls, optics: Optics, views: ParallaxViews, *,
                    patch: int = 512) -> ParallaxCalibration:
        """The geometric prediction: each view moves by ``-D'·ν/√(n²-|ν|²)``, where D' is the
        defocus its colour sees (``D + optics.focal_shift_um(λ)``). Unfitted: no leak, and the
        range is where the shift stays within a quarter of a patch."""
        u = baseline(views)
        a1 = float(view_shift_px_per_um(views.first, optics) @ u)
        a2 = float(view_shift_px_per_um(views.second, optics) @ u)
        f1 = optics.focal_shift_um(views.first.wavelength_um)
        f2 = optics.focal_shift_um(views.second.wavelength_um)
        slope = a2 - a1  # px per µm of defocus
        offset = -(a2 * f2 - a1 * f1) / slope
        reach = OPTICS_RANGE_WINDOWS * patch / abs(slope)
        return cls(1.0 / slope, offset, "optics", views, (offset - reach, offset + reach),
                   patch=patch)

    @classmethod
    def fit(cls, stack: FocalStack, *, source: str = "stack", patch: int = 512,
            focus_z_um: float | None = None) -> ParallaxCalibration:
        """Fitted on a collected focal stack: its ground truth (controller/groundtruth.py, or
        ``focus_z_um`` where the focal plane is known, as in a simulated stack) gives every
        plane's defocus, the cue its shift; a robust line through them. A colour stack's filter
        leak is fitted with it (``_fit_leak``)."""
        views = stack_views(stack)
        focus = find_focus(stack).focus_z_um if focus_z_um is None else focus_z_um
        defocus = focus - stack.z_um
        frames = [stack.channel(p.name) for p in views.patterns]
        optics = stack.optics
        guess = cls.from_optics(optics, views, patch=patch)
        leak = _fit_leak(views, optics, frames, defocus, patch) if views.one_frame else 0.0
        shifts = _plane_shifts(ShiftMeter(views, optics, patch=patch, leak=(leak, leak)), frames)
        slope, offset, used = _robust_line(shifts, defocus)
        dof = optics.depth_of_field_um
        if used.sum() < MIN_PLANES:
            raise ParallaxError(f"{source}: only {int(used.sum())} of {defocus.size} planes give "
                                f"a parallax shift; calibration needs at least {MIN_PLANES}")
        span = float(np.ptp(defocus[used]))
        if span < MIN_SPAN_DOF * dof:
            raise ParallaxError(f"{source}: the planes span {span:.1f} µm of defocus; "
                                f"calibration needs at least {MIN_SPAN_DOF * dof:.1f} µm "
                                f"({MIN_SPAN_DOF:g} depths of field)")
        ratio = slope / guess.um_per_px
        if abs(ratio + 1.0) <= MAX_SLOPE_ERROR:
            raise ParallaxError(f"{source}: the views shift the wrong way for their LEDs (fitted "
                                f"{slope:+.4f} µm/px, the optics say {guess.um_per_px:+.4f}): "
                                f"are the two LEDs or the channels swapped?")
        if abs(ratio - 1.0) > MAX_SLOPE_ERROR:
            raise ParallaxError(f"{source}: fitted {slope:+.4f} µm/px is more than "
                                f"{MAX_SLOPE_ERROR:.0%} from the optics' {guess.um_per_px:+.4f}: "
                                f"are the LEDs where the preset says, and does each plane's "
                                f"frame belong to it?")
        residual = defocus[used] - (slope * shifts[used] + offset)
        rms = float(np.sqrt(np.mean(residual**2)))
        if rms > MAX_RESIDUAL_DOF * dof:
            raise ParallaxError(f"{source}: poor fit, rms residual {rms:.3f} µm over "
                                f"{int(used.sum())} planes (at most {MAX_RESIDUAL_DOF * dof:.3f} "
                                f"µm, half the depth of field): too little texture, or "
                                f"a sample that moved during the stack?")
        step = float(np.median(np.abs(np.diff(np.sort(stack.z_um)))))  # one plane beyond
        return cls(slope, offset, source, views,
                   (float(defocus[used].min()) - step, float(defocus[used].max()) + step), rms,
                   int(used.sum()), (leak, leak), patch)

    def to_dict(self) -> dict[str, Any]:
        return {"focuslock_parallax": CALIBRATION_FORMAT, "um_per_px": self.um_per_px,
                "offset_um": self.offset_um, "source": self.source,
                "views": self.views.to_dict(), "defocus_range_um": list(self.defocus_range_um),
                "residual_um": None if math.isnan(self.residual_um) else self.residual_um,
                "planes": self.planes, "leak": list(self.leak), "patch": self.patch}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParallaxCalibration:
        if not isinstance(d, Mapping) or d.get("focuslock_parallax") != CALIBRATION_FORMAT:
            raise ParallaxError(f"not a focuslock parallax calibration of format "
                                f"{CALIBRATION_FORMAT}")
        try:
            residual = d["residual_um"]
            low, high = (float(v) for v in d["defocus_range_um"])
            leak_a, leak_b = (float(v) for v in d["leak"])
            return cls(float(d["um_per_px"]), float(d["offset_um"]), str(d["source"]),
                       ParallaxViews.from_dict(d["views"]), (low, high),
                       math.nan if residual is None else float(residual), int(d["planes"]),
                       (leak_a, leak_b), int(d["patch"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ParallaxError):
                raise
            what = "bad views" if isinstance(exc, OpticsError) else "missing or bad field"
            raise ParallaxError(f"parallax calibration: {what}: {exc}") from exc

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Written atomically, as JSON."""
        path = Path(path)
        try:
            with replaced_file(path) as f:
                f.write((json.dumps(self.to_dict(), indent=2) + "\n").encode())
        except OSError as exc:
            raise ParallaxError(f"{path}: cannot write the calibration "
                                f"({exc.strerror or exc})") from exc
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ParallaxCalibration:
        path = Path(path)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ParallaxError(f"{path}: no such parallax calibration") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ParallaxError(f"{path}: unreadable parallax calibration: {exc}") from exc
        try:
            return cls.from_dict(record)
        except ParallaxError as exc:
            raise ParallaxError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class ParallaxReading:
    """One reading: the signed defocus the views' shift says, and how far to trust it."""

    defocus_um: float  # move the drive by this to focus; NaN when nothing could be measured
    confidence: float  # 0..1: peak height and sharpness, and the patches' agreement
    shift_px: float  # second view against the first, camera pixels along the baseline
    patch_defocus_um: tuple[float, ...] = field(default=())  # every readable patch's own
    in_range: bool = False  # inside the range the calibration holds for
    spread_um: float = math.nan  # robust spread (1.4826 x MAD) of the patches; NaN for one patch


class ParallaxCue:
    """Reads a signed defocus from one parallax reading's frames."""

    def __init__(self, views: ParallaxViews, optics: Optics,
                 calibration: ParallaxCalibration | None = None, *, patch: int = 512) -> None:
        if calibration is None:
            calibration = ParallaxCalibration.from_optics(optics, views, patch=patch)
        elif not _same_views(calibration.views, views):
            raise ParallaxError(f"parallax calibration ({calibration.source}) was made for other "
                                f"views ({_describe(calibration.views)}); these are "
                                f"{_describe(views)}")
        self.views, self.optics, self.calibration = views, optics, calibration
        self.patterns: tuple[Pattern, ...] = views.patterns
        self.min_confidence = MIN_CONFIDENCE
        self._meter = ShiftMeter(views, optics, patch=patch, leak=calibration.leak)

    def measure(self, frames: Sequence[np.ndarray]) -> ParallaxReading:
        """One reading from one raw frame per pattern of ``self.patterns``, in order."""
        return reading(self._meter.measure(frames), self.calibration,
                       self.optics.depth_of_field_um)


def reading(patches: PatchShifts, calibration: ParallaxCalibration,
            dof_um: float) -> ParallaxReading:
    """Per-patch shifts combined: the median of the patches whose peak is sharp enough."""
    keep = patches.sharpness >= SHARPNESS_FLOOR
    if not keep.any():
        return ParallaxReading(math.nan, 0.0, math.nan, (), False)
    per_patch = calibration.um_per_px * patches.shift_px[keep] + calibration.offset_um
    shift = float(np.median(patches.shift_px[keep]))
    defocus = calibration.defocus_um(shift)
    spread = 1.4826 * float(np.median(np.abs(per_patch - defocus))) if keep.sum() > 1 else 0.0
    agreement = 1.0 / (1.0 + (spread / (AGREEMENT_DOF * dof_um)) ** 2)
    height = float(np.clip(np.median(patches.height[keep]), 0.0, 1.0))
    confidence = height * agreement * float(keep.mean())
    low, high = calibration.defocus_range_um
    return ParallaxReading(defocus, confidence, shift, tuple(float(v) for v in per_patch),
                           low <= defocus <= high, spread if keep.sum() > 1 else math.nan)


def stack_views(stack: FocalStack) -> ParallaxViews:
    """The parallax views a stack's channels hold: ``parallax-first`` and ``parallax-second``
    (two frames), or ``parallax`` (both LEDs, one colour frame)."""
    names = stack.channel_names
    if PARALLAX_FIRST in names and PARALLAX_SECOND in names:
        first = stack.channels[stack.channel_index(PARALLAX_FIRST)]
        second = stack.channels[stack.channel_index(PARALLAX_SECOND)]
        if len(first.leds) != 1 or len(second.leds) != 1:
            raise ParallaxError(f"stack channels {PARALLAX_FIRST!r} and {PARALLAX_SECOND!r} must "
                                f"each light one LED")
        return _views(first.leds[0], second.leds[0], False)
    if PARALLAX_PATTERN in names:
        both = stack.channels[stack.channel_index(PARALLAX_PATTERN)]
        if len(both.leds) != 2:
            raise ParallaxError(f"stack channel {PARALLAX_PATTERN!r} must light two LEDs of two "
                                f"colours, it lights {len(both.leds)}")
        if stack.optics.colour_filter == "mono":
            raise ParallaxError(f"stack channel {PARALLAX_PATTERN!r} needs a colour camera; the "
                                f"stack's optics have none")
        return _views(both.leds[0], both.leds[1], True)
    raise ParallaxError(f"stack has no parallax channels ({PARALLAX_FIRST!r} and "
                        f"{PARALLAX_SECOND!r}, or {PARALLAX_PATTERN!r}); it has {names}: "
                        f"collect it with a preset that has parallax views")


def _views(first: Any, second: Any, one_frame: bool) -> ParallaxViews:
    try:
        return ParallaxViews(first, second, one_frame)
    except OpticsError as exc:
        raise ParallaxError(f"stack's parallax channels: {exc}") from exc


def _plane_shifts(meter: ShiftMeter, frames: Sequence[np.ndarray]) -> np.ndarray:
    """Every plane's shift: the median of its readable patches (NaN where none is)."""
    shifts = np.full(len(frames[0]), np.nan)
    for i in range(shifts.size):
        patches = meter.measure([f[i] for f in frames])
        keep = patches.sharpness >= SHARPNESS_FLOOR
        if keep.any():
            shifts[i] = float(np.median(patches.shift_px[keep]))
    return shifts


def _fit_leak(views: ParallaxViews, optics: Optics, frames: Sequence[np.ndarray],
              defocus: np.ndarray, patch: int) -> float:
    """The colour filters' leak to unmix (the same for both views): the one that makes the
    stack's shifts most nearly a straight line in the defocus. Left in, the leak's zero-shift
    copy pulls near-focus shifts towards zero, a bend no line follows; the other view's light
    can only add, so the search runs over [0, MAX_LEAK]."""
    from scipy.optimize import minimize_scalar

    def misfit(leak: float) -> float:
        shifts = _plane_shifts(ShiftMeter(views, optics, patch=patch, leak=(leak, leak)), frames)
        slope, offset, used = _robust_line(shifts, defocus)
        if used.sum() < MIN_PLANES:
            return math.inf
        return float(np.sqrt(np.mean((defocus[used] - slope * shifts[used] - offset) ** 2)))

    best = minimize_scalar(misfit, bounds=(0.0, MAX_LEAK), method="bounded",
                           options={"xatol": LEAK_TOLERANCE})
    return float(best.x) if math.isfinite(best.fun) else 0.0


def _robust_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """y = slope·x + offset by least squares, refitted without the points beyond OUTLIER_MADS
    robust sigmas of the first fit; (slope, offset, points used)."""
    used = np.isfinite(x)
    if used.sum() < 2 or np.ptp(x[used]) == 0:
        return math.nan, math.nan, used
    for _ in range(2):
        slope, offset = np.polyfit(x[used], y[used], 1)
        residual = y - (slope * x + offset)
        sigma = 1.4826 * float(np.median(np.abs(residual[used])))
        used = np.isfinite(x) & (np.abs(residual) <= OUTLIER_MADS * max(sigma, 1e-9))
        if used.sum() < 2:
            break
    return float(slope), float(offset), used


def _same_views(a: ParallaxViews, b: ParallaxViews) -> bool:
    return (a.one_frame == b.one_frame
            and Pattern("a", (a.first,)).is_close(Pattern("b", (b.first,)))
            and Pattern("a", (a.second,)).is_close(Pattern("b", (b.second,))))


def _describe(views: ParallaxViews) -> str:
    def led(x: Any) -> str:
        colour = "" if x.wavelength_um is None else f" {x.wavelength_um:g} µm"
        return f"NA ({x.na_x:+.3f}, {x.na_y:+.3f}){colour}"
    mode = "one colour frame" if views.one_frame else "two frames"
    return f"{led(views.first)} then {led(views.second)}, {mode}"
