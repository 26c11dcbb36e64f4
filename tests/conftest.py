"""Shared pytest set-up: tests run from the source tree and never touch real hardware unless
``--rig-config`` points the device interface tests (tests/hardware) at a real box."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rig-config", metavar="PATH", default=None,
        help="run tests/hardware/test_device_interface.py against the rig this focuslock TOML "
             "config opens (e.g. a real box; home or set its drive first) instead of the "
             "simulated backends 'virtual' and 'firmware-sim'")
