"""The closed loop on the virtual microscope with the fake Sangaboard's z as its focus drive:
focus now and a short lock land in focus; a cable pulled mid-lock stops it with a report naming
the Sangaboard, and no move follows the fault."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from controller.config import Config, FocusSettings, config_from_dict
from controller.lock_runner import LockRunner
from controller.loop import FocusLoop, LoopState
from controller.runlog import StepRecord
from controller.sensing import NetworkSensor
from controller.sim.sangaboard_twin import SangaboardTwin, open_sangaboard_twin
from tests.loop.doubles import OraclePredictor

FRAME = (128, 128)


@pytest.fixture(params=["0.5", "1.0"])
def twin(request: pytest.FixtureRequest) -> Iterator[SangaboardTwin]:
    config = config_from_dict({"board": {"backend": "sangaboard-sim", "backlash_um": 2.0},
                               "sim": {"start_z_um": 8.0, "backlash_um": 1.0}})
    twin = open_sangaboard_twin(config, request.param, frame_shape=FRAME)
    yield twin
    twin.close()


def focus_loop(twin: SangaboardTwin) -> FocusLoop:
    config = Config()
    config = dataclasses.replace(config, lock=dataclasses.replace(config.lock, rate_hz=5.0))
    assert twin.rig.scope is not None
    sensor = NetworkSensor(OraclePredictor(twin.rig.scope, noise_um=0.1),
                           twin.rig.preset.autofocus)
    return FocusLoop.for_rig(twin.rig, sensor, config)


def test_focus_now_and_a_short_lock_hold_focus(twin: SangaboardTwin) -> None:
    assert twin.rig.scope is not None
    report = focus_loop(twin).focus_now(FocusSettings())
    assert report.success and abs(twin.rig.scope.defocus_um()) <= 0.5
    lock = LockRunner(focus_loop(twin)).run(duration_s=1.5)
    assert lock.ok and abs(twin.rig.scope.defocus_um()) <= 0.5
    assert twin.board.moves > 0


def test_an_unplugged_sangaboard_stops_the_lock_and_nothing_moves_after(
        twin: SangaboardTwin) -> None:
    steps: list[StepRecord] = []
    moves_at_unplug: list[int] = []

    def unplug_at_third(record: StepRecord) -> None:
        steps.append(record)
        if len(steps) == 3:
            moves_at_unplug.append(twin.board.moves)
            twin.board.unplug()

    report = LockRunner(focus_loop(twin)).run(duration_s=10.0, on_step=unplug_at_third)
    assert report.final_state is LoopState.FAULT and not report.ok
    assert "sangaboard" in report.reason and "safe stop" in report.reason
    assert steps[-1].state == "fault" and steps[-1].move_um == 0.0
    assert twin.board.moves == moves_at_unplug[0]
