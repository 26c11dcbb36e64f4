"""A small in-process virtual microscope (simulated time) and a loop factory for the tests."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from controller.config import Config, FocusSettings, GateSettings, LockSettings, SimSettings
from controller.hardware.rig import Rig
from controller.lock_runner import LockReport, LockRunner
from controller.loop import FocusLoop
from controller.optics import preset
from controller.sensing import NetworkSensor
from controller.sim.rigs import virtual_rig
from tests.loop.doubles import OraclePredictor

FRAME = (128, 128)  # small frames: the gates and the state machine do not need 2048²


def model_alone(**focus: Any) -> FocusSettings:
    """Focus now's settings, on the model alone: no finish on the sharpness (on by default;
    tests/loop/test_sharpness_finish.py), for the tests of the model's own moves."""
    return FocusSettings(sharpness_finish_um=0.0, **focus)


@pytest.fixture
def make_rig():
    def make(**twin: object) -> Rig:
        settings = dataclasses.replace(SimSettings(), **twin)  # type: ignore[arg-type]
        return virtual_rig(preset("paper"), settings, frame_shape=FRAME)
    return make


@pytest.fixture
def rig(make_rig) -> Rig:
    return make_rig()


def make_loop(rig: Rig, predictor=None, *, records=None, gates: GateSettings | None = None,
              **lock: object) -> FocusLoop:
    """The loop on ``rig`` with the default config but for ``gates`` and the ``lock`` settings
    given; the truth-reading model unless another is given; records appended to ``records``."""
    assert rig.scope is not None
    config = dataclasses.replace(
        Config(), lock=dataclasses.replace(LockSettings(), **lock),  # type: ignore[arg-type]
        gates=gates or GateSettings())
    sensor = NetworkSensor(predictor or OraclePredictor(rig.scope), rig.preset.autofocus)
    return FocusLoop.for_rig(rig, sensor, config,
                             record_sink=None if records is None else records.append)


def run_lock(loop: FocusLoop, **until: Any) -> LockReport:
    """The lock run by the one runner, in the rig's simulated time, until ``until`` ends it."""
    return LockRunner(loop).run(**until)
