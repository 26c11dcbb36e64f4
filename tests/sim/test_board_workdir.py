"""A simulated board's temporary folder never outlives the processes that use it: removed when
the twin closes, and when a killed process left one behind, at the next start."""

import os
import subprocess
import sys
import tempfile

import pytest

from controller.config import SimSettings
from controller.optics import preset
from controller.sim.board import WORKDIR_PREFIX, remove_stale_workdirs
from controller.sim.twin import open_twin


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    """The system temporary directory, for this test alone."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _ended_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def test_a_twin_removes_a_killed_twins_folder_at_start_and_its_own_at_close(temp_root):
    leaked = temp_root / f"{WORKDIR_PREFIX}{_ended_pid()}-abc123"
    (leaked / "nested").mkdir(parents=True)
    twin = open_twin(preset("paper"), SimSettings(), frame_shape=(64, 64))
    try:
        assert not leaked.exists()
        (own,) = temp_root.glob(f"{WORKDIR_PREFIX}*")
        assert own.name.startswith(f"{WORKDIR_PREFIX}{os.getpid()}-")
    finally:
        twin.close()
    assert list(temp_root.iterdir()) == []


def test_only_folders_whose_process_has_ended_are_removed(temp_root):
    not_a_pid = temp_root / f"{WORKDIR_PREFIX}{_ended_pid()}x-1"  # not ours to judge
    mine = temp_root / f"{WORKDIR_PREFIX}{os.getpid()}-1"
    other_name = temp_root / f"focusboard-{_ended_pid()}-1"
    stale = temp_root / f"{WORKDIR_PREFIX}{_ended_pid()}-2"
    for folder in (not_a_pid, mine, other_name, stale):
        folder.mkdir()
    assert remove_stale_workdirs(temp_root) == [stale]
    assert sorted(temp_root.iterdir()) == sorted((not_a_pid, mine, other_name))
