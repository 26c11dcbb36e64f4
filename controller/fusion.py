"""Two cues, one answer: the network's reading and the parallax cue's, fused so the sign is never
guessed.

The network reads the distance to focus from the magnitude of one frame's spectrum: fine near
focus, but its sign comes from properties of the sample (docs/parallax.md) and can be read
backwards on a sample unlike its training data. The parallax cue measures how two views under
two illumination angles shift against each other: signed by geometry, for any sample with
texture. So:

- both trusted and in agreement (same side of focus, or one within ``sign_margin_um`` of it, and
  within ``max(agree_um, agree_fraction·|parallax|)`` of each other): the network decides (it is
  finer near focus) and the parallax cue has confirmed it;
- both trusted, disagreeing: the parallax cue decides (sign and distance);
- only the parallax cue trusted: it decides;
- only the network trusted: it decides where a weak parallax reading (above ``weak_fraction`` of
  its threshold) agrees with it (two independent cues on one side of focus: near focus phase
  objects lose contrast and the parallax cue its confidence, while it still reads the side);
  and within ``sign_margin_um`` of focus, where a wrong sign
  costs less than the margin; beyond it the parallax cue vetoes the move, because a far move on
  an unconfirmed sign is what drives focus the wrong way;
- neither trusted: the reading is untrusted and the gates say why.

The sign is never left to the network where the parallax cue has settled it: a reading the
parallax cue decides is never ``sign_ambiguous``, nor is the network's where a parallax reading on
the same side of focus confirmed it. Elsewhere (near focus, where the cues agree by the margin
alone) the network's own verdict stands, and the loop probes an ambiguous sign
(controller/sign_probe.py).

Every fused Prediction says which cue decided (``cue``), why (``cue_reason``), both readings and
the threshold its confidence is judged against (``min_confidence``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from controller.prediction import Prediction

if TYPE_CHECKING:
    from controller.parallax import ParallaxReading


@dataclass(frozen=True)
class FusionRules:
    """When the two cues count as agreeing (the ``[parallax]`` settings of the config)."""

    sign_margin_um: float = 2.0  # within this of focus neither cue is asked for the sign
    agree_um: float = 2.0  # readings this close agree ...
    agree_fraction: float = 0.25  # ... or this fraction of the parallax reading
    # an untrusted parallax reading above this share of its threshold still counts as evidence:
    # agreeing with the network, it confirms the network's sign
    weak_fraction: float = 0.5


def trusted(prediction: Prediction, min_confidence: float) -> bool:
    """A reading the gates would let through on its own."""
    return (math.isfinite(prediction.defocus_um) and math.isfinite(prediction.confidence)
            and prediction.confidence >= min_confidence and prediction.in_range)


def agree(network_um: float, parallax_um: float, rules: FusionRules) -> bool:
    """Same side of focus (or near enough that the side does not matter) and close."""
    same_side = (network_um * parallax_um > 0
                 or min(abs(network_um), abs(parallax_um)) <= rules.sign_margin_um)
    close = abs(network_um - parallax_um) <= max(rules.agree_um,
                                                  rules.agree_fraction * abs(parallax_um))
    return same_side and close


def parallax_prediction(reading: ParallaxReading, min_confidence: float) -> Prediction:
    """The parallax cue's reading as a Prediction of its own."""
    return Prediction(reading.defocus_um, reading.confidence, reading.spread_um,
                      reading.patch_defocus_um, reading.in_range, cue="parallax",
                      parallax_um=reading.defocus_um, parallax_confidence=reading.confidence,
                      min_confidence=min_confidence)


def fuse(network: Prediction | None, network_min_confidence: float, reading: ParallaxReading,
         parallax_min_confidence: float, rules: FusionRules) -> Prediction:
    """One reading from the network's (None: the box has no network) and the parallax cue's."""
    parallax = parallax_prediction(reading, parallax_min_confidence)
    if network is None:
        reason = ("parallax only (no network)" if trusted(parallax, parallax_min_confidence)
                  else _why_untrusted(reading, parallax_min_confidence))
        return replace(parallax, cue_reason=reason)
    p_um, n_um = reading.defocus_um, network.defocus_um
    # the network's reading, with the parallax reading beside it and its own threshold
    as_network = replace(network, cue="network", min_confidence=network_min_confidence,
                         parallax_um=p_um, parallax_confidence=reading.confidence)
    network_ok = trusted(network, network_min_confidence)
    if trusted(parallax, parallax_min_confidence):
        if network_ok and agree(n_um, p_um, rules):
            return replace(_side_confirmed(as_network, p_um),
                           cue_reason=f"parallax agrees ({p_um:+.2f} µm)")
        if not network_ok:
            why = f"network not trusted ({n_um:+.2f} µm, confidence {network.confidence:.2f})"
        elif n_um * p_um < 0:
            why = f"network {n_um:+.2f} µm has the wrong sign"
        else:
            why = f"network {n_um:+.2f} µm is too far from it"
        return replace(parallax, network=network.network,
                       cue_reason=f"parallax {p_um:+.2f} µm decides: {why}")
    unsure = _why_untrusted(reading, parallax_min_confidence)
    if not network_ok:
        return replace(as_network, cue_reason=f"{unsure}, network not trusted either")
    weak = (math.isfinite(p_um) and reading.in_range
            and reading.confidence >= rules.weak_fraction * parallax_min_confidence)
    if weak and agree(n_um, p_um, rules):
        return replace(_side_confirmed(as_network, p_um),
                       cue_reason=f"{unsure}, but it agrees ({p_um:+.2f} µm)")
    if abs(n_um) <= rules.sign_margin_um:
        return replace(as_network, cue_reason=f"{unsure}; near focus the network decides")
    return replace(as_network, cue="parallax", confidence=0.0,
                   min_confidence=parallax_min_confidence,
                   cue_reason=f"{unsure}: it cannot confirm the network's {n_um:+.2f} µm, "
                              f"no move")


def _side_confirmed(network: Prediction, parallax_um: float) -> Prediction:
    """The network's reading, no longer sign-ambiguous where the parallax reading lies on the
    same side of focus (agreeing by the margin alone, opposite sides confirm nothing)."""
    if network.defocus_um * parallax_um > 0:
        return replace(network, sign_ambiguous=False)
    return network


def _why_untrusted(reading: ParallaxReading, min_confidence: float) -> str:
    if not (math.isfinite(reading.defocus_um) and math.isfinite(reading.confidence)):
        return "parallax found no shift to measure"
    if not reading.in_range:
        return f"parallax {reading.defocus_um:+.1f} µm is outside its calibrated range"
    return f"parallax unsure (confidence {reading.confidence:.2f}, limit {min_confidence:g})"
