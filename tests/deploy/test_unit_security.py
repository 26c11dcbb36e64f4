"""The committed unit's sandbox as systemd itself rates it: `systemd-analyze security` on the file
(offline: nothing needs to run or be installed), at 3.0 or better, with the devices the lock
needs still allowed."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "focuslock.service"
MAX_EXPOSURE = 3.0

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="needs systemd-analyze (systemd's own rating of the unit)")


def security_report() -> str:
    """What `systemd-analyze security` says of the unit file: one line per setting, then the
    overall exposure."""
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                             str(UNIT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_systemd_rates_the_unit_at_3_or_better():
    report = security_report()
    overall = re.search(r"Overall exposure level for focuslock\.service: (\d+\.\d+)", report)
    assert overall is not None, report
    assert float(overall.group(1)) <= MAX_EXPOSURE, report
    # the same bound as systemd's own gate (in tenths), which a packager's CI can use
    gate = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                           f"--threshold={round(MAX_EXPOSURE * 10)}", str(UNIT)],
                          capture_output=True, text=True, check=False)
    assert gate.returncode == 0, gate.stdout + gate.stderr


def test_only_the_board_and_the_camera_are_allowed_among_the_devices():
    device_acl = next(line for line in security_report().splitlines() if "DeviceAllow=" in line)
    allowed = set(re.findall(r"char-[\w-]+:\w+", device_acl))
    camera = {"char-video4linux:rw", "char-media:rw", "char-dma_heap:rw"}  # libcamera's nodes
    board = {"char-ttyACM:rw"}  # the Pico's USB serial port behind /dev/focusboard
    clock = {"char-rtc:r"}  # added by ProtectClock=yes: the clock, read-only
    assert allowed == camera | board | clock, device_acl
    assert "DevicePolicy=closed" in UNIT.read_text()  # nothing else: not even a block device
