"""The pymmcore-plus engine against a real service on loopback driving the virtual rig: real MDA
sequences run by pymmcore-plus's own runner in a real core (UniMMCore, the C++ core with
pymmcore-plus's pure-Python devices, since Micro-Manager's demo adapters are a download away);
its camera snaps record the virtual microscope's true defocus, its XY stage moves the sample to
tiles at other heights."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("PYMM_LOG_FILE", os.devnull)  # not its log file in ~/.local ("0" is not off)

import useq
from pymmcore_plus.experimental.unicore import (
    ShutterDevice,
    SimpleCameraDevice,
    StageDevice,
    UniMMCore,
    XYStageDevice,
)

from controller.integrations.pymmcore_engine import FocuslockEngine
from controller.service.client import FocuslockClient
from controller.sim.devices import VirtualScope

logging.getLogger().setLevel(logging.WARNING)  # Python's default: pymmcore-plus's import set DEBUG

TIMEOUT_S = 30.0
IN_FOCUS_UM = 0.5  # the service's focus and lock tolerance
TILE_HEIGHTS_UM = {0.0: 0.0, 500.0: 3.0, 1000.0: -2.0}  # x of each tile: its sample's height
Z_TRAVEL_UM = 100.0


class TruthCamera(SimpleCameraDevice):
    """The acquisition camera: a blank frame; what it keeps is the true defocus at each snap."""

    def __init__(self, scope: VirtualScope) -> None:
        super().__init__()
        self.scope = scope
        self.exposure_ms = 10.0
        self.defocus_um: list[float] = []

    def get_exposure(self) -> float:
        return self.exposure_ms

    def set_exposure(self, exposure: float) -> None:
        self.exposure_ms = exposure

    def sensor_shape(self) -> tuple[int, int]:
        return (16, 16)

    def dtype(self) -> Any:
        return np.uint16

    def snap(self, buffer: np.ndarray) -> dict[str, Any]:
        buffer[:] = 0
        self.defocus_um.append(self.scope.defocus_um())
        return {}


class TileStage(XYStageDevice):
    """The XY stage: each tile's sample lies at its own height (TILE_HEIGHTS_UM)."""

    def __init__(self, scope: VirtualScope) -> None:
        super().__init__()
        self.scope = scope
        self.xy = (0.0, 0.0)

    def set_position_um(self, x: float, y: float) -> None:
        step = TILE_HEIGHTS_UM[x] - TILE_HEIGHTS_UM[self.xy[0]]
        self.scope.focal_plane.knock(step)
        self.xy = (x, y)

    def get_position_um(self) -> tuple[float, float]:
        return self.xy

    def home(self) -> None:
        self.set_position_um(0.0, 0.0)

    def stop(self) -> None:
        pass

    def set_origin(self) -> None:
        pass

    def set_origin_x(self) -> None:
        pass

    def set_origin_y(self) -> None:
        pass


class ZStage(StageDevice):
    """Micro-Manager's Z stage (z-stacks), not the box's drive; it refuses beyond its travel."""

    z_um = 0.0

    def set_position_um(self, val: float) -> None:
        if abs(val) > Z_TRAVEL_UM:
            raise RuntimeError(f"Z stage: {val} µm is beyond its travel")
        self.z_um = val

    def get_position_um(self) -> float:
        return self.z_um

    def home(self) -> None:
        self.z_um = 0.0

    def stop(self) -> None:
        pass

    def set_origin(self) -> None:
        pass


class Shutter(ShutterDevice):
    is_open = False

    def get_open(self) -> bool:
        return self.is_open

    def set_open(self, open: bool) -> None:
        self.is_open = open


class Acquisition:
    """A core with the Python devices, the engine on it, and what the sequence produced."""

    def __init__(self, core: UniMMCore, camera: TruthCamera, box: FocuslockClient) -> None:
        self.core = core
        self.camera = camera
        self.box = box
        self.frames: list[tuple[dict[str, int], dict[str, Any]]] = []
        self.modes_at_start: list[tuple[dict[str, int], str]] = []  # the box's mode, per event
        core.mda.events.frameReady.connect(self._frame)
        core.mda.events.eventStarted.connect(self._started)

    def run(self, sequence: useq.MDASequence, box: FocuslockClient | None = None,
            **engine: Any) -> FocuslockEngine:
        made = FocuslockEngine(self.core, box or self.box, use_hardware_sequencing=False,
                               **engine)
        self.core.mda.set_engine(made)
        self.core.mda.run(sequence)
        return made

    def _frame(self, image: np.ndarray, event: useq.MDAEvent, meta: dict[str, Any]) -> None:
        self.frames.append((dict(event.index), meta["extra"]["focuslock"]))

    def _started(self, event: useq.MDAEvent) -> None:
        self.modes_at_start.append((dict(event.index), self.box.status()["mode"]))


@pytest.fixture
def acquisition(running, tmp_path) -> Iterator[Acquisition]:
    scope = running.hardware[-1].rig.scope
    assert scope is not None
    core = UniMMCore(mm_path=str(tmp_path))  # no C++ adapters: Python devices only
    camera = TruthCamera(scope)
    for label, device in (("Camera", camera), ("XY", TileStage(scope)), ("Z", ZStage()),
                          ("Shutter", Shutter())):
        core.loadPyDevice(label, device)
    core.initializeAllDevices()
    core.setCameraDevice("Camera")
    core.setXYStageDevice("XY")
    core.setFocusDevice("Z")
    core.setShutterDevice("Shutter")
    yield Acquisition(core, camera, FocuslockClient(running.server.url, timeout=TIMEOUT_S))
    core.unloadAllDevices()


def back_to_back(loops: int) -> useq.TIntervalLoops:
    """A time-lapse with no wait between its time points."""
    return useq.TIntervalLoops(interval=timedelta(0), loops=loops)


TILES = useq.MDASequence(stage_positions=tuple(useq.AbsolutePosition(x=x, y=0.0, z=0.0)
                                                      for x in TILE_HEIGHTS_UM),
                         autofocus_plan=useq.AxesBasedAF(axes=("p",)))


def test_a_tiled_scan_asks_the_box_to_focus_at_each_position(acquisition):
    acquisition.run(TILES)
    assert [index["p"] for index, _ in acquisition.frames] == [0, 1, 2]
    for (index, box), defocus in zip(acquisition.frames, acquisition.camera.defocus_um,
                                     strict=True):
        assert abs(defocus) < IN_FOCUS_UM  # each tile's height was found before its image
        assert box["autofocus"]["success"] is True and box["autofocus"]["p"] == index["p"]
        assert box["mode"] == "idle" and isinstance(box["state"], str)
        assert abs(box["defocus_um"]) < IN_FOCUS_UM and 0 <= box["confidence"] <= 1
        assert abs(box["z_um"] - list(TILE_HEIGHTS_UM.values())[index["p"]]) < IN_FOCUS_UM
    seqs = [box["seq"] for _, box in acquisition.frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3  # a focus (new steps) per position


def test_a_time_lapse_holds_the_lock_and_lets_go_at_the_end(acquisition):
    acquisition.run(useq.MDASequence(time_plan=back_to_back(3)), hold_lock=True)
    assert len(acquisition.frames) == 3
    # the sample started 8 µm away: the first image waited until the lock held
    assert all(abs(defocus) < IN_FOCUS_UM for defocus in acquisition.camera.defocus_um)
    assert all(box["state"] == "locked" and box["mode"] == "lock"
               for _, box in acquisition.frames)
    assert acquisition.box.status()["mode"] == "idle"


def test_the_lock_pauses_for_each_z_stack_and_resumes_between_them(acquisition):
    sequence = useq.MDASequence(time_plan=back_to_back(2),
                                z_plan=useq.ZRangeAround(range=2, step=1),
                                axis_order=tuple("tpcz"))
    acquisition.run(sequence, hold_lock=True)
    assert len(acquisition.frames) == 6
    for t in (0, 1):
        stack = [box for index, box in acquisition.frames if index["t"] == t]
        assert all(box["mode"] == "idle" for box in stack)  # paused through the stack
        assert len({box["z_um"] for box in stack}) == 1  # the box's drive stood still
    assert all(abs(defocus) < IN_FOCUS_UM for defocus in acquisition.camera.defocus_um)
    # the lock ran again between the stacks, and not after the sequence
    assert ({"t": 1, "z": 0}, "lock") in acquisition.modes_at_start
    assert acquisition.box.status()["mode"] == "idle"


def test_a_cancelled_time_lapse_lets_go_of_the_lock(acquisition):
    cancelled: list[useq.MDASequence] = []
    acquisition.core.mda.events.sequenceCanceled.connect(cancelled.append)
    acquisition.core.mda.events.frameReady.connect(lambda *_: acquisition.core.mda.cancel())
    acquisition.run(useq.MDASequence(time_plan=back_to_back(5)), hold_lock=True)
    assert len(acquisition.frames) == 1 and len(cancelled) == 1
    assert acquisition.box.status()["mode"] == "idle"


def test_a_failed_sequence_lets_go_of_the_lock(acquisition):
    sequence = useq.MDASequence(stage_positions=(useq.AbsolutePosition(x=0.0, y=0.0, z=0.0),
                                                 useq.AbsolutePosition(x=0.0, y=0.0,
                                                                       z=2 * Z_TRAVEL_UM)))
    with pytest.raises(RuntimeError, match="beyond its travel"):
        acquisition.run(sequence, hold_lock=True)
    assert len(acquisition.frames) == 1
    assert acquisition.box.status()["mode"] == "idle"


def test_a_box_that_refuses_fails_the_autofocus_not_the_sequence(acquisition, caplog):
    acquisition.box.lock()  # focus now is refused while the lock runs: 409
    with caplog.at_level(logging.WARNING, logger="pymmcore-plus"):
        engine = acquisition.run(TILES)
    assert len(acquisition.frames) == 3
    for _, box in acquisition.frames:
        assert box["autofocus"]["success"] is False and "409" in box["autofocus"]["reason"]
        assert box["mode"] == "lock"
    failures = [r.getMessage() for r in caplog.records
                if r.getMessage().startswith("Hardware autofocus failed.")]
    assert len(failures) == 3 and "the lock is running" in failures[0]
    assert engine._af_succeeded is False
    acquisition.box.unlock()


def test_a_box_that_is_down_fails_the_autofocus_and_the_frames_say_so(acquisition, caplog):
    with socket.socket() as spare:  # a port nothing listens on
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    down = FocuslockClient(f"http://127.0.0.1:{port}", timeout=TIMEOUT_S)
    with caplog.at_level(logging.WARNING, logger="pymmcore-plus"):
        acquisition.run(TILES, box=down)
    assert len(acquisition.frames) == 3
    assert all(set(box) == {"error"} and "no answer" in box["error"]
               for _, box in acquisition.frames)
    assert sum("Hardware autofocus failed." in r.getMessage() for r in caplog.records) == 3
