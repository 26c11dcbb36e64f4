"""The one test double of the loop tests: a model stand-in that reads the simulator's truth.

It exists because the loop's logic (states, gates, limits) must be tested exactly, independent of
how good a trained model is; the end-to-end tests use the real bundled model instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.sim.devices import VirtualScope


@dataclass(frozen=True)
class Answer:
    defocus_um: float
    confidence: float
    in_range: bool


class OraclePredictor:
    """Predicts the true defocus of the last rendered frame, plus optional noise and bias."""

    def __init__(self, scope: VirtualScope, *, noise_um: float = 0.0, bias_um: float = 0.0,
                 confidence: float = 0.9, trained_range_um: float = 30.0, seed: int = 0) -> None:
        self.scope = scope
        self.noise_um = noise_um
        self.bias_um = bias_um
        self.confidence = confidence
        self.trained_range_um = trained_range_um
        self.calls = 0
        self._rng = np.random.default_rng(seed)

    def predict(self, image: np.ndarray) -> Answer:
        self.calls += 1
        value = self.scope.last_defocus_um + self.bias_um
        if self.noise_um:
            value += self.noise_um * float(self._rng.standard_normal())
        return Answer(value, self.confidence, abs(value) <= self.trained_range_um)
