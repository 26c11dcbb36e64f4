"""The rig the device interface tests run on: each simulated backend by default, or the one a
``--rig-config`` TOML opens (a real box), always through controller.hardware.rig.open_rig."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.config import Config, config_from_dict, load_config
from controller.hardware.interfaces import PositionUnknown
from controller.hardware.rig import Rig, open_rig

SIMULATED_BACKENDS = {"virtual": (), "firmware-sim": (pytest.mark.firmware,), "sangaboard-sim": ()}
SIM_FRAME = 128  # small frames: the interface does not need 2048²


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rig_config" not in metafunc.fixturenames:
        return
    path = metafunc.config.getoption("--rig-config")
    if path:
        params = [pytest.param(load_config(path), id="rig-config")]
    else:
        params = [pytest.param(config_from_dict({"board": {"backend": backend},
                                                 "sim": {"frame_size": SIM_FRAME}}),
                               id=backend, marks=marks)
                  for backend, marks in SIMULATED_BACKENDS.items()]
    metafunc.parametrize("rig_config", params)


@pytest.fixture
def rig(rig_config: Config) -> Iterator[Rig]:
    """The open rig, its drive put back where it started once the test is done."""
    rig = open_rig(rig_config)
    try:
        start_um = rig.drive.position_um()
    except PositionUnknown:
        rig.close()
        pytest.fail("the drive does not know its position: home or set it first "
                    "(focuslock board home / set-position)")
    yield rig
    try:
        rig.drive.move_to(start_um)
    finally:
        rig.close()


@pytest.fixture
def step_um(rig_config: Config) -> float:
    """One motor step: how close a move can land to where it was asked."""
    return 1.0 / rig_config.board.steps_per_um
