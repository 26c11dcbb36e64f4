"""A real service on loopback: the worker thread, the HTTP server and the in-process virtual
microscope from a config, with the truth-reading model stand-in of the loop tests."""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.config import Config, config_from_dict
from controller.hardware.rig import open_rig
from controller.optics import preset
from controller.prediction import Predictor
from controller.sensing import NetworkSensor
from controller.service.api import ApiServer
from controller.service.daemon import FocusService
from controller.service.hardware import Hardware, ModelInfo
from controller.service.sdnotify import Notifier
from controller.sim.twin import DigitalTwin, open_twin
from tests.loop.doubles import OraclePredictor

FOCUS_Z_UM = 0.0  # the twin's focal plane (no drift unless a test asks)
START_Z_UM = 8.0


def service_config(tmp_path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {
        "log_dir": str(tmp_path / "runs"),
        "sim": {"frame_size": 128, "start_z_um": START_Z_UM, "focus_z_um": FOCUS_Z_UM},
        "lock": {"rate_hz": 20.0},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return config_from_dict(data)


def oracle_hardware(config: Config, **oracle: Any) -> Hardware:
    """The virtual rig the config asks for, read by a model that knows the truth."""
    rig = open_rig(config)
    assert rig.scope is not None
    sensor = NetworkSensor(OraclePredictor(rig.scope, **oracle), rig.preset.autofocus)
    return Hardware(rig, sensor, ModelInfo("oracle@test"))


def twin_hardware(config: Config, workdir: Path, twins: list[DigitalTwin]
                  ) -> Callable[[], Hardware]:
    """A hardware factory for the digital twin (the firmware under MicroPython behind the real
    board driver), read by the truth-reading model; each twin made lands in ``twins``."""
    def make() -> Hardware:
        size = config.sim.frame_size
        twin = open_twin(preset("paper"), config.sim, frame_shape=(size, size), workdir=workdir)
        twins.append(twin)
        sensor = NetworkSensor(OraclePredictor(twin.scope), twin.rig.preset.autofocus)
        return Hardware(twin.rig, sensor, ModelInfo("oracle@twin"))
    return make


class HangingModel:
    """The truth-reading model, which can be made to hang mid-step like a wedged driver."""

    def __init__(self, oracle: Predictor) -> None:
        self.oracle = oracle
        self.free = threading.Event()
        self.free.set()
        self.stuck = threading.Event()

    @property
    def min_confidence(self) -> float:
        return self.oracle.min_confidence

    @property
    def pair(self):
        return self.oracle.pair

    def predict(self, image):
        if not self.free.is_set():
            self.stuck.set()
            self.free.wait(30)
        return self.oracle.predict(image)


def hanging_hardware(config: Config, models: list[HangingModel]) -> Callable[[], Hardware]:
    """A hardware factory whose model can be made to hang; each model made lands in ``models``."""
    def make() -> Hardware:
        made = oracle_hardware(config)
        assert isinstance(made.sensor, NetworkSensor)
        models.append(HangingModel(made.sensor.predictor))
        return dataclasses.replace(made, sensor=dataclasses.replace(made.sensor,
                                                                    predictor=models[-1]))
    return make


@pytest.fixture
def hanging_service(start_service, tmp_path) -> tuple[Running, HangingModel]:
    """A service on the virtual rig whose model can be made to hang (``model.free.clear()``)."""
    config = service_config(tmp_path)
    models: list[HangingModel] = []
    running = start_service(config, hardware=hanging_hardware(config, models))
    return running, models[-1]


@dataclass
class Client:
    """Plain HTTP on loopback: one request per connection, like curl."""

    port: int

    def request(self, method: str, path: str, body: Any = None, *,
                content_type: str | None = "application/json", raw: bytes | None = None,
                headers: dict[str, str] | None = None
                ) -> tuple[int, Any, http.client.HTTPResponse]:
        """The status, the answer (JSON parsed, text as text; an event stream's body is left
        unread: it ends only when we hang up) and the response."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = {} if content_type is None else {"Content-Type": content_type}
        payload = raw if raw is not None else (None if body is None else json.dumps(body))
        if payload is None and method in ("POST", "PUT"):
            payload = b""
        connection.request(method, path, body=payload, headers={**sent, **(headers or {})})
        response = connection.getresponse()
        streamed = response.getheader("Content-Type", "").startswith("text/event-stream")
        data = b"" if streamed else response.read()
        connection.close()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(data) if kind.startswith("application/json") \
            else data.decode(), response

    def get(self, path: str) -> tuple[int, Any]:
        status, data, _ = self.request("GET", path)
        return status, data

    def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        status, data, _ = self.request("POST", path, body)
        return status, data

    def put(self, path: str, body: Any) -> tuple[int, Any]:
        status, data, _ = self.request("PUT", path, body)
        return status, data

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 15.0,
                 what: str = "") -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            _, status = self.get("/api/status")
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}: {status}")
            time.sleep(0.02)


@dataclass
class Running:
    service: FocusService
    server: ApiServer
    client: Client
    hardware: list[Hardware]  # every rig the service opened, newest last
    notifier: Notifier | None


@pytest.fixture
def start_service(tmp_path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(config: Config | None = None, *, hardware: Callable[[], Hardware] | None = None,
              notifier: Notifier | None = None, **options: Any) -> Running:
        config = config or service_config(tmp_path)
        opened: list[Hardware] = []

        def open_and_remember() -> Hardware:
            made = hardware() if hardware is not None else oracle_hardware(config)
            opened.append(made)
            return made

        service = FocusService(config, open_and_remember, notifier=notifier, **options)
        server = ApiServer(("127.0.0.1", 0), service)
        service.start()
        server.start()
        running = Running(service, server, Client(server.server_address[1]), opened, notifier)
        started.append(running)
        return running

    yield start
    for running in started:
        running.server.shutdown()
        running.server.server_close()
        running.service.close()
        if running.notifier is not None:
            running.notifier.close()


@pytest.fixture
def running(start_service) -> Running:
    return start_service()
