"""The loop with the bundled model (no stand-ins): focus now on the virtual microscope, and a
lock on the digital twin with the real firmware, scored against the truth."""

import pytest

from controller.config import Config, FocusSettings, SimSettings
from controller.loop import FocusLoop
from controller.model import DEFAULT_BUNDLE, FocusModel
from controller.optics import preset
from controller.runlog import RunLog
from controller.sensing import NetworkSensor
from controller.sim.demo import TRUTH_COLUMNS, run_scenario_lock, score_run
from controller.sim.rigs import virtual_rig
from controller.sim.twin import open_twin

pytestmark = pytest.mark.slow

FRAME = (1024, 1024)  # four of the model's patches: a quarter of the paper's field, 4x cheaper


def test_focus_now_from_far_away_with_the_bundled_model():
    rig = virtual_rig(preset("paper"), SimSettings(start_z_um=18.0, seed=3), frame_shape=FRAME)
    assert rig.scope is not None
    model = FocusModel.load(DEFAULT_BUNDLE, optics=rig.preset.optics,
                            pattern=rig.preset.autofocus)
    sensor = NetworkSensor(model, rig.preset.autofocus)
    report = FocusLoop.for_rig(rig, sensor, Config()).focus_now(FocusSettings())
    assert report.success and report.moves <= 4
    assert abs(rig.scope.defocus_um()) <= 0.5


def test_focus_now_on_a_family_the_bundled_model_never_saw_refuses_to_move():
    """The bundled model learned cells; beads it would read with the wrong sign (benchmarks:
    every move it made on them worsened the focus). Its unfamiliarity gate refuses them: no
    move, and a reason that says what to do."""
    record = FocusModel.load(DEFAULT_BUNDLE).record
    assert "beads" not in record["data"]["train"]["stacks_by_sample"]
    rig = virtual_rig(preset("paper"), SimSettings(sample="beads", start_z_um=18.0, seed=3),
                      frame_shape=FRAME)
    assert rig.scope is not None
    model = FocusModel.load(DEFAULT_BUNDLE, optics=rig.preset.optics,
                            pattern=rig.preset.autofocus)
    start = rig.drive.position_um()
    report = FocusLoop.for_rig(rig, NetworkSensor(model, rig.preset.autofocus),
                               Config()).focus_now(FocusSettings())
    assert not report.success and report.moves == 0
    assert rig.drive.position_um() == start
    assert "unlike the model's training data" in report.reason
    assert "focuslock calibrate" in report.reason


@pytest.mark.firmware
def test_lock_on_the_twin_with_the_bundled_model_stays_in_tolerance(tmp_path):
    settings = SimSettings(start_z_um=4.0, drift_um_per_min=1.0, random_walk_um_per_sqrt_s=0.01)
    twin = open_twin(preset("paper"), settings, frame_shape=FRAME, workdir=tmp_path)
    try:
        model = FocusModel.load(DEFAULT_BUNDLE, optics=twin.rig.preset.optics,
                                pattern=twin.rig.preset.autofocus)
        with RunLog(tmp_path / "run.jsonl", extra_columns=TRUTH_COLUMNS) as log:
            sensor = NetworkSensor(model, twin.rig.preset.autofocus)
            run = run_scenario_lock(twin.rig, sensor, Config(), duration_s=10.0, events=[],
                                    log=log)
    finally:
        twin.close()
    score = score_run(run, tolerance_um=0.5)
    assert score.ok, score.failures
    assert score.first_locked_s is not None and score.first_locked_s <= 5.0
    assert score.locked_max_um is not None and score.locked_max_um <= 0.5
