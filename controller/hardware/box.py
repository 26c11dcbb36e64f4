"""The box's real devices: the board's USB serial port (pyserial), the Pi camera (picamera2),
and the rig made of them.

The drivers take their transport from outside; this is the one place that opens real ones.
picamera2 exists only on Raspberry Pi OS (libcamera from apt), so it is imported when a camera
is opened, never at module import.
"""

from __future__ import annotations

import contextlib

import serial
from serial.tools import list_ports

from controller.clock import MonotonicClock
from controller.config import BoardSettings, Config
from controller.hardware.board import FocusBoard
from controller.hardware.board_link import LinkLost, PortOpener, SerialPort
from controller.hardware.board_settings import FocusBoardSettings
from controller.hardware.interfaces import HardwareError
from controller.hardware.picamera import PiCamera, Picamera2Api
from controller.hardware.rig import Rig
from controller.optics import LedArray, preset

DEFAULT_PORT = "/dev/focusboard"  # the udev symlink (deploy/)


def serial_opener(port: str = DEFAULT_PORT, serial_number: str | None = None,
                  baudrate: int = 115200, device: str = "the focus board") -> PortOpener:
    """Opens ``device``'s USB serial port: by its serial number when one is given, else
    ``port``; looked up again on every reopen, since a replugged board may get a new path."""

    def open_port() -> SerialPort:
        path = find_port(port, serial_number)
        try:
            return serial.Serial(path, baudrate, timeout=0.01, write_timeout=1.0)
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"cannot open {device} at {path}: {exc}") from exc

    return open_port


def find_port(port: str, serial_number: str | None) -> str:
    """The board's device path: by USB serial number when one is given, else ``port``."""
    if serial_number is None:
        return port
    for candidate in list_ports.comports():
        if candidate.serial_number == serial_number:
            return str(candidate.device)
    raise LinkLost(f"no USB serial device with serial number {serial_number!r}")


def board_settings(board: BoardSettings, leds: LedArray | None = None) -> FocusBoardSettings:
    """The driver's settings from the config's [board] table: the travel the host plans in is
    the travel CONFIGURE sets as the board's own soft limits, from the same two numbers."""
    return FocusBoardSettings(steps_per_um=board.steps_per_um,
                              travel_um=(board.travel_min_um, board.travel_max_um),
                              heartbeat_s=board.heartbeat_s, leds=leds)


def focus_board(board: BoardSettings, leds: LedArray | None = None) -> FocusBoard:
    """The focus board the config's [board] table names, unconnected."""
    return FocusBoard(serial_opener(board.port or DEFAULT_PORT, board.serial_number or None),
                      board_settings(board, leds))


def open_picamera2(camera_index: int = 0) -> Picamera2Api:
    """picamera2's camera object for one camera, unconfigured (PiCamera configures it)."""
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise HardwareError(
            "picamera: picamera2 is not installed; it comes with Raspberry Pi OS "
            "(sudo apt install python3-picamera2) and needs the venv created with "
            "--system-site-packages") from exc
    try:
        camera: Picamera2Api = Picamera2(camera_index)
    except Exception as exc:  # libcamera raises RuntimeError and friends
        raise HardwareError(f"picamera: cannot open camera {camera_index}: {exc}") from exc
    return camera


def open_box(config: Config) -> Rig:
    """Backend ``serial``: the Pi camera and the focus board on USB."""
    system = preset(config.optics.preset)
    board = focus_board(config.board, system.leds)  # its numbers are checked before any opening
    camera = PiCamera(open_picamera2(config.camera.camera_index),
                      frame_shape=system.optics.frame_shape, exposure_us=config.camera.exposure_us,
                      analogue_gain=config.camera.analogue_gain, plane=config.camera.plane)
    try:
        board.connect()
    except BaseException:
        camera.close()
        raise
    return Rig(camera, board, board, MonotonicClock(), system, (1 << system.optics.bit_depth) - 1)


def open_sangaboard_box(config: Config) -> Rig:
    """Backend ``sangaboard``: the Pi camera, a Sangaboard's z (at ``[board] port``) as the
    focus drive, and the focus board's LEDs (found by ``[board] serial_number``; its motor is
    not moved)."""
    from controller.hardware.sangaboard import open_sangaboard, settings_from_config

    board = config.board
    if not board.port or not board.serial_number:
        raise HardwareError('board.backend "sangaboard" needs board.port (the Sangaboard, e.g. '
                            '/dev/ttyACM0) and board.serial_number (the focus board with the LEDs)')
    system = preset(config.optics.preset)
    leds = FocusBoard(serial_opener(DEFAULT_PORT, board.serial_number),
                      board_settings(board, system.leds))
    camera = PiCamera(open_picamera2(config.camera.camera_index),
                      frame_shape=system.optics.frame_shape, exposure_us=config.camera.exposure_us,
                      analogue_gain=config.camera.analogue_gain, plane=config.camera.plane)
    with contextlib.ExitStack() as undo:
        undo.callback(camera.close)
        leds.connect()
        undo.callback(leds.close)
        drive = open_sangaboard(board.port, settings_from_config(board))
        undo.pop_all()
    return Rig(camera, drive, leds, MonotonicClock(), system, (1 << system.optics.bit_depth) - 1)
