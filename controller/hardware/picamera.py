"""The Raspberry Pi camera (picamera2/libcamera) as the loop's Camera.

The features compare spectra frame to frame, so everything automatic is off: fixed exposure and
analogue gain (AeEnable/AwbEnable False), no noise reduction (it filters exactly the spectrum
the model reads). Frames are the raw sensor plane (unpacked to uint16) or the ISP's luminance
plane. A frame is returned only if its exposure began after ``not_before``: picamera2's
``capture_request(flush=t_ns)`` discards queued frames exposed earlier (its clock is
``time.monotonic_ns()``, the loop's clock on the box). A frame that does not arrive in time
restarts the camera once; a second miss is a CameraTimeout.

The camera object comes from outside (controller.hardware.box.open_picamera2 on the Pi, a
stand-in of the picamera2 API in tests), so this module never imports picamera2.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol, get_args

import numpy as np

from controller.config import CameraPlane
from controller.hardware.interfaces import Camera, CameraTimeout, Frame, HardwareError

log = logging.getLogger(__name__)

PLANES: tuple[CameraPlane, ...] = get_args(CameraPlane)


class Picamera2Api(Protocol):
    """The part of picamera2's ``Picamera2`` this backend uses (names and arguments as there).

    ``capture_request(wait=False, flush=...)`` returns a job; ``wait(job, timeout)`` its
    ``CompletedRequest`` (``get_metadata()``, ``make_array(stream)``, ``release()``) or raises
    TimeoutError.
    """

    sensor_format: str

    def create_still_configuration(self, main: dict[str, Any] = ..., lores: Any = None,
                                   raw: dict[str, Any] = ..., *, buffer_count: int = ...,
                                   controls: dict[str, Any] = ...,
                                   queue: bool = ...) -> dict[str, Any]: ...

    def configure(self, camera_config: dict[str, Any] | None = None) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...

    def capture_request(self, wait: bool | None = None, signal_function: Any = None,
                        flush: bool | int | None = None) -> Any: ...

    def wait(self, job: Any, timeout: float | None = None) -> Any: ...


class PiCamera(Camera):
    """One Pi camera at a fixed exposure and gain, in the sensor mode of ``frame_shape``.

    It takes over ``camera`` (an opened, unconfigured Picamera2): configures and starts it, and
    closes it on ``close`` or when it cannot be started.
    """

    def __init__(self, camera: Picamera2Api, *, frame_shape: tuple[int, int], exposure_us: int,
                 analogue_gain: float, plane: CameraPlane = "raw") -> None:
        if plane not in PLANES:
            camera.close()
            raise HardwareError(f"picamera: plane must be one of {PLANES}, got {plane!r}")
        self._camera = camera
        self._shape = frame_shape
        self._plane = plane
        self._exposure_us = exposure_us
        self._sequence = 0
        rows, cols = frame_shape
        try:
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
        except Exception as exc:  # libcamera raises RuntimeError and friends
            self.close()
            raise HardwareError(f"picamera: cannot start the camera: {exc}") from exc

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
