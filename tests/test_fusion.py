"""The fusion of the network's reading with the parallax cue's: who decides, and that a far move
never rests on a sign the parallax cue did not confirm."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.fusion import FusionRules, fuse
from controller.gates import check_prediction
from controller.parallax import ParallaxReading
from controller.prediction import Prediction

RULES = FusionRules(sign_margin_um=2.0, agree_um=2.0, agree_fraction=0.25)
NET_MIN = 0.4  # the bundled model's threshold
PAR_MIN = 0.3


def network(defocus_um: float, confidence: float = 0.9, in_range: bool = True) -> Prediction:
    return Prediction(defocus_um, confidence, 0.1, (defocus_um,), in_range)


def parallax(defocus_um: float, confidence: float = 0.8, in_range: bool = True) -> ParallaxReading:
    return ParallaxReading(defocus_um=defocus_um, confidence=confidence,
                           shift_px=-2.5 * defocus_um, patch_defocus_um=(defocus_um,) * 4,
                           in_range=in_range)


def passes(p: Prediction) -> bool:
    return not check_prediction(p, NET_MIN)  # a fused reading carries its own threshold


def test_agreement_lets_the_network_decide():
    fused = fuse(network(5.0), NET_MIN, parallax(5.6), PAR_MIN, RULES)
    assert (fused.cue, fused.defocus_um) == ("network", 5.0)
    assert fused.parallax_um == 5.6 and "agrees" in fused.cue_reason and passes(fused)


def test_a_wrong_sign_is_overruled_by_parallax():
    """The issue's case: a field at -5 µm that the network read as +4.2 µm."""
    fused = fuse(network(4.2, 0.63), NET_MIN, parallax(-5.0), PAR_MIN, RULES)
    assert (fused.cue, fused.defocus_um) == ("parallax", -5.0)
    assert "wrong sign" in fused.cue_reason and passes(fused)


def test_a_distance_far_off_is_overruled_by_parallax():
    fused = fuse(network(12.0), NET_MIN, parallax(5.0), PAR_MIN, RULES)
    assert (fused.cue, fused.defocus_um) == ("parallax", 5.0)
    assert "too far" in fused.cue_reason


def test_near_focus_the_sign_is_not_asked_for():
    fused = fuse(network(0.6), NET_MIN, parallax(-0.3), PAR_MIN, RULES)
    assert (fused.cue, fused.defocus_um) == ("network", 0.6)


def test_an_untrusted_network_gives_way_to_parallax():
    fused = fuse(network(-20.0, 0.1), NET_MIN, parallax(8.0), PAR_MIN, RULES)
    assert (fused.cue, fused.defocus_um) == ("parallax", 8.0) and passes(fused)
    assert "network not trusted" in fused.cue_reason


def test_without_a_network_parallax_reads_alone():
    fused = fuse(None, PAR_MIN, parallax(-12.0), PAR_MIN, RULES)
    assert (fused.cue, fused.defocus_um) == ("parallax", -12.0) and passes(fused)
    assert fused.min_confidence == PAR_MIN


def test_a_textureless_field_vetoes_a_far_move():
    """No texture: the parallax cue measures nothing; a confident far network reading is not
    acted on, and the gate says why."""
    fused = fuse(network(9.0), NET_MIN, parallax(math.nan, 0.0), PAR_MIN, RULES)
    assert fused.cue == "parallax" and fused.confidence == 0.0
    rejections = check_prediction(fused, NET_MIN)
    assert [r.gate for r in rejections] == ["confidence"]
    assert "parallax found no shift" in rejections[0].reason
    assert "cannot confirm" in rejections[0].reason


def test_an_unsure_parallax_cue_near_focus_leaves_the_network_to_decide():
    fused = fuse(network(1.5), NET_MIN, parallax(-3.0, 0.05), PAR_MIN, RULES)
    assert (fused.cue, fused.defocus_um) == ("network", 1.5) and passes(fused)


def test_parallax_out_of_its_range_is_not_trusted():
    fused = fuse(None, PAR_MIN, parallax(45.0, 0.9, in_range=False), PAR_MIN, RULES)
    assert not passes(fused)
    assert "outside its calibrated range" in fused.cue_reason


@pytest.mark.parametrize("net_conf", [0.1, 0.9])
def test_neither_trusted_is_no_move(net_conf):
    fused = fuse(network(7.0, net_conf, in_range=net_conf > 0.5), NET_MIN,
                 parallax(-6.0, 0.05), PAR_MIN, RULES)
    assert not passes(fused)


readings = st.floats(-40.0, 40.0, allow_nan=False)
confidences = st.floats(0.0, 1.0)


@given(n=readings, n_conf=confidences, p=readings | st.just(math.nan), p_conf=confidences,
       has_network=st.booleans())
def test_a_far_move_never_rests_on_an_unconfirmed_sign(n, n_conf, p, p_conf, has_network):
    """Whatever the two cues say: a reading the gates let through that lies beyond the sign
    margin has the sign of a parallax reading at least half as confident as the cue's threshold
    (trusted, or weak but agreeing); without one, nothing beyond the margin passes."""
    fused = fuse(network(n, n_conf) if has_network else None, NET_MIN,
                 parallax(p, p_conf, in_range=abs(p) <= 35.0 if math.isfinite(p) else False),
                 PAR_MIN, RULES)
    if not passes(fused) or abs(fused.defocus_um) <= RULES.sign_margin_um:
        return
    confirming = (math.isfinite(p) and p_conf >= RULES.weak_fraction * PAR_MIN
                  and abs(p) <= 35.0)
    assert confirming
    assert math.copysign(1.0, fused.defocus_um) == math.copysign(1.0, p)


def test_a_weak_parallax_reading_that_agrees_confirms_the_network():
    """Below its threshold but above half of it, a parallax reading that agrees still confirms
    the network's sign: two independent cues on the same side of focus."""
    fused = fuse(network(-3.6), NET_MIN, parallax(-3.6, 0.26), PAR_MIN, RULES)
    assert (fused.cue, fused.defocus_um) == ("network", -3.6) and passes(fused)
    assert "but it agrees" in fused.cue_reason
    vetoed = fuse(network(-3.6), NET_MIN, parallax(-3.6, 0.1), PAR_MIN, RULES)  # too weak
    assert not passes(vetoed)
    disagreeing = fuse(network(-3.6), NET_MIN, parallax(4.0, 0.26), PAR_MIN, RULES)
    assert not passes(disagreeing)


def ambiguous(defocus_um: float) -> Prediction:
    """A network reading whose sign the model could not tell (a thin phase sample)."""
    return Prediction(defocus_um, 0.9, 0.1, (defocus_um,), True, distance_um=abs(defocus_um),
                      sign_ambiguity=1.0, sign_ambiguous=True)


def test_a_sign_the_parallax_cue_settled_is_never_ambiguous():
    decided = fuse(ambiguous(4.2), NET_MIN, parallax(-5.0), PAR_MIN, RULES)
    assert (decided.cue, decided.sign_ambiguous) == ("parallax", False)
    confirmed = fuse(ambiguous(5.0), NET_MIN, parallax(5.6), PAR_MIN, RULES)
    assert (confirmed.cue, confirmed.defocus_um, confirmed.sign_ambiguous) == ("network", 5.0,
                                                                                False)
    weak = fuse(ambiguous(-3.6), NET_MIN, parallax(-3.6, 0.26), PAR_MIN, RULES)
    assert (weak.cue, weak.sign_ambiguous) == ("network", False)


def test_agreeing_by_the_margin_alone_confirms_no_sign():
    """Near focus the cues agree from opposite sides: the network's ambiguity stands, so the
    loop probes rather than trusts a sign nobody confirmed."""
    fused = fuse(ambiguous(1.5), NET_MIN, parallax(-0.3), PAR_MIN, RULES)
    assert (fused.cue, fused.sign_ambiguous) == ("network", True) and passes(fused)
    unsure = fuse(ambiguous(1.5), NET_MIN, parallax(-3.0, 0.05), PAR_MIN, RULES)
    assert (unsure.cue, unsure.sign_ambiguous) == ("network", True)
