"""A stand-in for picamera2's ``Picamera2``: the calls the PiCamera backend makes, with the
real API's names, arguments, array layouts and metadata, and no camera behind them.

Modelled on picamera2 (github.com/raspberrypi/picamera2: picamera2.py, request.py, job.py):

- ``create_still_configuration`` returns the configuration dict (``main``/``raw`` streams of
  ``format`` and ``size`` (width, height), ``buffer_count``, ``queue``, ``controls``);
  ``configure`` fills in each stream's ``stride`` in bytes, as libcamera does;
- ``capture_request(wait=False, flush=t_ns)`` returns a job, ``wait(job, timeout)`` its result
  or raises TimeoutError (Future.result); with ``flush`` the request's exposure began at or
  after ``t_ns`` (``SensorTimestamp - 1000 * ExposureTime``, monotonic ns; True: now);
- a request's ``make_array("raw")`` is uint8 of shape (height, stride) holding one little-endian
  uint16 per pixel for an unpacked raw format; ``make_array("main")`` of a YUV420 stream is
  uint8 of shape (height * 3 // 2, stride), the Y plane first; rows are padded to the stride;
- ``get_metadata()`` gives ``SensorTimestamp`` (ns, int), ``ExposureTime`` (µs, int),
  ``AnalogueGain`` and the like.

Pixel values are a known pattern (``raw_value``, ``luma_value``) and padding bytes are 0xAB, so
a test sees whether the backend unpacks and crops correctly.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

PADDING = 0xAB
STRIDE_ALIGN = 64  # bytes; libcamera pads rows on the Pi


def raw_value(row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """The raw pixels at these indices: 12-bit sensor values."""
    return np.asarray((64 + 7 * row + col) % 4096, dtype=np.uint16)


def luma_value(row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """The Y plane at these indices."""
    return np.asarray((row + 3 * col) % 256, dtype=np.uint8)


def _stride(row_bytes: int) -> int:
    return -(-row_bytes // STRIDE_ALIGN) * STRIDE_ALIGN


class CompletedRequest:
    def __init__(self, config: dict[str, Any], metadata: dict[str, Any]) -> None:
        self.config = config
        self.metadata = metadata
        self.released = False

    def get_metadata(self) -> dict[str, Any]:
        return dict(self.metadata)

    def make_array(self, name: str) -> np.ndarray:
        stream = self.config.get(name)
        if stream is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        width, height = stream["size"]
        stride = stream["stride"]
        if stream["format"] == "YUV420":
            array = np.full((height * 3 // 2, stride), PADDING, np.uint8)
            rows, cols = np.mgrid[:height, :width]
            array[:height, :width] = luma_value(rows, cols)
            array[height:, :width] = 128
            return array
        array = np.full((height, stride), PADDING, np.uint8)
        rows, cols = np.mgrid[:height, :width]
        pixels = raw_value(rows, cols).astype("<u2")
        array[:, :2 * width] = pixels.view(np.uint8).reshape(height, 2 * width)
        return array

    def release(self) -> None:
        self.released = True


class Job:
    def __init__(self, camera: Picamera2, flush_ns: int | None) -> None:
        self.camera = camera
        self.flush_ns = flush_ns

    def get_result(self, timeout: float | None = None) -> CompletedRequest:
        return self.camera.next_request(self.flush_ns, timeout)


class Picamera2:
    """One simulated camera; ``stalled`` makes requests never complete (a dead camera),
    ``stalled_until_restart`` only until the next ``stop``/``start``."""

    def __init__(self, camera_num: int = 0, verbose_console: Any = None, tuning: Any = None,
                 allocator: Any = None, *, sensor_format: str = "SRGGB12_CSI2P",
                 sensor_resolution: tuple[int, int] = (4056, 3040)) -> None:
        self.camera_num = camera_num
        self.sensor_format = sensor_format
        self.sensor_resolution = sensor_resolution
        self.camera_config: dict[str, Any] | None = None
        self.started = False
        self.is_open = True
        self.starts = 0
        self.stalled = False
        self.stalled_until_restart = False
        self.requests: list[CompletedRequest] = []
        self.fail_configure: Exception | None = None

    def create_still_configuration(
            self, main: dict[str, Any] | None = None, lores: Any = None,
            raw: dict[str, Any] | None = None, transform: Any = None, colour_space: Any = None,
            buffer_count: int = 1, controls: dict[str, Any] | None = None, display: Any = None,
            encode: Any = None, queue: bool = True, sensor: Any = None,
            use_case: str = "still") -> dict[str, Any]:
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main = {"format": "BGR888", "size": self.sensor_resolution, **(main or {})}
        raw = {"format": self.sensor_format, "size": main["size"], **(raw or {})}
        return {"use_case": use_case, "buffer_count": buffer_count, "queue": queue,
                "main": main, "lores": lores, "raw": raw, "controls": dict(controls or {}),
                "sensor": sensor}

    def configure(self, camera_config: dict[str, Any] | None = None) -> None:
        if self.fail_configure is not None:
            raise self.fail_configure
        assert camera_config is not None, "the backend always passes its configuration"
        for name, bytes_per_pixel in (("main", 1 if camera_config["main"]["format"] == "YUV420"
                                       else 3), ("raw", 2)):
            width = camera_config[name]["size"][0]
            camera_config[name]["stride"] = _stride(width * bytes_per_pixel)
        self.camera_config = camera_config

    def start(self, config: dict[str, Any] | None = None, show_preview: bool = False) -> None:
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True
        self.starts += 1
        self.stalled_until_restart = False

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.stop()
        self.is_open = False

    def capture_request(self, wait: bool | None = None, signal_function: Any = None,
                        flush: bool | int | None = None) -> Any:
        if flush is True:
            flush = time.monotonic_ns()
        job = Job(self, flush or None)
        return job if wait is False else job.get_result()

    def wait(self, job: Job, timeout: float | None = None) -> CompletedRequest:
        return job.get_result(timeout=timeout)

    def next_request(self, flush_ns: int | None, timeout: float | None) -> CompletedRequest:
        """The next frame, exposed from ``flush_ns`` on; returned once it is read out."""
        if not self.started or self.stalled or self.stalled_until_restart:
            time.sleep(timeout or 0.0)  # Future.result(timeout) waits, then gives up
            raise TimeoutError
        assert self.camera_config is not None
        exposure_us = int(self.camera_config["controls"]["ExposureTime"])
        start_ns = max(time.monotonic_ns(), flush_ns or 0)
        read_out_ns = start_ns + 1000 * exposure_us
        time.sleep(max(0, read_out_ns - time.monotonic_ns()) / 1e9)
        metadata = {"SensorTimestamp": read_out_ns, "ExposureTime": exposure_us,
                    "AnalogueGain": float(self.camera_config["controls"]["AnalogueGain"]),
                    "DigitalGain": 1.0, "FrameDuration": exposure_us + 100}
        request = CompletedRequest(self.camera_config, metadata)
        self.requests.append(request)
        return request
