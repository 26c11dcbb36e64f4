"""A fake Sangaboard on a real pty, per firmware, and the focuslock driver connected to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.hardware.sangaboard import SangaboardFocus, SangaboardSettings, open_sangaboard
from controller.sim.sangaboard import FakeSangaboard

STEPS_PER_UM = 10.0
QUICK = SangaboardSettings(steps_per_um=STEPS_PER_UM, travel_um=(-500.0, 500.0),
                           reply_timeout_s=0.5, move_margin_s=0.5, settle_s=0.0)


@pytest.fixture(params=["0.5", "1.0"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeSangaboard]:
    with FakeSangaboard(request.param, step_delay_us=100) as board:
        yield board


@pytest.fixture
def drive(fake: FakeSangaboard) -> Iterator[SangaboardFocus]:
    drive = open_sangaboard(fake.port, QUICK)
    yield drive
    drive.close()
