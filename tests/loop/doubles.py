"""The test doubles of the loop tests: a model stand-in that reads the simulator's truth, and a
probe pair network that reads it from the frames' features.

They exist because the loop's logic (states, gates, limits) must be tested exactly, independent
of how good a trained model is; the end-to-end tests use the real bundled model instead.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from controller.features import Standardizer
from controller.prediction import Prediction
from controller.probe_pair import PairNetwork
from controller.sim.devices import VirtualScope

SignBlind = Literal["wrong", "random"]


class OraclePredictor:
    """Predicts the true defocus of the last rendered frame, times ``scale`` (-1: a sample it
    misreads with the wrong sign, so every move runs away from focus), plus optional noise and
    bias.

    ``sign_blind`` reads like a model on a thin phase sample: the true distance (plus the noise)
    as ``distance_um``, a signed value of that size whose sign is always the wrong one
    ("wrong") or a seeded coin's ("random"), and ``sign_ambiguous``, with
    ``expected_error_um``.

    Its one feature per frame is the frame's true defocus, which ``oracle_pair`` reads."""

    def __init__(self, scope: VirtualScope, *, scale: float = 1.0, noise_um: float = 0.0,
                 bias_um: float = 0.0,
                 confidence: float = 0.9, min_confidence: float = 0.4,
                 trained_range_um: float = 30.0, seed: int = 0,
                 sign_blind: SignBlind | None = None,
                 expected_error_um: float | None = None,
                 pair: PairNetwork | None = None) -> None:
        self.scope = scope
        self.pair = pair  # a probe pair network: oracle_pair's reads this model's frames
        self.scale = scale
        self.noise_um = noise_um
        self.bias_um = bias_um
        self.confidence = confidence
        self.min_confidence = min_confidence  # the bundled model's
        self.trained_range_um = trained_range_um
        self.sign_blind = sign_blind
        self.expected_error_um = expected_error_um
        self.calls = 0
        self._rng = np.random.default_rng(seed)

    def predict(self, image: np.ndarray) -> Prediction:
        self.calls += 1
        truth = self.scope.last_defocus_um
        features = np.array([[truth]], np.float32)
        value = self.scale * truth + self.bias_um
        if self.noise_um:
            value += self.noise_um * float(self._rng.standard_normal())
        if self.sign_blind is None:
            return Prediction(value, self.confidence, spread_um=0.0, patch_defocus_um=(value,),
                              in_range=abs(value) <= self.trained_range_um,
                              patch_features=features)
        distance = abs(value)
        if self.sign_blind == "wrong":
            signed = -value
        else:
            signed = distance if self._rng.random() < 0.5 else -distance
        return Prediction(signed, self.confidence, spread_um=0.0, patch_defocus_um=(signed,),
                          in_range=distance <= self.trained_range_um, distance_um=distance,
                          sign_ambiguity=1.0, sign_ambiguous=True,
                          expected_error_um=self.expected_error_um, patch_features=features)


def oracle_pair(probe_um: float = 3.0, bias_um: float = 0.0) -> PairNetwork:
    """A pair network for ``OraclePredictor``'s frames: the lower frame's true defocus (its one
    feature, the first input) plus ``bias_um``, and its distance."""

    def network(x: np.ndarray) -> np.ndarray:
        lower = x[:, 0] + bias_um
        return np.stack([lower, np.abs(lower)], axis=1)

    return PairNetwork(probe_um, Standardizer(np.zeros(2, np.float32), np.ones(2, np.float32)),
                       network)


class RefusesNearFocus(OraclePredictor):
    """A model that knows the sample far from focus and not near it: its readings within 3 µm
    of focus have too little confidence to pass the gate (bacteria, to a calibrated bundle)."""

    def predict(self, image: np.ndarray) -> Prediction:
        prediction = super().predict(image)
        if abs(self.scope.last_defocus_um) < 3.0:
            return dataclasses.replace(prediction, confidence=0.1)
        return prediction
