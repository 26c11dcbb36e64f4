"""The focal-stack file: one OME-TIFF layout written by the simulator and the box, read by training.

Layout (documented for users in docs/stack-format.md):
- one OME-TIFF image, axes ``CZYX``, uint16; C = illumination channels, Z = focus positions;
- OME ``PhysicalSizeX/Y`` = pixel size at the sample (µm), ``PhysicalSizeZ`` = plane spacing,
  ``Plane/PositionZ`` = each plane's focus-drive position z (µm), ``Channel/Name`` = pattern name;
- the OME ``Image/Description`` holds a JSON record (key ``focuslock_stack`` = format version) with
  the optics, each channel's illumination pattern as LED NA vectors, the z list, the true focal
  plane when it is known (simulated stacks), and free-form acquisition metadata.
Fiji/Bio-Formats reads the pixels, sizes, channel names and z; focuslock reads the JSON.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from controller.errors import FocuslockError
from controller.files import replaced_file
from controller.optics import Optics, OpticsError, Pattern
from controller.resources import require_memory

FORMAT_VERSION = 1
AUTOFOCUS_CHANNEL = "autofocus"
# Planes a stack needs to give its ground truth (controller/groundtruth.py fits a parabola
# through the sharpest plane and three on each side); fewer make a stack fit for predict only.
GROUND_TRUTH_MIN_PLANES = 7


class StackFileError(FocuslockError, ValueError):
    """A focal-stack file that is missing, corrupt, or not in focuslock's layout."""


@dataclass
class FocalStack:
    """Planes of one sample position under one or more illumination patterns."""

    images: np.ndarray  # uint16, (channels, planes, rows, columns)
    z_um: np.ndarray  # float64, (planes,): focus-drive position of each plane
    channels: tuple[Pattern, ...]  # the illumination of each channel, in order
    optics: Optics
    focus_z_um: float | None = None  # true focal plane, when known (simulated stacks)
    metadata: dict[str, Any] = field(default_factory=dict)  # sample, seed, source, time ...

    def __post_init__(self) -> None:
        self.z_um = np.asarray(self.z_um, dtype=np.float64)
        if self.images.ndim != 4:
            raise StackFileError(f"stack images must be (channels, planes, rows, cols), got shape "
                                 f"{self.images.shape}")
        if self.images.dtype != np.uint16:
            raise StackFileError(f"stack images must be uint16, got {self.images.dtype}")
        n_channels, n_planes = self.images.shape[:2]
        if n_channels != len(self.channels):
            raise StackFileError(f"stack has {n_channels} image channels but {len(self.channels)} "
                                 f"illumination patterns")
        if n_planes == 0 or self.z_um.shape != (n_planes,):
            raise StackFileError(f"stack has {n_planes} planes but {self.z_um.size} z positions")
        if not np.all(np.isfinite(self.z_um)):
            raise StackFileError("stack z positions must be finite")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise StackFileError(f"stack channel names must be unique, got {names}")

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in self.channels]

    def channel_index(self, name: str) -> int:
        try:
            return self.channel_names.index(name)
        except ValueError:
            raise StackFileError(
                f"stack has no channel {name!r}; it has {self.channel_names}"
            ) from None

    def channel(self, name: str) -> np.ndarray:
        """The (planes, rows, cols) images lit by the named pattern."""
        return self.images[self.channel_index(name)]


def write_stack(path: str | os.PathLike[str], stack: FocalStack) -> Path:
    """Write atomically (temporary file, then rename), so a crash never leaves half a stack;
    the file gets the permissions the user's umask allows."""
    path = Path(path)
    record = {
        "focuslock_stack": FORMAT_VERSION,
        "optics": stack.optics.to_dict(),
        "channels": [c.to_dict() for c in stack.channels],
        "z_um": stack.z_um.tolist(),
        "focus_z_um": stack.focus_z_um,
        "metadata": stack.metadata,
    }
    n_channels, n_planes = stack.images.shape[:2]
    step = float(np.median(np.diff(stack.z_um))) if n_planes > 1 else 1.0
    ome = {
        "axes": "CZYX",
        "Name": str(stack.metadata.get("name", path.stem)),
        "Description": json.dumps(record),
        "PhysicalSizeX": stack.optics.pixel_um,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": stack.optics.pixel_um,
        "PhysicalSizeYUnit": "µm",
        "PhysicalSizeZ": abs(step) or 1.0,
        "PhysicalSizeZUnit": "µm",
        "Channel": {
            "Name": stack.channel_names,
            "IlluminationType": ["Transmitted"] * n_channels,
        },
        "Plane": {
            "PositionZ": [float(z) for _ in range(n_channels) for z in stack.z_um],
            "PositionZUnit": ["µm"] * (n_channels * n_planes),
        },
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_file(path) as f:
            tifffile.imwrite(f, stack.images, ome=True, metadata=ome, photometric="minisblack")
    except OSError as exc:  # a full disk, a folder where the file should go, no permission
        raise StackFileError(f"{path}: cannot write the stack ({exc.strerror or exc})") from exc
    return path


def read_stack_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON record alone (cheap: no pixels are read)."""
    path = Path(path)
    with _opened(path) as tif:
        return _record(path, tif)


def read_stack(path: str | os.PathLike[str]) -> FocalStack:
    """Read and check a stack; any damage is a StackFileError that names the file and the fault."""
    path = Path(path)
    with _opened(path) as tif:
        record = _record(path, tif)
        series = tif.series[0]
        require_memory(f"reading {path} ({'x'.join(map(str, series.shape))} pixels)",
                       math.prod(series.shape) * series.dtype.itemsize)
        images = series.asarray()
    try:
        optics = Optics.from_dict(record["optics"])
        channels = tuple(Pattern.from_dict(c) for c in record["channels"])
        z_um = np.asarray(record["z_um"], dtype=np.float64)
        focus = record.get("focus_z_um")
        metadata = dict(record.get("metadata") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise StackFileError(f"{path}: stack record is incomplete or invalid: {exc}") from exc
    images = np.asarray(images)
    expected = (len(channels), z_um.size)
    if images.ndim >= 2 and images.size == math.prod((*expected, *images.shape[-2:])):
        # tifffile drops axes of length one: a one-channel or one-plane stack comes back 3-D
        images = images.reshape(*expected, *images.shape[-2:])
    if images.ndim != 4 or images.shape[:2] != expected:
        raise StackFileError(f"{path}: pixel data of shape {images.shape} does not match "
                             f"{expected[0]} channels x {expected[1]} planes in its record")
    try:
        return FocalStack(images, z_um, channels, optics,
                          None if focus is None else float(focus), metadata)
    except (StackFileError, OpticsError) as exc:
        raise StackFileError(f"{path}: {exc}") from exc


@contextmanager
def _opened(path: Path) -> Iterator[tifffile.TiffFile]:
    """The open TIFF; a missing or damaged file, whatever tifffile raises, is a StackFileError."""
    try:
        with tifffile.TiffFile(path) as tif:
            yield tif
    except StackFileError:
        raise
    except FileNotFoundError:
        raise StackFileError(f"{path}: no such stack file") from None
    except Exception as exc:  # tifffile raises many types for a damaged file
        raise StackFileError(f"{path}: damaged or not a readable TIFF "
                             f"({type(exc).__name__}: {exc})") from exc


def _record(path: Path, tif: tifffile.TiffFile) -> dict[str, Any]:
    xml = tif.ome_metadata
    if not xml:
        raise StackFileError(f"{path}: not an OME-TIFF (no OME-XML metadata)")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise StackFileError(f"{path}: corrupt OME-XML: {exc}") from exc
    description = next((el.text for el in root.iter() if el.tag.endswith("Description")), None)
    if not description:
        raise StackFileError(f"{path}: OME-TIFF without a focuslock stack record "
                             f"(no Image/Description); see docs/stack-format.md")
    try:
        record = json.loads(description)
    except json.JSONDecodeError as exc:
        raise StackFileError(f"{path}: focuslock stack record is not valid JSON: {exc}") from exc
    if not isinstance(record, dict) or "focuslock_stack" not in record:
        raise StackFileError(f"{path}: Image/Description is not a focuslock stack record")
    if record["focuslock_stack"] != FORMAT_VERSION:
        raise StackFileError(f"{path}: stack format version {record['focuslock_stack']} is not "
                             f"supported (this focuslock reads version {FORMAT_VERSION})")
    return record
