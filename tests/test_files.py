"""Writing without losing anything: a replaced folder is the old one or the whole new one."""

import os
import stat

import pytest

from controller.files import replaced_dir, replaced_file, replaced_symlink


def test_a_folder_is_switched_in_only_when_complete(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with replaced_dir(out) as staging:
        (staging / "new.txt").write_text("new")
        assert (out / "old.txt").read_text() == "old"  # the old one stays until the end
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # nothing left beside it


def test_a_failed_write_leaves_the_old_folder_and_no_debris(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), replaced_dir(out) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("crash mid-write")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_new_folders_and_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with replaced_dir(tmp_path / "d") as staging:
            (staging / "f").write_text("x")
        with replaced_file(tmp_path / "g") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "g").stat().st_mode) == 0o640


def test_a_link_is_switched_in_one_step_and_leaves_no_debris(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    replaced_symlink(tmp_path / "current", "a")
    assert os.readlink(tmp_path / "current") == "a"
    replaced_symlink(tmp_path / "current", "b")  # over the old link, by rename
    assert os.readlink(tmp_path / "current") == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "current"]
