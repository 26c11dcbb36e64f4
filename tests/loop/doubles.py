"""The one test double of the loop tests: a model stand-in that reads the simulator's truth.

It exists because the loop's logic (states, gates, limits) must be tested exactly, independent of
how good a trained model is; the end-to-end tests use the real bundled model instead.
"""

from __future__ import annotations

import numpy as np

from controller.prediction import Prediction
from controller.sim.devices import VirtualScope


class OraclePredictor:
    """Predicts the true defocus of the last rendered frame, times ``scale`` (-1: a sample it
    misreads with the wrong sign, so every move runs away from focus), plus optional noise and
    bias."""

    def __init__(self, scope: VirtualScope, *, scale: float = 1.0, noise_um: float = 0.0,
                 bias_um: float = 0.0,
                 confidence: float = 0.9, min_confidence: float = 0.4,
                 trained_range_um: float = 30.0, seed: int = 0) -> None:
        self.scope = scope
        self.scale = scale
        self.noise_um = noise_um
        self.bias_um = bias_um
        self.confidence = confidence
        self.min_confidence = min_confidence  # the bundled model's
        self.trained_range_um = trained_range_um
        self.calls = 0
        self._rng = np.random.default_rng(seed)

    def predict(self, image: np.ndarray) -> Prediction:
        self.calls += 1
        value = self.scale * self.scope.last_defocus_um + self.bias_um
        if self.noise_um:
            value += self.noise_um * float(self._rng.standard_normal())
        return Prediction(value, self.confidence, spread_um=0.0, patch_defocus_um=(value,),
                          in_range=abs(value) <= self.trained_range_um)
