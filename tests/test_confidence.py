"""The numbers a two-headed reading is judged by (controller/confidence.py): the sign's ambiguity,
the features' unfamiliarity, the expected error, and the limits a record carries."""

import math

import numpy as np
import pytest

from controller.confidence import (
    SIGN_FREE_UM,
    Calibration,
    DistanceTable,
    Familiarity,
    sign_ambiguity,
)


@pytest.mark.parametrize(("signed", "distance", "expected"), [
    (10.0, 10.0, 0.0),  # the signed head is as sure as the distance head
    (-10.0, 10.0, 0.0),
    (0.0, 10.0, 1.0),  # a coin toss between +10 and -10 answers 0
    (4.0, 10.0, 0.6),  # p = 0.7: (2p - 1) * 10
    (12.0, 10.0, 0.0),  # beyond the distance: no less sure
    (0.1, SIGN_FREE_UM / 2, 0.0),  # near focus the sign does not matter
    (math.nan, 10.0, 1.0),
    (10.0, None, 1.0),  # one head: nothing but its sign says which side
    (-SIGN_FREE_UM / 2, None, 0.0),  # ... which near focus does not matter
])
def test_sign_ambiguity_is_how_far_the_signed_head_hedges(signed, distance, expected):
    assert sign_ambiguity(signed, distance) == pytest.approx(expected)


def test_training_rows_score_at_most_one_and_foreign_rows_far_above():
    rng = np.random.default_rng(0)
    # training rows near a 3-dimensional subspace of 20 features
    basis = np.linalg.qr(rng.normal(size=(20, 3)))[0].T
    train = rng.normal(size=(4000, 3)) * [3.0, 2.0, 1.0] @ basis \
        + 0.05 * rng.normal(size=(4000, 20))
    familiarity = Familiarity.fit(train, k=3)
    scores = familiarity.score(train)
    assert np.mean(scores <= 1.0) == pytest.approx(0.99, abs=0.01)
    along = np.array([[30.0, 20.0, 10.0]]) @ basis  # ten standard deviations along each axis
    off = train[:100] + rng.normal(size=(100, 20))  # twenty times the noise off the subspace
    assert familiarity.score(along)[0] > 10 and (familiarity.score(off) > 10).all()
    again = Familiarity.from_dict(familiarity.to_dict())
    np.testing.assert_allclose(again.score(off), familiarity.score(off))


def test_a_familiarity_whose_parts_do_not_fit_is_refused():
    good = Familiarity.fit(np.random.default_rng(1).normal(size=(50, 4)), k=2).to_dict()
    with pytest.raises(ValueError, match="do not fit"):
        Familiarity.from_dict({**good, "components": [[1.0, 0.0]]})


def test_a_distance_table_is_looked_up_by_distance():
    table = DistanceTable((0.0, 2.0, 10.0), (0.3, 0.8, 3.0))
    assert [table.at(d) for d in (0.0, 1.9, 2.0, 9.9, 10.0, 50.0)] == \
        [0.3, 0.3, 0.8, 0.8, 3.0, 3.0]
    assert DistanceTable.from_dict(table.to_dict()) == table
    with pytest.raises(ValueError, match="ascending"):
        DistanceTable((0.0, 5.0, 2.0), (0.3, 0.8, 3.0))
    # an expected-error table as bundles calibrated before the table held anything else wrote it
    assert DistanceTable.from_dict({"distance_edges_um": [0.0, 2.0, 10.0],
                                    "error_um": [0.3, 0.8, 3.0]}) == table


def test_calibration_round_trips_and_refuses_impossible_limits():
    calibration = Calibration(0.4, 2.5, DistanceTable((0.0,), (1.0,)), "test")
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    by_distance = Calibration(0.4, 2.5, None, "test", DistanceTable((0.0, 5.0), (3.0, 1.5)))
    assert Calibration.from_dict(by_distance.to_dict()) == by_distance
    assert [by_distance.unfamiliarity_limit(d) for d in (0.0, 4.9, 5.0, 30.0)] == \
        [3.0, 3.0, 1.5, 1.5]
    assert calibration.unfamiliarity_limit(0.0) == calibration.unfamiliarity_limit(30.0) == 2.5
    assert not calibration.sign_is_ambiguous(0.4) and calibration.sign_is_ambiguous(0.45)
    never = Calibration(None, 2.5, None, "a network whose sign is never right enough")
    assert Calibration.from_dict(never.to_dict()) == never
    assert never.sign_is_ambiguous(0.0) and never.sign_is_ambiguous(0.5)
    for bad in ({"max_sign_ambiguity": 1.5}, {"max_unfamiliarity": 0.0}):
        with pytest.raises(ValueError, match="max_"):
            Calibration.from_dict({**calibration.to_dict(), **bad})
