"""A model's answer for one reading, and what the loop needs from a model.

One type on both sides: a predictor (controller.model) or a sensor that fuses two cues
(controller.sensing) makes a Prediction, the gates judge it, the loop acts on it and the run log
records it. A Predictor also carries the confidence threshold calibrated for it, because a
confidence only means something against the model that produced it; a fused prediction carries
the threshold of the cue that decided it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    from controller.probe_pair import PairNetwork

Network = Literal["main", "fine"]  # which of a bundle's networks answered
Cue = Literal["network", "parallax"]  # which cue's reading a prediction is


@dataclass(frozen=True)
class Prediction:
    """One reading's answer: the correction to apply and how far to trust it."""

    defocus_um: float  # move the drive by this to focus (the median over patches)
    confidence: float  # 0..1 from the patches' agreement (0 when it cannot be judged)
    spread_um: float  # robust spread (1.4826 x MAD) of the patch predictions; NaN for one patch
    patch_defocus_um: tuple[float, ...]  # every patch's own prediction
    in_range: bool  # inside the defocus range the model (or the cue's calibration) holds for
    network: Network = "main"
    cue: Cue = "network"
    cue_reason: str = ""  # why that cue decided ('' where there was only one)
    parallax_um: float | None = None  # the parallax cue's reading, where one was made
    parallax_confidence: float | None = None
    min_confidence: float | None = None  # the deciding cue's threshold (None: the predictor's)
    # What a bundle with a sign-free distance head adds (docs/training.md, "Confidence"):
    distance_um: float | None = None  # |defocus| from the sign-free head (median over patches)
    # 0: the signed head is as sure of the sign as the distance head is of the distance; 1: it
    # cannot tell +D from -D (a thin phase sample's spectrum is the same at both)
    sign_ambiguity: float | None = None
    sign_ambiguous: bool = False  # beyond the model's calibrated limit: the loop probes the sign
    expected_error_um: float | None = None  # 95 % bound on |error|, calibrated on unseen families
    unfamiliarity: float | None = None  # the features' distance from the training data (1: edge)
    max_unfamiliarity: float | None = None  # the model's calibrated limit (None: not judged)
    # the frame's raw feature vectors (patches, n), kept so a probe's next frame can be read
    # together with this one (controller/probe_pair.py); None where no network read a frame
    patch_features: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def distance(self) -> float:
        """How far from focus the reading says it is, sign-free: the distance head's, where
        there is one."""
        return abs(self.defocus_um) if self.distance_um is None else self.distance_um


class Predictor(Protocol):
    """A model that turns one frame into a correction (controller.model.FocusModel is one)."""

    @property
    def min_confidence(self) -> float:
        """Predictions less confident than this are not trusted (calibrated with the model)."""
        ...

    @property
    def pair(self) -> PairNetwork | None:
        """The network that reads a sign probe's two frames together (None: none)."""
        ...

    def predict(self, image: np.ndarray) -> Prediction: ...
