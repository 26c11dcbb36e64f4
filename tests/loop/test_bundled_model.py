"""The loop with the bundled model (no stand-ins): focus now on the virtual microscope, and a
lock on the digital twin with the real firmware, scored against the truth."""

import pytest

from controller.config import Config, FocusSettings, SimSettings
from controller.loop import FocusLoop
from controller.model import DEFAULT_BUNDLE, FocusModel
from controller.optics import preset
from controller.runlog import RunLog, StepRecord
from controller.sensing import NetworkSensor
from controller.sim.demo import TRUTH_COLUMNS, run_scenario_lock, score_run
from controller.sim.rigs import virtual_rig
from controller.sim.twin import open_twin

pytestmark = pytest.mark.slow

FRAME = (1024, 1024)  # four of the model's patches: a quarter of the paper's field, 4x cheaper


MODEL_ALONE = FocusSettings(sharpness_finish_um=0.0)  # no finish on the sharpness


@pytest.mark.parametrize("settings, moves", [(MODEL_ALONE, 4), (FocusSettings(), 5)],
                         ids=["model alone", "finishing on the sharpness"])
def test_focus_now_from_far_away_with_the_bundled_model(settings, moves):
    """The model alone needs four moves here (the pair's probe counts); the finish (on by
    default) one more, as the model's focus lies 0.6 µm off the sharpness peak."""
    rig = virtual_rig(preset("paper"), SimSettings(start_z_um=18.0, seed=3), frame_shape=FRAME)
    assert rig.scope is not None
    model = FocusModel.load(DEFAULT_BUNDLE, optics=rig.preset.optics,
                            pattern=rig.preset.autofocus)
    sensor = NetworkSensor(model, rig.preset.autofocus)
    report = FocusLoop.for_rig(rig, sensor, Config()).focus_now(settings)
    assert report.success and report.moves <= moves
    assert abs(rig.scope.defocus_um()) <= 0.5


def worst_move_um(kind: str, seed: int, start_um: float, *, pair: bool
                  ) -> tuple[float, list[StepRecord]]:
    """Focus now with the bundled model (with its probe pair, or the network alone): how much
    its worst move made the focus worse (µm), and the step records."""
    rig = virtual_rig(preset("paper"), SimSettings(sample=kind, start_z_um=start_um, seed=seed),
                      frame_shape=FRAME)
    assert rig.scope is not None
    model = FocusModel.load(DEFAULT_BUNDLE, optics=rig.preset.optics,
                            pattern=rig.preset.autofocus)
    assert model.pair is not None
    if not pair:
        model.pair = None  # the network alone, as a bundle without a pair reads
    records: list[StepRecord] = []
    sensor = NetworkSensor(model, rig.preset.autofocus)
    FocusLoop.for_rig(rig, sensor, Config(), record_sink=records.append).focus_now(
        MODEL_ALONE)  # the moves the model's sign makes
    focal = rig.scope.focal_plane.z_um()
    worst = max(abs(r.z_um + r.move_um - focal) - abs(r.z_um - focal)
                for r in records if r.z_um is not None)
    return worst, records


# tissue fields (seed, start) on which the cell network alone reads the sign backwards
BACKWARDS = ((0, -20.0), (0, 20.0), (1, -20.0))


@pytest.mark.parametrize("seed, start_um", BACKWARDS)
def test_on_a_family_the_cell_network_never_learned_the_probe_pair_keeps_every_move_safe(
        seed, start_um):
    """Tissue passes the cell network's unfamiliarity gate, yet on these fields the network
    alone reads its sign backwards and drives the focus away by 10-24 µm. With the bundled
    model's probe pair it probes, the pair decides the side, and no move makes the focus worse
    than the probe."""
    assert "tissue" not in FocusModel.load(DEFAULT_BUNDLE).record["data"]["train"][
        "stacks_by_sample"]
    probe = Config().focus.probe_um
    alone, _ = worst_move_um("tissue", seed, start_um, pair=False)
    assert alone > probe  # the defect the pair is for
    worst, records = worst_move_um("tissue", seed, start_um, pair=True)
    assert records[0].probe_um and "probe pair" in records[1].reason
    assert worst <= probe + 1e-6


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
