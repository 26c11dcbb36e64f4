"""Shared pytest set-up: tests run from the source tree and never touch real hardware unless
``--rig-config`` points the device interface tests (tests/hardware) at a real box.

Hypothesis runs derandomized (the same generated cases on every run, so CI is deterministic) and
without its per-example deadline (a timing assertion, which a loaded machine would fail); each
suite bounds its own budget with ``max_examples``. ``HYPOTHESIS_PROFILE=explore`` draws fresh
random cases on every run, for a hunt on demand.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rig-config", metavar="PATH", default=None,
        help="run tests/hardware/test_device_interface.py against the rig this focuslock TOML "
             "config opens (e.g. a real box; home or set its drive first) instead of the "
             "simulated backends 'virtual' and 'firmware-sim'")
