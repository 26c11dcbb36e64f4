"""The OME-TIFF focal-stack format: round trip, and clear errors for damaged files."""

import os
import stat

import numpy as np
import pytest
import tifffile

from controller.groundtruth import FIT_HALF_WIDTH
from controller.optics import preset
from controller.stackio import (
    GROUND_TRUTH_MIN_PLANES,
    FocalStack,
    StackFileError,
    read_stack,
    write_stack,
)


@pytest.fixture
def stack():
    p = preset("paper")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 65535, size=(2, 5, 32, 48), dtype=np.uint16)
    return FocalStack(images, np.arange(-2.0, 3.0), (p.autofocus, p.ground_truth), p.optics,
                      focus_z_um=0.25, metadata={"sample": "sparse-cells", "seed": 3})


def test_round_trip_keeps_pixels_and_record(tmp_path, stack):
    path = write_stack(tmp_path / "s.ome.tif", stack)
    back = read_stack(path)
    np.testing.assert_array_equal(back.images, stack.images)
    np.testing.assert_array_equal(back.z_um, stack.z_um)
    assert back.channels == stack.channels
    assert back.optics == stack.optics
    assert back.focus_z_um == 0.25
    assert back.metadata == stack.metadata
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_file_is_plain_ome_tiff_for_other_readers(tmp_path, stack):
    path = write_stack(tmp_path / "s.ome.tif", stack)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        assert tif.series[0].axes == "CZYX"
        xml = tif.ome_metadata or ""
        assert 'PhysicalSizeX="0.325"' in xml
        assert 'Name="dpc-bottom"' in xml


def test_truncated_file_is_a_clear_error(tmp_path, stack):
    path = write_stack(tmp_path / "s.ome.tif", stack)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StackFileError, match=r"s\.ome\.tif"):
        read_stack(path)


def test_plain_tiff_is_refused(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint16))
    with pytest.raises(StackFileError, match="not an OME-TIFF"):
        read_stack(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(StackFileError, match="no such stack file"):
        read_stack(tmp_path / "missing.ome.tif")


def test_inconsistent_stack_is_refused(stack):
    with pytest.raises(StackFileError, match="z positions"):
        FocalStack(stack.images, np.arange(4.0), stack.channels, stack.optics)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_stack_files_get_the_permissions_of_the_users_umask(tmp_path, stack, umask):
    old = os.umask(umask)
    try:
        path = write_stack(tmp_path / "s.ome.tif", stack)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_rewritten_stack_replaces_the_old_one_whole(tmp_path, stack):
    path = write_stack(tmp_path / "s.ome.tif", stack)
    stack.metadata["seed"] = 4
    write_stack(path, stack)
    assert read_stack(path).metadata["seed"] == 4
    assert list(tmp_path.iterdir()) == [path]


def test_a_one_plane_stack_reads_back(tmp_path, stack):
    one = FocalStack(stack.images[:, 2:3], stack.z_um[2:3], stack.channels, stack.optics)
    back = read_stack(write_stack(tmp_path / "one.ome.tif", one))
    np.testing.assert_array_equal(back.images, one.images)
    assert back.z_um.tolist() == [0.0]


def test_a_one_channel_one_plane_stack_reads_back(tmp_path, stack):
    one = FocalStack(stack.images[:1, :1], stack.z_um[:1], stack.channels[:1], stack.optics)
    assert read_stack(write_stack(tmp_path / "one.ome.tif", one)).images.shape == (1, 1, 32, 48)


def test_the_ground_truth_plane_count_is_that_of_the_peak_fit():
    assert GROUND_TRUTH_MIN_PLANES == 2 * FIT_HALF_WIDTH + 1


def test_a_stack_that_cannot_be_written_is_a_clear_error(tmp_path, stack):
    (tmp_path / "a-file").write_text("")
    for path in (tmp_path / "a-file" / "s.ome.tif", tmp_path):
        with pytest.raises(StackFileError, match="cannot write the stack"):
            write_stack(path, stack)
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]
