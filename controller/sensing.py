"""What one reading lights, captures and turns into a Prediction: the loop's view of its cues.

The paper's method is one frame under one pattern, read by the network (``NetworkSensor``).
Where the optics have two parallax views (controller/optics.py ``ParallaxViews``) a reading also
captures the views the network's frame does not already hold and fuses the parallax cue with the
network (``ParallaxSensor``, controller/fusion.py); with ``model.bundle = "none"`` the parallax
cue reads alone. ``open_sensor`` builds the one the config asks for, so the CLI, the service and
the demo read frames the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from controller.config import NO_MODEL, Config
from controller.errors import FocuslockError
from controller.fusion import FusionRules, fuse
from controller.optics import Pattern, Preset
from controller.prediction import Prediction, Predictor
from controller.probe_pair import PairNetwork

if TYPE_CHECKING:
    from controller.model import FocusModel
    from controller.parallax import ParallaxCue


class SensorError(FocuslockError, ValueError):
    """A reading was given frames that do not fit what the sensor lit."""


class FocusSensor(Protocol):
    """One reading: the patterns it lights, one frame each in order, and what they say."""

    @property
    def patterns(self) -> tuple[Pattern, ...]: ...

    @property
    def min_confidence(self) -> float:
        """The threshold of a prediction that carries none of its own."""
        ...

    @property
    def pair(self) -> PairNetwork | None:
        """The network that reads a probe's two frames together (None: none)."""
        ...

    def read(self, images: Sequence[np.ndarray]) -> Prediction: ...


def _expect(images: Sequence[np.ndarray], count: int) -> None:
    if len(images) != count:
        raise SensorError(f"a reading needs {count} frame(s), one per pattern lit; "
                          f"got {len(images)}")


@dataclass(frozen=True)
class NetworkSensor:
    """The single shot: one frame under the autofocus pattern, read by the network."""

    predictor: Predictor
    pattern: Pattern

    @property
    def patterns(self) -> tuple[Pattern, ...]:
        return (self.pattern,)

    @property
    def min_confidence(self) -> float:
        return self.predictor.min_confidence

    @property
    def pair(self) -> PairNetwork | None:
        return self.predictor.pair

    def read(self, images: Sequence[np.ndarray]) -> Prediction:
        _expect(images, 1)
        return self.predictor.predict(images[0])


class ParallaxSensor:
    """The parallax cue, fused with the network where the box has one. A view lit by the same
    LEDs as the network's pattern reuses the network's frame (paper-pair: two frames a reading,
    not three; pi-hq-colour: the one colour frame)."""

    def __init__(self, cue: ParallaxCue, network: NetworkSensor | None,
                 rules: FusionRules) -> None:
        self.cue = cue
        self.network = network
        self.rules = rules
        patterns: list[Pattern] = [] if network is None else [network.pattern]
        self._view_frames: list[int] = []  # which frame of a reading each view of the cue is
        for view in cue.patterns:
            frame = next((i for i, p in enumerate(patterns) if p.is_close(view)), None)
            if frame is None:
                patterns.append(view)
                frame = len(patterns) - 1
            self._view_frames.append(frame)
        self.patterns = tuple(patterns)

    @property
    def min_confidence(self) -> float:
        return self.cue.min_confidence if self.network is None else self.network.min_confidence

    @property
    def pair(self) -> PairNetwork | None:
        return None if self.network is None else self.network.pair

    def read(self, images: Sequence[np.ndarray]) -> Prediction:
        _expect(images, len(self.patterns))
        network = None if self.network is None else self.network.read(images[:1])
        reading = self.cue.measure([images[i] for i in self._view_frames])
        return fuse(network, self.min_confidence, reading, self.cue.min_confidence, self.rules)


def load_network(config: Config, system: Preset) -> FocusModel | None:
    """The model bundle the config names, checked against ``system`` (None: no network). Where
    it does not fit a preset that has parallax views, the error says the cue can read alone."""
    from controller.installed_models import configured_bundle
    from controller.model import FocusModel, ModelError

    bundle = configured_bundle(config)
    if bundle is None:
        return None
    try:
        return FocusModel.load(bundle, optics=system.optics, pattern=system.autofocus)
    except ModelError as exc:
        if system.parallax is None:
            raise
        raise ModelError(f"{exc}; the optics preset {system.name!r} has parallax views, which "
                         f"read alone with model.bundle = {NO_MODEL!r}") from None


def open_sensor(config: Config, system: Preset) -> tuple[FocusSensor, FocusModel | None]:
    """The sensor the config asks for on ``system`` (its optics as the camera delivers them),
    and the model bundle it reads with (None: the parallax cue alone)."""
    model = load_network(config, system)
    network = None if model is None else NetworkSensor(model, system.autofocus)
    if not config.reads_parallax or system.parallax is None:
        assert network is not None  # the config refuses "none" without parallax views
        return network, model
    from controller.parallax import ParallaxCalibration, ParallaxCue

    settings = config.parallax
    calibration = (ParallaxCalibration.load(settings.calibration) if settings.calibration
                   else None)
    cue = ParallaxCue(system.parallax, system.optics, calibration)
    rules = FusionRules(settings.sign_margin_um, settings.agree_um, settings.agree_fraction)
    return ParallaxSensor(cue, network, rules), model
