"""Board faults mid-lock on the digital twin: the real firmware under MicroPython drives the focus
through the real driver, in real time; a board that dies or reboots mid-lock must end in a safe
stop with a report that says what happened. (The lock itself on the twin, with the bundled
model, is in test_bundled_model.py.)"""

import dataclasses
import time

import pytest

from controller.config import Config, SimSettings
from controller.lock_runner import LockRunner
from controller.loop import FocusLoop, LoopState
from controller.optics import preset
from controller.runlog import StepRecord
from controller.sensing import NetworkSensor
from controller.sim.twin import open_twin
from tests.loop.doubles import OraclePredictor

pytestmark = pytest.mark.firmware

FRAME = (128, 128)


@pytest.fixture
def twin(tmp_path):
    twin = open_twin(preset("paper"), SimSettings(start_z_um=8.0), frame_shape=FRAME,
                     workdir=tmp_path)
    yield twin
    twin.close()


def twin_lock(twin, predictor=None):
    config = Config()
    config = dataclasses.replace(config, lock=dataclasses.replace(config.lock, rate_hz=5.0))
    predictor = predictor or OraclePredictor(twin.scope, noise_um=0.1)
    sensor = NetworkSensor(predictor, twin.rig.preset.autofocus)
    return LockRunner(FocusLoop.for_rig(twin.rig, sensor, config))


def test_board_reboot_mid_lock_is_a_safe_stop(twin):
    steps = []

    def reboot_at_third(record: StepRecord) -> None:
        steps.append(record)
        if len(steps) == 3:
            twin.board.restart()  # power glitch: the firmware no longer vouches for its position

    report = twin_lock(twin).run(duration_s=10.0, on_step=reboot_at_third)
    assert report.final_state is LoopState.FAULT and not report.ok
    assert "PositionUnknown" in report.reason and "safe stop" in report.reason
    assert steps[-1].state == "fault" and steps[-1].move_um == 0.0
    assert twin.board.state()["motor_enabled"] is False


def test_board_dead_mid_lock_is_a_safe_stop(twin):
    steps = []

    def kill_at_third(record: StepRecord) -> None:
        steps.append(record)
        if len(steps) == 3:
            twin.board.kill()

    start = time.monotonic()
    report = twin_lock(twin).run(duration_s=30.0, on_step=kill_at_third)
    assert report.final_state is LoopState.FAULT
    assert report.reason.startswith("safe stop: LinkLost: no reply from the focus board")
    assert "LEDs off also failed" in report.reason  # says the safe stop could not be confirmed
    assert len(steps) == 4 and time.monotonic() - start < 20
