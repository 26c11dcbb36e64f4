"""The fake is a Sangaboard as far as the OpenFlexure client (the GPL-3.0 ``sangaboard``
package, a dev-only test dependency) is concerned: it connects, checks the version, moves z and
reads the position. Only then do the focuslock tests against the same fake mean anything."""

from __future__ import annotations

import pytest

from controller.sim.sangaboard import VERSIONS, FakeSangaboard

sangaboard = pytest.importorskip("sangaboard", reason="the OpenFlexure client is not installed "
                                 "(pip install -e '.[dev]')")


def test_the_reference_client_accepts_the_fake(fake: FakeSangaboard) -> None:
    client = sangaboard.Sangaboard(fake.port)
    try:
        assert client.firmware == VERSIONS[fake.firmware]
        assert client.version_tuple == tuple(int(n) for n in fake.firmware.split("."))
        assert client.position == [0, 0, 0]
        client.move_rel(150, axis="z")
        client.move_rel(-40, axis="z")
        assert client.position == [0, 0, 110]
        assert fake.z_steps() == 110
        assert fake.blocking  # the client wants v1.0's blocking moves, and has them
    finally:
        client.close()
