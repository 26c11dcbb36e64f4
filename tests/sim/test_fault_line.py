"""The twin's fault line: another process (the soak, a person) reaches the twin that
`focuslock serve` opened for itself, through a Unix socket in the folder FOCUSLOCK_TWIN_DIR names,
to inject faults and read the truth."""

import json
import time

import pytest

from controller.config import config_from_dict
from controller.hardware.interfaces import CameraTimeout
from controller.hardware.rig import open_rig
from controller.sim.fault_line import SOCKET_NAME, TWIN_DIR_ENV, FaultLine, send

pytestmark = pytest.mark.firmware


def open_twin_rig(folder):
    """The firmware-sim rig as `focuslock serve` opens it."""
    return open_rig(config_from_dict({
        "log_dir": str(folder / "runs"), "board": {"backend": "firmware-sim"},
        "sim": {"frame_size": 64, "start_z_um": 8.0, "focus_z_um": 0.0}}))


@pytest.fixture
def twin_rig(tmp_path, monkeypatch):
    """The twin's rig, with the environment asking for a line in ``tmp_path``."""
    monkeypatch.setenv(TWIN_DIR_ENV, str(tmp_path))
    rig = open_twin_rig(tmp_path)
    yield rig, tmp_path
    rig.close()


def test_the_line_reads_the_truth_and_plays_scenario_events(twin_rig):
    rig, folder = twin_rig
    line = folder / SOCKET_NAME
    assert send(line, "truth")["defocus_um"] is None  # no frame rendered yet
    rig.camera.capture()
    truth = send(line, "truth")
    assert truth["defocus_um"] == pytest.approx(-8.0) and truth["board"]["motor_steps"] == 80
    send(line, "empty-field")
    assert rig.scope.empty_field
    send(line, "sample-back")
    send(line, "knock 2.5")
    assert not rig.scope.empty_field and rig.scope.defocus_um() == pytest.approx(-5.5)
    with pytest.raises(RuntimeError, match="unknown twin command 'melt'"):
        send(line, "melt")


def test_the_line_kills_the_camera_and_pulls_the_cable(twin_rig):
    rig, folder = twin_rig
    line = folder / SOCKET_NAME
    send(line, "camera-dead")
    with pytest.raises(CameraTimeout):
        rig.camera.capture(timeout_s=0.05)
    send(line, "camera-alive")
    rig.camera.capture()

    boot = json.loads((folder / "board-state.json").read_text())["boot_nonce"]
    send(line, "unplug")
    assert not (folder / "focusboard").exists()  # the port is gone, as /dev/ttyACM0 would be
    send(line, "replug")
    assert (folder / "focusboard").exists()
    deadline = time.monotonic() + 10  # the firmware boots and publishes its new nonce
    while json.loads((folder / "board-state.json").read_text())["boot_nonce"] == boot:
        assert time.monotonic() < deadline, "the replugged board never booted"
        time.sleep(0.05)


def test_no_line_unless_the_environment_asks(tmp_path, monkeypatch):
    monkeypatch.delenv(TWIN_DIR_ENV, raising=False)
    rig = open_twin_rig(tmp_path)
    try:
        assert not any(isinstance(getattr(closer, "__self__", None), FaultLine)
                       for closer in rig.closers)
    finally:
        rig.close()


def test_closing_the_rig_closes_the_line(tmp_path, monkeypatch):
    monkeypatch.setenv(TWIN_DIR_ENV, str(tmp_path))
    rig = open_twin_rig(tmp_path)
    assert (tmp_path / SOCKET_NAME).exists()
    rig.close()
    assert not (tmp_path / SOCKET_NAME).exists()
    assert (tmp_path / "board-state.json").exists()  # the board's last word stays readable
