"""The sign of a sign-free reading, found by a probe move: the loop never guesses it.

For a thin phase sample the image's spectrum is the same at +D and -D, so a model may read the
distance to focus, ``m = |defocus_um|``, and not its side (``Prediction.sign_ambiguous``). A
reading m0 at z0 leaves two candidates for the focal plane, ``z0 - m0`` and ``z0 + m0``. The loop
moves by a probe p (``probe_um``, cut by its guard) and reads m1 at ``z1 = z0 + p``. Each
candidate c predicts the distance ``|c - z1|``; with e0 and e1 the two readings' expected errors
(``expected_error_um``, a 95 % bound; ``gates.expected_error_um`` where the model states none):

- a candidate whose prediction misses m1 by more than ``e0 + e1`` is ruled out (the true one
  misses by at most that, so it never is);
- the side of focus at z1 is decided when every candidate left lies on one side of z1, farther
  from it than e0 (the true plane is within e0 of its candidate). A probe longer than m0 + e0
  decides by geometry alone (both candidates are behind it); a probe from far away decides by
  the fit (the candidates' predictions differ by 2p);
- no candidate left (the plane moved, or a reading is off), or candidates on both sides: the
  sign is undecided. The loop probes once more the same way (if the guard has room), then gives
  up: the reading counts as rejected ("sign"), no move, no guess.

A bundle with a pair network (controller/probe_pair.py) reads the side from the two frames
together instead, when the probe was the network's own length: their log spectra share the
sample's, so the pair's sign does not depend on the sample as one frame's does. With it every
reading farther than that probe is probed, whatever its own sign says (a wrong sign there would
worsen the focus by more than the probe), and the decided reading, corrected in full, is the
network's own where the two agree as the parallax cue and the network must (controller/fusion.py:
on a sample it learned the network is the finer of the two), else the pair's. A
probe the guard cut to another length falls back to the candidates above. The pair also tells
how the network's own sign relates to the truth on this sample (``sign_relation``: +1 it reads
it right, -1 backwards, as a network does on a sample whose absorption-to-phase relation is the
mirror of what it learned); nearer than the probe the loop reads the network's sign through
that relation, so a backwards network does not drive a lock away from focus.

Within the tolerance the sign is not probed: the reading counts as the midpoint of its two
signs, 0, so it corrects nothing it cannot know (with a lock offset, the offset alone; either
sign was at most the tolerance away). The decided side applies to the newest reading: the
correction is ``side × m1``, not ``c - z1`` (which would add the first reading's error).

A probe is ``probe_um`` cut to the guard's largest step and window, on the side with room for
all of it (both having room: the side the signed reading points to, right more often than not);
cut to less than half of ``probe_um`` it would decide too little, so without room for more the
reading is rejected. A probe moves the drive by at most ``probe_um``, so it never makes the
focus worse by more than that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from controller.fusion import FusionRules, agree
from controller.gates import Rejection
from controller.move_guard import MoveGuard
from controller.prediction import Prediction
from controller.probe_pair import PairNetwork

MAX_PROBES = 2  # a probe, and one more the same way when the first left the sign undecided
USEFUL_FRACTION = 0.5  # a probe the guard cuts to less than this share of probe_um is not made
ROUNDING_UM = 1e-9  # a probe the guard cut by less than this was not cut


@dataclass(frozen=True)
class SignProbe:
    """A probe in flight: the first reading (where, how far, how sure) and the probes made."""

    z_um: float
    distance_um: float
    error_um: float
    direction: float  # +1.0 or -1.0: the way the probes go
    probes: int = 1
    # the first frame's patch features, for a pair network to read with the probe's frame
    features: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def candidates(self) -> tuple[float, float]:
        """Where the focal plane may be, as the first reading left it."""
        return self.z_um - self.distance_um, self.z_um + self.distance_um


@dataclass(frozen=True)
class SignVerdict:
    """What a trusted reading means for the sign: act on ``defocus_um``, make the probe
    ``probe_um``, or neither (``rejection``: the reading counts as rejected)."""

    defocus_um: float | None = None  # the signed reading to act on (None: not this step)
    probe_um: float = 0.0  # the probe move to make now (0: none)
    limited: str = ""  # which limit of the guard cut the probe ('' if none)
    probed_sign: int = 0  # +1 or -1 when a probe decided the sign of ``defocus_um``
    probe: SignProbe | None = None  # the probe in flight after this step
    sign_relation: int = 0  # +1 / -1 when a probe pair measured the network's sign; 0: not
    rejection: Rejection | None = None
    reason: str = ""


def judge_sign(prediction: Prediction, z_um: float, probe: SignProbe | None, *,
               guard: MoveGuard, tolerance_um: float, probe_um: float,
               default_error_um: float, pair: PairNetwork | None = None,
               sign_relation: int = 0) -> SignVerdict:
    """What a trusted ``prediction`` read at ``z_um`` tells the loop, given the probe in flight
    (None: none), the bundle's pair network (None: none) and the network's sign relation a pair
    measured on this sample (0: none). A known sign is acted on as read (through the relation);
    a distance within ``tolerance_um`` as the midpoint of its two signs, 0 (a correction on a
    sign nobody knows would be a coin toss, and the lock would random-walk on it); either ends
    any probe."""
    distance = prediction.distance
    verified = pair is not None and distance > pair.probe_um
    if not (prediction.sign_ambiguous or verified or (probe is not None and pair is not None)):
        if sign_relation < 0:
            return SignVerdict(-prediction.defocus_um,
                               reason=f"read as {-prediction.defocus_um:+.2f} µm: the probe "
                                      f"pair found the network's sign backwards on this sample")
        return SignVerdict(prediction.defocus_um)
    if not math.isfinite(distance):
        return SignVerdict(rejection=Rejection(
            "invalid", f"the distance head returned a non-finite value ({distance})"))
    if distance <= tolerance_um:
        return SignVerdict(0.0)
    error = prediction.expected_error_um
    if error is None or not error >= 0:
        error = default_error_um
    if probe is None:
        guess = -1.0 if prediction.defocus_um < 0 else 1.0
        planned = plan_probe(z_um, guard, probe_um, (guess, -guess))
        if planned is None:
            return SignVerdict(rejection=Rejection(
                "sign", f"the sign of {distance:.2f} µm is ambiguous and {guard.describe()} "
                        f"(largest step {guard.max_step_um:g} µm) has no room for a probe of "
                        f"{probe_um:g} µm; no move"))
        move, limited = planned
        return SignVerdict(probe_um=move, limited=limited,
                           probe=SignProbe(z_um, distance, error, math.copysign(1.0, move),
                                           features=prediction.patch_features),
                           reason=f"probing the sign of {distance:.2f} µm: {move:+.2f} µm")
    paired = read_pair(pair, probe, prediction, z_um)
    if paired is not None:
        own = prediction.defocus_um
        measured = abs(paired) > tolerance_um and abs(own) > tolerance_um
        relation = (1 if (paired > 0) == (own > 0) else -1) if measured else 0
        if agree(own, paired, FusionRules()):  # the finer reading of a sample it knows
            return SignVerdict(own, probed_sign=-1 if own < 0 else 1, sign_relation=relation,
                               reason=f"the probe pair ({paired:+.2f} µm) confirmed "
                                      f"{own:+.2f} µm")
        return SignVerdict(paired, probed_sign=-1 if paired < 0 else 1, sign_relation=relation,
                           reason=f"the probe pair read {paired:+.2f} µm")
    side = decide_side(probe, z_um, distance, error)
    if side:
        return SignVerdict(side * distance, probed_sign=side,
                           reason=f"the probe decided the sign: {side * distance:+.2f} µm")
    if probe.probes < MAX_PROBES:
        planned = plan_probe(z_um, guard, probe_um, (probe.direction,))
        if planned is not None:
            move, limited = planned
            return SignVerdict(probe_um=move, limited=limited,
                               probe=replace(probe, probes=probe.probes + 1),
                               reason=f"sign still undecided at {distance:.2f} µm: probing "
                                      f"again, {move:+.2f} µm")
    return SignVerdict(rejection=Rejection(
        "sign", f"the sign of {distance:.2f} µm is still undecided after {probe.probes} "
                f"probe(s); no guess, no move"))


def read_pair(pair: PairNetwork | None, probe: SignProbe, prediction: Prediction,
              z_um: float) -> float | None:
    """The signed defocus at ``z_um`` from the probe's first frame and this one, read by the
    pair network; None when there is none, or the probe was not its length."""
    move = z_um - probe.z_um
    if pair is None or probe.features is None or prediction.patch_features is None \
            or not pair.matches(move):
        return None
    if move > 0:  # the first frame is the lower one
        return pair.read(probe.features, prediction.patch_features).at(move)
    return pair.read(prediction.patch_features, probe.features).defocus_um


def decide_side(probe: SignProbe, z_um: float, distance_um: float, error_um: float) -> int:
    """The side of ``z_um`` the focal plane is on (the sign of the defocus there), from the
    probe's candidates and a reading ``distance_um`` (expected error ``error_um``) at ``z_um``;
    0 when the readings cannot tell."""
    margin = probe.error_um + error_um
    left = [c - z_um for c in probe.candidates
            if abs(abs(c - z_um) - distance_um) <= margin]
    if left and all(d > probe.error_um for d in left):
        return 1
    if left and all(d < -probe.error_um for d in left):
        return -1
    return 0


def plan_probe(z_um: float, guard: MoveGuard, probe_um: float,
               directions: tuple[float, ...]) -> tuple[float, str] | None:
    """A probe of ``probe_um`` from ``z_um`` cut by ``guard``, and the limit that cut it: the
    first of ``directions`` with room for all of it, else the longest that is still useful;
    None when none is."""
    moves = [guard.clip(z_um, direction * probe_um) for direction in directions]
    for move, limited in moves:
        if abs(move) >= probe_um - ROUNDING_UM:
            return move, limited
    longest = max(moves, key=lambda planned: abs(planned[0]))
    return longest if abs(longest[0]) >= USEFUL_FRACTION * probe_um else None
