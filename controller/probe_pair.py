"""The probe pair: the signed defocus read from two frames a known probe move apart.

Why: under one off-axis LED the spectrum magnitude of a weak sample's image is, inside the two
pupil circles' lens, ``|S(f)| · |sin(πλD|f|² + ψ)|``: the sample's own spectrum S times the
defocus transfer, shifted by the sample's absorption-to-phase relation ψ. One frame cannot tell
(D, ψ) from (-D, -ψ), and ψ is the sample's, so a network that learned one kind of sample reads
another's sign backwards (docs/training.md). Two frames of the same field a probe p apart in z
share S exactly: the difference of their log spectra is ``log|sin(πλ(D - p)f² + ψ)| -
log|sin(πλDf² + ψ)|``, in which the sample's texture cancels and the known direction of the move
breaks the symmetry ((-D, -ψ) would give the same difference for a probe of -p, not +p). A small
network learns the rest (ψ, the LED's finite size, aberrations) across sample families.

The pair network reads, per patch, the raw feature vectors of the lower frame (at z) and of the
upper one (at z + ``probe_um``) as ``[low, upper - low]``, standardised by its own frozen
standardisation, and answers the signed defocus at the lower frame and its distance (the main
network's two heads); the frame's answer is the median over patches. It uses the box's one
feature function (controller/features.py) and is trained by ``focuslock pair-probe``
(training/probe_pair.py) on the same stores as the main network. The loop asks it after a sign
probe of exactly ``probe_um`` (controller/sign_probe.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.features import Standardizer

# a probe this close to the pair network's probe_um counts as that probe (the drive's step)
PROBE_MATCH_UM = 0.05

Forward = Callable[[np.ndarray], np.ndarray]  # standardised rows in, (rows, 2) µm out


def pair_input(low: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The pair network's raw input rows from the lower and the upper frame's patch features
    (patches, n) each, patch by patch: ``[low, upper - low]``, float32 (patches, 2n)."""
    low = np.asarray(low, np.float32)
    upper = np.asarray(upper, np.float32)
    if low.shape != upper.shape:
        raise ValueError(f"probe pair: the two frames' features differ in shape ({low.shape} "
                         f"and {upper.shape})")
    return np.concatenate([low, upper - low], axis=-1)


@dataclass(frozen=True)
class PairReading:
    """What the pair network says of the lower frame of a pair."""

    defocus_um: float  # signed defocus at the lower frame (median over patches)
    distance_um: float  # its distance head (median over patches)
    spread_um: float  # robust spread (1.4826 x MAD) of the patches' signed answers; NaN for one

    def at(self, offset_um: float) -> float:
        """The signed defocus ``offset_um`` above the lower frame (defocus = z_focus - z)."""
        return self.defocus_um - offset_um


class PairNetwork:
    """The bundle's pair network: its probe length, standardisation and int8 weights."""

    def __init__(self, probe_um: float, standardizer: Standardizer, network: Forward) -> None:
        if not (math.isfinite(probe_um) and probe_um > 0):
            raise ValueError(f"probe_um must be a positive number of µm, got {probe_um}")
        self.probe_um = probe_um
        self.standardizer = standardizer
        self._network = network

    @classmethod
    def from_record(cls, record: Mapping[str, Any], bundle: Path, n_features: int,
                    load: Callable[[Path, int, int], Forward]) -> PairNetwork:
        """From a bundle record's ``pair`` entry (its file checked by the bundle's loader);
        ``load(path, inputs, outputs)`` opens an int8 network."""
        standardizer = Standardizer.from_dict(record["standardizer"])
        if standardizer.mean.size != 2 * n_features:
            raise ValueError(f"its standardisation has {standardizer.mean.size} inputs, a pair "
                             f"of the spec's feature vectors makes {2 * n_features}")
        return cls(float(record["probe_um"]), standardizer,
                   load(bundle / str(record["file"]), 2 * n_features, 2))

    def matches(self, move_um: float) -> bool:
        """Whether a probe move of ``move_um`` (either way) is the one this network reads."""
        return abs(abs(move_um) - self.probe_um) <= PROBE_MATCH_UM

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Per-row answers (signed, distance) for raw pair input rows (rows, 2n)."""
        return self._network(self.standardizer.apply(np.asarray(rows, np.float32)))

    def read(self, low: np.ndarray, upper: np.ndarray) -> PairReading:
        """The lower frame's defocus from both frames' patch features (patches, n)."""
        out = self.read_rows(pair_input(low, upper)).astype(np.float64)
        signed = out[:, 0]
        defocus = float(np.median(signed))
        spread = (1.4826 * float(np.median(np.abs(signed - defocus))) if signed.size > 1
                  else math.nan)
        return PairReading(defocus, float(np.median(out[:, 1])), spread)
