"""The picamera2 backend against a stand-in of the picamera2 API (tests/hardware/
picamera2_standin.py): how it configures the camera, unpacks and crops its buffers, times its
frames, and recovers from a camera that stops delivering."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from controller.hardware.interfaces import CameraTimeout, HardwareError
from controller.hardware.picamera import PiCamera
from tests.hardware.picamera2_standin import Picamera2, luma_value, raw_value

SHAPE = (6, 10)  # rows, cols: 20-byte raw rows padded to a 64-byte stride


def open_camera(stand_in: Picamera2, plane: Any = "raw") -> PiCamera:  # Any: a bad one too
    return PiCamera(stand_in, frame_shape=SHAPE, exposure_us=5000, analogue_gain=2.0,
                    plane=plane)


def test_the_raw_plane_is_configured_fixed_and_unpacked_to_the_frame():
    stand_in = Picamera2(sensor_format="SRGGB12_CSI2P")
    camera = open_camera(stand_in)
    config = stand_in.camera_config
    assert config is not None and stand_in.started
    assert config["raw"]["format"] == "SRGGB12" and config["raw"]["size"] == (10, 6)
    assert config["controls"] == {"AeEnable": False, "AwbEnable": False, "ExposureTime": 5000,
                                  "AnalogueGain": 2.0, "NoiseReductionMode": 0}
    assert (config["buffer_count"], config["queue"]) == (2, False)

    frame = camera.capture()
    rows, cols = np.mgrid[:SHAPE[0], :SHAPE[1]]
    assert frame.image.dtype == np.uint16 and frame.image.flags.c_contiguous
    np.testing.assert_array_equal(frame.image, raw_value(rows, cols))
    request = stand_in.requests[-1]
    assert request.released
    assert frame.exposure_s == pytest.approx(0.005)
    assert frame.exposure_start == pytest.approx(
        request.metadata["SensorTimestamp"] * 1e-9 - 0.005, abs=1e-9)
    assert camera.capture().sequence == frame.sequence + 1 == 2


def test_the_luminance_plane_is_the_y_plane_in_the_top_byte():
    camera = open_camera(Picamera2(), plane="luminance")
    image = camera.capture().image
    rows, cols = np.mgrid[:SHAPE[0], :SHAPE[1]]
    assert image.dtype == np.uint16 and image.shape == SHAPE
    np.testing.assert_array_equal(image, luma_value(rows, cols).astype(np.uint16) << 8)


def test_a_frame_is_exposed_after_not_before():
    camera = open_camera(Picamera2())
    not_before = time.monotonic() + 0.02
    assert camera.capture(not_before=not_before).exposure_start >= not_before - 1e-9


def test_a_stalled_camera_is_restarted_once():
    stand_in = Picamera2()
    camera = open_camera(stand_in)
    stand_in.stalled_until_restart = True
    assert camera.capture(timeout_s=0.01).image.shape == SHAPE
    assert stand_in.starts == 2


def test_a_dead_camera_times_out_after_one_restart():
    stand_in = Picamera2()
    camera = open_camera(stand_in)
    stand_in.stalled = True
    with pytest.raises(CameraTimeout, match="even after a restart"):
        camera.capture(timeout_s=0.01)
    assert stand_in.starts == 2


def test_a_camera_that_cannot_start_is_closed_and_reported():
    stand_in = Picamera2()
    stand_in.fail_configure = RuntimeError("Failed to configure camera")
    with pytest.raises(HardwareError, match="cannot start the camera: Failed to configure"):
        open_camera(stand_in)
    assert not stand_in.is_open


def test_an_unknown_plane_is_refused_and_the_camera_closed():
    stand_in = Picamera2()
    with pytest.raises(HardwareError, match="plane must be one of"):
        open_camera(stand_in, plane="rgb")
    assert not stand_in.is_open


def test_close_stops_and_closes_the_camera():
    stand_in = Picamera2()
    open_camera(stand_in).close()
    assert not stand_in.started and not stand_in.is_open


def test_the_box_says_how_to_get_picamera2_where_it_is_missing():
    try:
        import picamera2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("picamera2 is installed: this is a Pi")
    from controller.hardware.box import open_picamera2

    with pytest.raises(HardwareError, match="python3-picamera2"):
        open_picamera2(0)
