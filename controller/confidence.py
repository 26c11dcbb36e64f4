"""How far to trust one reading of a two-headed network: the sign's ambiguity, the features'
unfamiliarity and the expected error, with the limits calibrated on sample families the network
never saw (docs/training.md, "Confidence").

- **Sign ambiguity** (``sign_ambiguity``): the network has a signed head and a sign-free distance
  head. Trained with squared error, a head unsure whether the frame is at +D or -D answers their
  weighted mean, (2p - 1)·D, while the distance head still answers D; so 1 - |signed| / distance
  is 0 for a sure sign and 1 for a coin toss. Within ``SIGN_FREE_UM`` of focus the sign does not
  matter and the ratio is noise: there the ambiguity is 0.
- **Unfamiliarity** (``Familiarity``): how far the standardised features lie from the training
  data, in the principal subspace (Hotelling's T², the Mahalanobis distance within it) and off it
  (the squared residual), each divided by its 99th percentile on the training rows and the larger
  taken: 1 is the edge of what the network was trained on. A sample, optics or fault it never saw
  scores above.
- **Expected error** (a ``DistanceTable``): the 95th percentile of |error| of the readings the
  gates pass, by predicted distance, measured on families left out of training.

``Calibration`` holds the limits the gates and the loop apply, from the record's ``confidence``.
Only numpy: this runs on the box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

SIGN_FREE_UM = 1.0  # within this distance of focus the sign of a correction does not matter
TRAINING_QUANTILE = 99.0  # unfamiliarity 1 = this percentile of the training rows
EXPECTED_ERROR_QUANTILE = 95.0


def sign_ambiguity(defocus_um: float, distance_um: float | None) -> float:
    """0 (the signed head is as far from 0 as the distance head) .. 1 (it hedges at 0). A
    one-headed network (``distance_um`` None) states no distance apart from its sign, so
    nothing vouches for its sign: 1 beyond ``SIGN_FREE_UM`` (a calibration that trusts its
    sign says so by a limit of 1)."""
    if distance_um is None:
        distance_um = abs(defocus_um)
        if distance_um > SIGN_FREE_UM:
            return 1.0
    if not (math.isfinite(defocus_um) and math.isfinite(distance_um)):
        return 1.0
    if distance_um <= SIGN_FREE_UM:
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - abs(defocus_um) / distance_um)))


@dataclass(frozen=True)
class Familiarity:
    """The training features' principal subspace and the scales that make its scores 1 at the
    edge of the training data."""

    mean: np.ndarray  # (n,) of the standardised training rows
    components: np.ndarray  # (k, n) orthonormal rows
    variances: np.ndarray  # (k,) the training rows' variance along each component
    t2_scale: float  # TRAINING_QUANTILE of the training rows' T² / k
    residual_scale: float  # TRAINING_QUANTILE of their squared residual / n

    @classmethod
    def fit(cls, x: np.ndarray, k: int) -> Familiarity:
        """From standardised training rows (a sample of some thousands is plenty)."""
        x = np.asarray(x, np.float64)
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        k = min(k, vt.shape[0])
        variances = np.maximum(s[:k] ** 2 / max(x.shape[0] - 1, 1), 1e-12)
        unscaled = cls(mean, vt[:k], variances, 1.0, 1.0)
        t2, residual = unscaled._parts(x)
        return cls(mean, vt[:k], variances,
                   max(float(np.percentile(t2, TRAINING_QUANTILE)), 1e-12),
                   max(float(np.percentile(residual, TRAINING_QUANTILE)), 1e-12))

    def _parts(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centred = np.asarray(x, np.float64) - self.mean
        projected = centred @ self.components.T
        t2 = (projected**2 / self.variances).mean(axis=1)
        residual = ((centred - projected @ self.components) ** 2).mean(axis=1)
        return t2, residual

    def score(self, x: np.ndarray) -> np.ndarray:
        """Each standardised row's unfamiliarity (1: the training data's edge)."""
        t2, residual = self._parts(x)
        return np.maximum(t2 / self.t2_scale, residual / self.residual_scale)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "components": self.components.tolist(),
                "variances": self.variances.tolist(), "t2_scale": self.t2_scale,
                "residual_scale": self.residual_scale}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Familiarity:
        mean = np.asarray(d["mean"], np.float64)
        components = np.asarray(d["components"], np.float64)
        variances = np.asarray(d["variances"], np.float64)
        if components.ndim != 2 or components.shape[1] != mean.size \
                or variances.shape != (components.shape[0],) or not (variances > 0).all():
            raise ValueError("familiarity: components, mean and variances do not fit together")
        return cls(mean, components, variances, float(d["t2_scale"]),
                   float(d["residual_scale"]))


@dataclass(frozen=True)
class DistanceTable:
    """A number by predicted distance (the expected error, or the unfamiliarity limit): bin i
    holds distances in [edges[i], edges[i+1]) (the last bin is open above)."""

    edges_um: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.edges_um) != len(self.values) or not self.edges_um \
                or list(self.edges_um) != sorted(self.edges_um) \
                or not all(v > 0 and math.isfinite(v) for v in self.values):
            raise ValueError("distance table: one positive value per ascending distance edge")

    def at(self, distance_um: float) -> float:
        i = int(np.searchsorted(np.asarray(self.edges_um), distance_um, side="right")) - 1
        return self.values[max(i, 0)]

    def to_dict(self) -> dict[str, Any]:
        return {"distance_edges_um": list(self.edges_um), "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistanceTable:
        # a bundle calibrated before the table held anything but the expected error names its
        # values "error_um"
        values = d["values"] if "values" in d else d["error_um"]
        return cls(tuple(float(v) for v in d["distance_edges_um"]),
                   tuple(float(v) for v in values))


@dataclass(frozen=True)
class Calibration:
    """The limits calibrated for one bundle (record key ``confidence``; docs/training.md)."""

    # beyond it the loop probes for the sign; None: the network's sign is never trusted (no
    # limit kept its wrong signs rare enough on the families it never saw)
    max_sign_ambiguity: float | None
    # beyond it the reading is rejected ('unfamiliar' gate), at any distance the table below
    # does not set a limit for
    max_unfamiliarity: float
    expected_error: DistanceTable | None  # None: not yet calibrated on unseen families
    calibrated_on: str = ""  # which readings set these numbers
    # the unfamiliarity limit by predicted distance, where it was measured so (a calibration on
    # the user's sample: near focus its new fields score far above its far ones)
    unfamiliarity_by_distance: DistanceTable | None = None

    def unfamiliarity_limit(self, distance_um: float) -> float:
        """Beyond this unfamiliarity a reading of this distance is rejected."""
        table = self.unfamiliarity_by_distance
        return self.max_unfamiliarity if table is None else table.at(distance_um)

    def sign_is_ambiguous(self, ambiguity: float) -> bool:
        """Whether a reading of this ambiguity must have its sign found by a probe rather than
        taken from the network."""
        return self.max_sign_ambiguity is None or ambiguity > self.max_sign_ambiguity

    def to_dict(self) -> dict[str, Any]:
        return {"max_sign_ambiguity": self.max_sign_ambiguity,
                "max_unfamiliarity": self.max_unfamiliarity,
                "expected_error": None if self.expected_error is None
                else self.expected_error.to_dict(),
                "calibrated_on": self.calibrated_on,
                "unfamiliarity_by_distance": None if self.unfamiliarity_by_distance is None
                else self.unfamiliarity_by_distance.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        table = d.get("expected_error")
        by_distance = d.get("unfamiliarity_by_distance")
        limit = d["max_sign_ambiguity"]
        calibration = cls(None if limit is None else float(limit), float(d["max_unfamiliarity"]),
                          None if table is None else DistanceTable.from_dict(table),
                          str(d.get("calibrated_on", "")),
                          None if by_distance is None else DistanceTable.from_dict(by_distance))
        limit = calibration.max_sign_ambiguity
        if not ((limit is None or 0.0 <= limit <= 1.0) and calibration.max_unfamiliarity > 0):
            raise ValueError("confidence: max_sign_ambiguity must be in [0, 1] (or null) and "
                             "max_unfamiliarity positive")
        return calibration
