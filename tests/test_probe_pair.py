"""The probe pair network's reading (controller/probe_pair.py): its input, which probe it reads,
the median over patches, and a record it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from controller.features import Standardizer
from controller.probe_pair import PairNetwork, pair_input


def lower_frame_network(x: np.ndarray) -> np.ndarray:
    """Reads the first input as the lower frame's defocus (identity standardisation)."""
    return np.stack([x[:, 0], np.abs(x[:, 0])], axis=1)


def identity(n: int) -> Standardizer:
    return Standardizer(np.zeros(n, np.float32), np.ones(n, np.float32))


def test_the_input_is_the_lower_frame_and_the_change_patch_by_patch():
    low = np.array([[1.0, 2.0], [3.0, 4.0]])
    upper = np.array([[1.5, 1.0], [3.0, 6.0]])
    np.testing.assert_array_equal(pair_input(low, upper),
                                  [[1.0, 2.0, 0.5, -1.0], [3.0, 4.0, 0.0, 2.0]])
    with pytest.raises(ValueError, match="differ in shape"):
        pair_input(low, upper[:1])


def test_a_reading_is_the_median_over_patches_and_moves_with_the_offset():
    pair = PairNetwork(3.0, identity(2), lower_frame_network)
    low = np.array([[-8.0], [-7.0], [-30.0]])  # one patch misreads
    reading = pair.read(low, low - 3.0)
    assert reading.defocus_um == -8.0 and reading.distance_um == 8.0
    assert reading.spread_um == pytest.approx(1.4826)
    assert reading.at(3.0) == -11.0  # defocus = z_focus - z: lower 3 µm further up


def test_it_reads_only_a_probe_of_its_own_length():
    pair = PairNetwork(3.0, identity(2), lower_frame_network)
    assert pair.matches(3.0) and pair.matches(-3.0) and pair.matches(3.04)
    assert not pair.matches(2.0) and not pair.matches(3.1)
    with pytest.raises(ValueError, match="positive"):
        PairNetwork(0.0, identity(2), lower_frame_network)


def test_a_record_whose_standardisation_does_not_fit_the_features_is_refused(tmp_path):
    record = {"probe_um": 3.0, "file": "pair.tflite",
              "standardizer": identity(6).to_dict()}
    with pytest.raises(ValueError, match="a pair of the spec's feature vectors makes 8"):
        PairNetwork.from_record(record, tmp_path, 4, lambda path, n_in, n_out: lower_frame_network)
