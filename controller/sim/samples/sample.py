"""What a sample is, and what a sample family registers: the types every family module shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from controller.sim.errors import SimError

COVERSLIP_INDEX = 1.52  # borosilicate coverslip glass (D 263, No. 1.5: 170 µm thick)


@dataclass(frozen=True, eq=False)
class Sample:
    """Complex optical path per slice on a periodic grid (rows = y, columns = x)."""

    path_um: np.ndarray  # complex64 (slices, rows, cols): Δn·t + i·κ·t against the medium
    pixel_um: float
    slice_um: float = 0.0  # spacing of the slices; 0 for a thin sample
    medium_index: float = 1.33
    kind: str = "custom"
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    # A thin layer on another plane, far from the sample (dust on the coverslip's far side):
    # complex optical path (rows, cols) like one slice, ``far_distance_um`` beyond the sample's
    # exit plane (its last slice) along the light, through a medium of ``far_index`` (glass).
    far_path_um: np.ndarray | None = None
    far_distance_um: float = 0.0
    far_index: float = COVERSLIP_INDEX

    def __post_init__(self) -> None:
        if self.path_um.ndim != 3 or min(self.path_um.shape) <= 0:
            raise SimError(f"sample: path must be (slices, rows, cols), got {self.path_um.shape}")
        if not self.pixel_um > 0 or not self.medium_index >= 1.0:
            raise SimError(f"sample: need pixel_um > 0 and medium_index >= 1, got "
                           f"{self.pixel_um}, {self.medium_index}")
        if self.path_um.shape[0] > 1 and not self.slice_um > 0:
            raise SimError("sample: a sample of several slices needs slice_um > 0")
        object.__setattr__(self, "path_um", np.asarray(self.path_um, dtype=np.complex64))
        if self.far_path_um is not None:
            if self.far_path_um.shape != self.shape:
                raise SimError(f"sample: the far layer must be {self.shape}, got "
                               f"{self.far_path_um.shape}")
            if not (self.far_distance_um > 0 and self.far_index >= 1.0):
                raise SimError(f"sample: the far layer needs a distance > 0 and an index >= 1, "
                               f"got {self.far_distance_um}, {self.far_index}")
            object.__setattr__(self, "far_path_um",
                               np.asarray(self.far_path_um, dtype=np.complex64))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.path_um.shape[1]), int(self.path_um.shape[2]))

    @property
    def slices(self) -> int:
        return int(self.path_um.shape[0])

    @property
    def thickness_um(self) -> float:
        return self.slices * self.slice_um

    @cached_property
    def focus_depth_um(self) -> float:
        """Depth of the plane the simulator calls in focus, from the lower edge of the first
        slice: each slice's centre weighted by the detail it holds (the energy of its path's
        gradient: uniform or slowly varying layers make no sharp image). A uniform section is
        focused in its middle; cells on a coverglass nearer the glass, where their edges are."""
        if self.slices == 1:
            return 0.0
        centres = (np.arange(self.slices) + 0.5) * self.slice_um
        weights = np.array([np.sum(np.abs(np.diff(layer, axis=0, append=layer[:1])) ** 2)
                            + np.sum(np.abs(np.diff(layer, axis=1, append=layer[:, :1])) ** 2)
                            for layer in self.path_um])
        if not weights.sum() > 0:
            return float(centres.mean())
        return float(np.average(centres, weights=weights))

    def transmittance(self, wavelength_um: float) -> np.ndarray:
        """complex64 (slices, rows, cols): exp(2πi·path/λ)."""
        return transmittance(self.path_um, wavelength_um)

    def describe(self) -> dict[str, Any]:
        """JSON-ready record for stack metadata: kind, seed, the parameters used, the geometry."""
        return {
            "kind": self.kind,
            "seed": self.seed,
            "params": self.params,
            "slices": self.slices,
            "slice_um": self.slice_um,
            "medium_index": self.medium_index,
            "pixel_um": self.pixel_um,
            "shape": list(self.shape),
            "focus_depth_um": self.focus_depth_um,
            **({} if self.far_path_um is None else {
                "far_layer": {"distance_um": self.far_distance_um, "index": self.far_index}}),
        }


def transmittance(path_um: np.ndarray, wavelength_um: float) -> np.ndarray:
    """complex64 exp(2πi·path/λ) of a complex optical path, in float32 parts (a complex exp is
    several times slower)."""
    k = np.float32(2.0 * np.pi / wavelength_um)
    phase = path_um.real * k
    amplitude = np.exp(-k * path_um.imag)
    out = np.empty(path_um.shape, dtype=np.complex64)
    out.real = amplitude * np.cos(phase)
    out.imag = amplitude * np.sin(phase)
    return out


SampleMaker = Callable[[np.random.Generator, tuple[int, int], float, dict[str, Any]], Sample]
"""A family's generator: (seeded rng, shape, pixel_um, the given parameters) -> Sample. It draws
every parameter it was not given and records the values used back into the parameters."""


class SampleFamily(NamedTuple):
    """One registered kind: its generator and every parameter name it accepts (any other name
    given to ``make_sample`` is an error, so a typo never silently falls back to a draw)."""

    make: SampleMaker
    params: frozenset[str]
