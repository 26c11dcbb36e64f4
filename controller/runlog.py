"""The loop's structured record of every step, written as it happens.

One JSON object per line (``.jsonl``: what a program reads back) and optionally the same rows
as CSV (what a person opens in a spreadsheet). Each line is flushed at once, so a crash or a
power cut loses at most the step in flight. Callers may add columns (the digital twin adds the
true focus error, which a real box cannot know). A lock runs for days (2 steps a second is about
50 MB of JSON a day), so a log can rotate by size: ``steps.jsonl`` becomes ``steps.jsonl.1`` and
the oldest of ``keep`` old files is dropped, which bounds the disk a box ever uses.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from controller.files import new_dir


@dataclass(frozen=True)
class StepRecord:
    """One step of focus-now or the lock. Lengths in µm, times in seconds (loop clock)."""

    t: float  # when the step began
    step: int  # counts from 1 within a run
    state: str  # the loop's state after the step
    z_um: float | None  # drive position at capture (None: not known, e.g. a fault)
    defocus_um: float | None  # the model's prediction, z_focus - z
    confidence: float | None
    # correction wanted: defocus_um (or probed_sign × distance_um) + offset - the model's bias
    error_um: float | None
    rejected: str  # failed gate names joined by '+', '' when trusted
    move_um: float  # the move made (0 when none)
    limited: str  # '', 'max_step', 'travel_window' (lock), 'search_window' (focus now)
    reason: str  # why the state is what it is, or what failed
    cue: str = ""  # which cue the reading is ("network", "parallax"; '' without a reading)
    cue_reason: str = ""  # why that cue decided, where two were read
    parallax_um: float | None = None  # the parallax cue's reading, where it was read
    parallax_confidence: float | None = None
    # The sign (controller/sign_probe.py): the reading's sign-free distance, whether its sign is
    # ambiguous, a probe move this step made (then also in move_um; 0 when none), and the sign a
    # probe decided for error_um (+1/-1; 0: error_um has the reading's own sign)
    distance_um: float | None = None
    sign_ambiguous: bool = False
    probe_um: float = 0.0
    probed_sign: int = 0
    sharpness: float | None = None  # the incoherent pattern's, in focus now's finishing steps

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


STEP_COLUMNS = tuple(f.name for f in fields(StepRecord))


class RunLog:
    """Append-only JSON-lines (and optionally CSV) log of a run, rotated past ``max_bytes``."""

    def __init__(self, jsonl_path: str | os.PathLike[str],
                 csv_path: str | os.PathLike[str] | None = None,
                 extra_columns: tuple[str, ...] = (), *, max_bytes: int | None = None,
                 keep: int = 4) -> None:
        if (max_bytes is not None and max_bytes <= 0) or keep < 1:
            raise ValueError("run log: max_bytes must be positive and keep at least 1")
        self.jsonl_path = Path(jsonl_path)
        self.csv_path = None if csv_path is None else Path(csv_path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._columns = STEP_COLUMNS + tuple(extra_columns)
        self._csv_file: IO[str] | None = None
        self._csv: csv.DictWriter[str] | None = None
        self._open()

    def _open(self) -> None:
        self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
        self._jsonl: IO[str] = self.jsonl_path.open("w", encoding="utf-8")
        if self.csv_path is not None:
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            self._csv_file = self.csv_path.open("w", encoding="utf-8", newline="")
            self._csv = csv.DictWriter(self._csv_file, fieldnames=self._columns)
            self._csv.writeheader()

    def write(self, record: StepRecord, **extra: Any) -> None:
        unknown = set(extra) - set(self._columns)
        if unknown:
            raise ValueError(f"run log: undeclared columns {sorted(unknown)}")  # a caller's bug
        row = record.to_row() | extra
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        if self._csv is not None and self._csv_file is not None:
            self._csv.writerow(row)
            self._csv_file.flush()
        if self.max_bytes is not None and self._jsonl.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self.close()
        for path in (self.jsonl_path, self.csv_path):
            if path is None:
                continue
            path.with_name(f"{path.name}.{self.keep}").unlink(missing_ok=True)
            for n in range(self.keep - 1, 0, -1):
                older = path.with_name(f"{path.name}.{n}")
                if older.exists():
                    older.replace(path.with_name(f"{path.name}.{n + 1}"))
            path.replace(path.with_name(f"{path.name}.1"))
        self._open()

    def close(self) -> None:
        self._jsonl.close()
        if self._csv_file is not None:
            self._csv_file.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_run(jsonl_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a JSON-lines run log, in order."""
    with Path(jsonl_path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def timestamped_dir(root: Path, prefix: str) -> Path:
    """A new folder for one run's files, ``root/prefix-YYYYmmdd-HHMMSS`` (``-2``, ``-3`` ...
    after it for runs started in the same second): created here, so no two runs share one."""
    return new_dir(root / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")

