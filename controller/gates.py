"""The gates between a prediction and a move: nothing moves on an untrusted reading.

docs/conventions.md (Safety): low confidence, a bad frame (dark, saturated, empty field), a
prediction outside the trained range, or a stale frame means no move. Each gate that fails
yields a Rejection with a short name (for logs and counters) and a sentence a person can act on.
The frame checks are cheap whole-frame statistics, so they cost little next to the features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from controller.config import GateSettings
from controller.hardware.interfaces import Frame
from controller.prediction import Prediction

BLOCK = 16  # pixels; averaging 16x16 blocks lowers shot noise 16x while keeping cell-sized detail
# Sensors clip at their full well, often a little below the ADC's largest value (an sCMOS with
# 30k e- at 0.46 e-/count tops out near 65300 of 65535), so "at full scale" means this close.
SATURATION_LEVEL = 0.98


# What vetoed a move, as logs, counters and the API name it; "window" and "sign" are the loop's
# own vetoes (a correction the travel window forbids entirely; an ambiguous sign no probe could
# decide: controller/sign_probe.py).
GateName = Literal["stale", "dark", "saturated", "empty", "invalid", "confidence", "range",
                   "unfamiliar", "window", "sign"]


@dataclass(frozen=True)
class Rejection:
    gate: GateName
    reason: str


@dataclass(frozen=True)
class FrameStats:
    mean_fraction: float  # mean / full scale
    saturated_fraction: float  # pixels at (SATURATION_LEVEL of) full scale / all pixels
    contrast: float  # rms difference of neighbouring 16x16 block means / (√2 · mean)


def frame_stats(image: np.ndarray, full_scale: int) -> FrameStats:
    rows = image.shape[0] - image.shape[0] % BLOCK
    cols = image.shape[1] - image.shape[1] % BLOCK
    blocks = image[:rows, :cols].reshape(rows // BLOCK, BLOCK, cols // BLOCK, BLOCK)
    block_means = blocks.mean(axis=(1, 3), dtype=np.float64)
    mean = float(block_means.mean())
    # Neighbouring blocks' differences see cell-sized structure but not the smooth shading
    # (vignetting, uneven illumination) that an empty field has too.
    steps = np.concatenate([np.diff(block_means, axis=0).ravel(),
                            np.diff(block_means, axis=1).ravel()])
    rms_step = float(np.sqrt(np.mean(steps**2))) if steps.size else 0.0
    contrast = rms_step / (math.sqrt(2.0) * mean) if mean > 0 else 0.0
    saturated = float(np.count_nonzero(image >= SATURATION_LEVEL * full_scale)) / image.size
    return FrameStats(mean / full_scale, saturated, contrast)


def check_frame(frame: Frame, *, settled_at: float, now: float, full_scale: int,
                settings: GateSettings) -> list[Rejection]:
    """Frame-quality and staleness gates."""
    rejections: list[Rejection] = []
    if frame.exposure_start < settled_at:
        rejections.append(Rejection(
            "stale", f"frame exposed {settled_at - frame.exposure_start:.3f} s before the drive "
                     f"settled"))
    elif now - frame.exposure_start > settings.max_frame_age_s:
        rejections.append(Rejection(
            "stale", f"frame is {now - frame.exposure_start:.2f} s old "
                     f"(limit {settings.max_frame_age_s} s)"))
    stats = frame_stats(frame.image, full_scale)
    if stats.mean_fraction < settings.dark_fraction:
        rejections.append(Rejection(
            "dark", f"too dark: mean {stats.mean_fraction:.1%} of full scale "
                    f"(limit {settings.dark_fraction:.1%}); is the LED on?"))
    saturated = stats.saturated_fraction > settings.saturated_fraction
    if saturated:
        rejections.append(Rejection(
            "saturated", f"saturated: {stats.saturated_fraction:.1%} of pixels at full scale "
                         f"(limit {settings.saturated_fraction:.1%})"))
    dark = stats.mean_fraction < settings.dark_fraction
    if not (dark or saturated) and stats.contrast < settings.min_contrast:
        rejections.append(Rejection(
            "empty", f"empty field: contrast {stats.contrast:.4f} "
                     f"(limit {settings.min_contrast}); no sample in view?"))
    return rejections


def check_prediction(prediction: Prediction, min_confidence: float) -> list[Rejection]:
    """Confidence, range and sanity gates on a reading. Its confidence is judged against the
    threshold of the cue that answered: the one the prediction carries (a fused reading), else
    ``min_confidence`` (a bundle carries its network's)."""
    if prediction.min_confidence is not None:
        min_confidence = prediction.min_confidence
    why = prediction.cue_reason or "the image patches disagree"
    if not (math.isfinite(prediction.defocus_um) and math.isfinite(prediction.confidence)):
        return [Rejection("invalid", f"{prediction.cue} returned a non-finite value "
                                     f"({prediction.defocus_um}, {prediction.confidence})"
                                     + (f": {prediction.cue_reason}" if prediction.cue_reason
                                        else ""))]
    rejections: list[Rejection] = []
    if prediction.confidence < min_confidence:
        rejections.append(Rejection(
            "confidence", f"low confidence {prediction.confidence:.2f} "
                          f"(limit {min_confidence}): {why}"))
    limit = prediction.max_unfamiliarity
    if (limit is not None and prediction.unfamiliarity is not None
            and not prediction.unfamiliarity <= limit):
        rejections.append(Rejection(
            "unfamiliar", f"the frame is unlike the model's training data (unfamiliarity "
                          f"{prediction.unfamiliarity:.2f}, limit {limit:g}): a sample or "
                          f"optics it never saw; `focuslock calibrate` teaches it this sample"))
    if not prediction.in_range:
        rejections.append(Rejection(
            "range", f"prediction {prediction.defocus_um:+.1f} µm is outside the model's "
                     f"trained range"))
    return rejections
