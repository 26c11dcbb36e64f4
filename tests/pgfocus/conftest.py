"""The bridge on a real pty, driving a real service on loopback on the virtual rig; the
adapter stand-in holds the pty's other side."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import serial

from controller.pgfocus.bridge import PgFocusBridge
from controller.service.client import local_client
from tests.pgfocus.adapter import Adapter
from tests.service.conftest import (  # noqa: F401  (fixtures)
    Running,
    hanging_service,
    oracle_hardware,
    service_config,
    start_service,
)

UM_PER_PIXEL = 0.25
READ_TIMEOUT_S = 0.25


@dataclass
class Rig:
    running: Running
    bridge: PgFocusBridge
    adapter: Adapter
    thread: threading.Thread


@contextmanager
def connect(running: Running) -> Iterator[Rig]:
    """The bridge serving a pty for ``running``'s service, found as `focuslock pgfocus` finds
    it (the config's [service] address), and the adapter on the pty's other side."""
    config = running.service.config
    config = dataclasses.replace(config, service=dataclasses.replace(
        config.service, port=running.server.server_address[1]))
    client = local_client(config)
    assert client is not None
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), 57600, timeout=READ_TIMEOUT_S)  # raw, no echo
    bridge = PgFocusBridge(client, UM_PER_PIXEL)
    stop = threading.Event()
    thread = threading.Thread(target=bridge.serve, args=(port, stop), daemon=True)
    thread.start()
    try:
        yield Rig(running, bridge, Adapter(master), thread)
    finally:
        stop.set()
        thread.join(30)
        port.close()
        os.close(slave)
        os.close(master)


@pytest.fixture
def rig(start_service, tmp_path) -> Iterator[Rig]:  # noqa: F811
    """A service whose readings are noisy (the lock jitters), the bridge and the adapter."""
    config = service_config(tmp_path)
    with connect(start_service(config, hardware=lambda: oracle_hardware(
            config, noise_um=0.05))) as rig:
        yield rig
