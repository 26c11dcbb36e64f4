"""A line into the digital twin from another process: faults to inject, the truth to read.

``focuslock serve`` on the twin (``board.backend = "firmware-sim"``) owns the twin in its own
process, so a soak or a person driving the real service cannot reach the simulated board or the
virtual camera directly. With ``FOCUSLOCK_TWIN_DIR`` set, the twin keeps its firmware's files in
that folder (the board's last published state stays readable after the service exits) and
listens at ``<dir>/faults.sock``, a Unix socket: one command per connection, one JSON reply.

Commands: ``unplug`` and ``replug`` (the USB cable, controller/sim/board.py), ``camera-dead``
and ``camera-alive`` (no frame arrives: the camera times out), a scenario event (``knock UM``,
``empty-field``, ``sample-back``, ``dark``, ``saturated``, ``light-normal``;
controller/sim/scenario.py), and ``truth``: the true defocus of the last frame rendered and the
board's published state. Without the variable nothing listens: a simulator-only back door.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, get_args

from controller.sim.devices import VirtualCamera
from controller.sim.scenario import Event, EventKind, Scenario

if TYPE_CHECKING:
    from controller.sim.twin import DigitalTwin

TWIN_DIR_ENV = "FOCUSLOCK_TWIN_DIR"
SOCKET_NAME = "faults.sock"
ACCEPT_TICK_S = 0.5  # how soon the listener notices it was closed
REPLY_LIMIT = 65536


def twin_dir_from_environ() -> Path | None:
    """The folder the environment asks the twin to work (and listen) in; None: a private one."""
    value = os.environ.get(TWIN_DIR_ENV, "")
    return Path(value) if value else None


class FaultLine:
    """Serves the commands of the module docstring for one twin, on its own daemon thread."""

    def __init__(self, twin: DigitalTwin, path: Path) -> None:
        self.twin = twin
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a service that was killed
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._server.settimeout(ACCEPT_TICK_S)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="twin-fault-line", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                try:
                    command = connection.recv(1024).decode().strip()
                    reply = self.carry_out(command)
                except (OSError, UnicodeDecodeError, ValueError) as exc:
                    reply = {"error": f"{type(exc).__name__}: {exc}"}
                with contextlib.suppress(OSError):
                    connection.sendall(json.dumps(reply).encode())

    def carry_out(self, command: str) -> dict[str, Any]:
        """Do what ``command`` says to the twin; what it did, or the truth."""
        name, _, argument = command.partition(" ")
        board, camera = self.twin.board, self.twin.rig.camera
        if name == "truth":
            defocus = self.twin.scope.last_defocus_um
            return {"defocus_um": None if math.isnan(defocus) else defocus,
                    "board": board.state()}
        if name in ("unplug", "replug"):
            board.unplug() if name == "unplug" else board.replug()
        elif name in ("camera-dead", "camera-alive") and isinstance(camera, VirtualCamera):
            camera.dead = name == "camera-dead"
        elif name in get_args(EventKind):
            value = float(argument) if argument else 0.0
            Scenario([Event(0.0, cast(EventKind, name), value)]).advance(self.twin.scope, 0.0)
        else:
            raise ValueError(f"unknown twin command {command!r}")
        return {"done": command}


def send(path: Path, command: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Send one command to a twin's fault line and return its reply (the other side's end)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout_s)
        connection.connect(str(path))
        connection.sendall(command.encode())
        connection.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := connection.recv(REPLY_LIMIT):
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    if "error" in reply:
        raise RuntimeError(f"twin: {command}: {reply['error']}")
    return reply
