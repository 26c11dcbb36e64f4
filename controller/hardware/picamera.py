"""The Raspberry Pi camera (picamera2/libcamera) as the loop's Camera.

The features compare spectra frame to frame, so everything automatic is off: fixed exposure and
analogue gain (AeEnable/AwbEnable False), no noise reduction (it filters exactly the spectrum
the model reads). Frames are the raw sensor plane (unpacked to uint16) or the ISP's luminance
plane. A frame is returned only if its exposure began after ``not_before``: picamera2's
``capture_request(flush=t_ns)`` discards queued frames exposed earlier (its clock is
``time.monotonic_ns()``, the loop's clock on the box). A frame that does not arrive in time
restarts the camera once; a second miss is a CameraTimeout.

picamera2 only exists on Raspberry Pi OS (libcamera from apt), so it is imported when a
PiCamera is opened, never at module import.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from controller.hardware.interfaces import Camera, CameraTimeout, Frame, HardwareError

log = logging.getLogger(__name__)

PLANES = ("raw", "luminance")


class PiCamera(Camera):
    """One Pi camera at a fixed exposure and gain, in the sensor mode of ``frame_shape``."""

    def __init__(self, *, frame_shape: tuple[int, int], exposure_us: int, analogue_gain: float,
                 plane: str = "raw", camera_index: int = 0) -> None:
        if plane not in PLANES:
            raise HardwareError(f"picamera: plane must be one of {PLANES}, got {plane!r}")
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise HardwareError(
                "picamera: picamera2 is not installed; it comes with Raspberry Pi OS "
                "(sudo apt install python3-picamera2) and needs the venv created with "
                "--system-site-packages") from exc
        self._shape = frame_shape
        self._plane = plane
        self._exposure_us = exposure_us
        self._sequence = 0
        rows, cols = frame_shape
        try:
            self._camera: Any = Picamera2(camera_index)
            controls = {
                "AeEnable": False,
                "AwbEnable": False,
                "ExposureTime": int(exposure_us),
                "AnalogueGain": float(analogue_gain),
                "NoiseReductionMode": 0,  # off: the spectrum is the signal
            }
            if plane == "raw":
                config = self._camera.create_still_configuration(
                    raw={"size": (cols, rows), "format": self._unpacked_raw_format()},
                    buffer_count=2, queue=False, controls=controls)
            else:
                config = self._camera.create_still_configuration(
                    main={"size": (cols, rows), "format": "YUV420"},
                    buffer_count=2, queue=False, controls=controls)
            self._camera.configure(config)
            self._camera.start()
        except HardwareError:
            raise
        except Exception as exc:  # libcamera raises RuntimeError and friends
            raise HardwareError(f"picamera: cannot start camera {camera_index}: {exc}") from exc

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    def capture(self, *, not_before: float | None = None, timeout_s: float = 2.0) -> Frame:
        for attempt in (1, 2):
            try:
                return self._capture_once(not_before, timeout_s)
            except TimeoutError:
                if attempt == 2:
                    break
                log.warning("picamera: no frame within %.1f s; restarting the camera", timeout_s)
                self._restart()
        raise CameraTimeout(f"picamera: no frame within {timeout_s} s, even after a restart")

    def close(self) -> None:
        try:
            self._camera.stop()
            self._camera.close()
        except Exception as exc:  # closing a dead camera must not hide the original fault
            log.warning("picamera: close failed: %s", exc)

    def _unpacked_raw_format(self) -> str:
        """The sensor's own format without CSI-2 packing: one pixel per uint16."""
        return str(self._camera.sensor_format).replace("_CSI2P", "")

    def _capture_once(self, not_before: float | None, timeout_s: float) -> Frame:
        flush: bool | int = True if not_before is None else int(not_before * 1e9)
        job = self._camera.capture_request(wait=False, flush=flush)
        request = self._camera.wait(job, timeout=timeout_s)
        try:
            metadata = request.get_metadata()
            image = self._image(request)
        finally:
            request.release()
        exposure_s = metadata.get("ExposureTime", self._exposure_us) * 1e-6
        # SensorTimestamp marks the first row's readout, one exposure after it began.
        start = metadata["SensorTimestamp"] * 1e-9 - exposure_s
        self._sequence += 1
        return Frame(image, exposure_start=start, exposure_s=exposure_s, sequence=self._sequence)

    def _image(self, request: Any) -> np.ndarray:
        rows, cols = self._shape
        if self._plane == "raw":
            raw = request.make_array("raw").view(np.uint16)  # unpacked raw: 16-bit containers
            image = raw[:rows, :cols]
        else:
            image = request.make_array("main")[:rows, :cols].astype(np.uint16) << 8
        if image.shape != self._shape:
            raise HardwareError(f"picamera: frame of shape {image.shape}, expected {self._shape}")
        return np.ascontiguousarray(image)

    def _restart(self) -> None:
        try:
            self._camera.stop()
            time.sleep(0.2)
            self._camera.start()
        except Exception as exc:
            raise CameraTimeout(f"picamera: camera did not restart: {exc}") from exc
