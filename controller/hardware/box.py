"""The box's rig: the Pi camera (picamera2) and the focus board on USB serial."""

from __future__ import annotations

from controller.clock import MonotonicClock
from controller.config import Config
from controller.hardware.board import BoardSettings, FocusBoard
from controller.hardware.picamera import PiCamera
from controller.hardware.rig import Rig
from controller.optics import preset


def open_box(config: Config) -> Rig:
    """Backend ``serial``: the Pi camera and the focus board on USB."""
    system = preset(config.optics.preset)

    camera = PiCamera(frame_shape=system.optics.frame_shape, exposure_us=config.camera.exposure_us,
                      analogue_gain=config.camera.analogue_gain, plane=config.camera.plane,
                      camera_index=config.camera.camera_index)
    board_config = config.board
    try:
        board = FocusBoard(BoardSettings(
            port=board_config.port or BoardSettings.port,
            serial_number=board_config.serial_number or None,
            steps_per_um=board_config.steps_per_um,
            travel_um=(board_config.travel_min_um, board_config.travel_max_um),
            heartbeat_s=board_config.heartbeat_s, leds=system.leds)).connect()
    except BaseException:
        camera.close()
        raise
    return Rig(camera, board, board, MonotonicClock(), system, (1 << system.optics.bit_depth) - 1)
