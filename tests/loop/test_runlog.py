"""The run log: every step readable back, and a bounded disk footprint on a days-long lock."""

import csv

import pytest

from controller.files import new_dir
from controller.runlog import RunLog, StepRecord, read_run, timestamped_dir


def record(step: int) -> StepRecord:
    return StepRecord(t=step * 0.5, step=step, state="locked", z_um=1.0, defocus_um=0.1,
                      confidence=0.9, error_um=0.1, rejected="", move_um=0.06, limited="",
                      reason="")


def test_records_read_back_in_order(tmp_path):
    columns = ("true_um",)
    with RunLog(tmp_path / "steps.jsonl", tmp_path / "steps.csv", extra_columns=columns) as log:
        for step in range(1, 4):
            log.write(record(step), true_um=step / 10)
    rows = read_run(tmp_path / "steps.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[2]["true_um"] == pytest.approx(0.3)
    with (tmp_path / "steps.csv").open() as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2", "3"]


def test_rotation_keeps_the_newest_steps_within_the_size_bound(tmp_path):
    path = tmp_path / "steps.jsonl"
    with RunLog(path, tmp_path / "steps.csv", max_bytes=2000, keep=2) as log:
        for step in range(1, 201):
            log.write(record(step))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["steps.csv", "steps.csv.1", "steps.csv.2",
                     "steps.jsonl", "steps.jsonl.1", "steps.jsonl.2"]
    assert all((tmp_path / name).stat().st_size < 2000 + 400 for name in files)
    newest = read_run(path.with_name("steps.jsonl.2")) + read_run(path.with_name("steps.jsonl.1")) \
        + read_run(path)
    steps = [r["step"] for r in newest]
    assert steps == list(range(steps[0], 201))  # contiguous up to the last step, oldest dropped
    with (tmp_path / "steps.csv.1").open() as f:
        assert next(csv.reader(f))[:2] == ["t", "step"]  # every CSV part has its header


def test_undeclared_columns_are_a_bug(tmp_path):
    with RunLog(tmp_path / "s.jsonl") as log, pytest.raises(ValueError, match="undeclared"):
        log.write(record(1), surprise=1)


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path):
    folders = [timestamped_dir(tmp_path / "runs", "lock") for _ in range(3)]
    assert len(set(folders)) == 3 and all(f.is_dir() for f in folders)
    assert all(f.name.startswith("lock-") and not any(f.iterdir()) for f in folders)
    taken = new_dir(tmp_path / "run")
    assert [new_dir(taken).name, new_dir(taken).name] == ["run-2", "run-3"]
