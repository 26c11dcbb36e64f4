"""Benchmark: the parallax cue alone, per sample kind and per mode, as issue 10 asks.

Modes: ``paper-pair`` (two monochrome frames, LEDs at NA ±0.37) and ``pi-hq-colour`` (one raw
Bayer frame under a red and a blue LED). Per mode and kind, the calibration is fitted on one
simulated focal stack (ground truth from its half-annulus channel, as on the box) of a seed that
is never evaluated; the evaluation readings come from other seeds, one per µm over ±30 µm with a
random sub-µm focus offset per seed, and are scored against the simulator's true defocus.
Reported: RMSE within ±10 µm and over ±30 µm (among the readings the cue trusts, and over all),
the share it trusts, and wrong signs beyond ±2 µm among trusted readings. Then the compute time
of one reading on 2048² frames, one thread, measured in the same run as the features
(``controller.features.featurize``).

Goals: RMSE <= 0.2 µm within ±10 µm and <= 1.0 µm over ±30 µm, correct sign >= 99.9 %, the cue
<= 3 ms per 2048² frame.
Run:  .venv/bin/python benchmarks/bench_parallax.py [--size 1024] [--seeds 3]
      [--kinds sparse-cells,dense-cells,tissue,image] [--modes paper-pair,pi-hq-colour]
      [--recorded-focus] [--no-timing | --timing-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.errors import FocuslockError
from controller.features import FeatureSpec, featurize
from controller.optics import preset
from controller.parallax import ParallaxCalibration, ParallaxCue
from controller.sim.samples import SAMPLE_KINDS
from tests.parallax_sim import parallax_stack, reading_frames

CALIBRATION_SEED = 900  # calibration stacks: 900, 901, ...; evaluation seeds: 1000, 1001, ...
EVALUATION_SEED = 1000
HALF_RANGE_UM = 30.0


def cue_for(mode: str, size: int, calibration: ParallaxCalibration | None) -> ParallaxCue:
    system = preset(mode)
    assert system.parallax is not None
    optics = dataclasses.replace(system.optics, frame_shape=(size, size))
    return ParallaxCue(system.parallax, optics, calibration)


def calibrate(mode: str, kind: str, index: int, size: int,
              recorded: bool) -> tuple[ParallaxCalibration, str]:
    """The fit on a stack of another seed (against its ground truth, or with ``recorded`` the
    simulator's focal plane), or (with the refusal said) the optics' prediction."""
    seed = CALIBRATION_SEED + index
    z = np.arange(-HALF_RANGE_UM, HALF_RANGE_UM + 0.5, 1.0)
    focus = float(np.random.default_rng(seed).uniform(-0.5, 0.5))
    stack = parallax_stack(kind, seed, z, preset_name=mode, size=size, focus_z_um=focus)
    try:
        fitted = ParallaxCalibration.fit(stack, source=f"{kind}-{seed}",
                                         focus_z_um=focus if recorded else None)
    except FocuslockError as exc:
        system = preset(mode)
        assert system.parallax is not None
        return (ParallaxCalibration.from_optics(stack.optics, system.parallax),
                f"fit refused ({exc}); optics' prediction used")
    note = (f"{fitted.um_per_px:+.4f} µm/px {fitted.offset_um:+.3f} µm, residual "
            f"{fitted.residual_um:.3f} µm, leak {fitted.leak[0]:.3f}/{fitted.leak[1]:.3f}")
    return fitted, note


def evaluate(mode: str, kind: str, seeds: int, size: int,
             calibration: ParallaxCalibration) -> np.ndarray:
    """(true defocus, reading, confidence, trusted) per reading."""
    cue = cue_for(mode, size, calibration)
    rows = []
    for i in range(seeds):
        seed = EVALUATION_SEED + i
        offset = float(np.random.default_rng(seed).uniform(-0.5, 0.5))
        defocus = np.arange(-HALF_RANGE_UM, HALF_RANGE_UM + 0.5, 1.0) + offset
        defocus = defocus[np.abs(defocus) <= HALF_RANGE_UM]
        for d, frames in zip(defocus, reading_frames(kind, seed, list(defocus), preset_name=mode,
                                                     size=size, noise_seed=seed), strict=True):
            r = cue.measure(frames)
            rows.append((d, r.defocus_um, r.confidence, r.confidence >= cue.min_confidence))
    return np.array(rows, dtype=float)


def rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(errors**2))) if errors.size else float("nan")


def score(rows: np.ndarray) -> dict[str, float]:
    truth, reading, _, trusted = rows.T
    trusted = trusted.astype(bool) & np.isfinite(reading)
    finite = np.isfinite(reading)
    near = np.abs(truth) <= 10.0
    err = reading - truth
    beyond = trusted & (np.abs(truth) > 2.0)
    return {
        "rmse10": rmse(err[trusted & near]), "rmse30": rmse(err[trusted]),
        "rmse10_all": rmse(err[finite & near]), "rmse30_all": rmse(err[finite]),
        "trusted": float(trusted.mean()),
        "wrong": float(np.sum(np.sign(reading[beyond]) != np.sign(truth[beyond]))),
        "signed": float(beyond.sum()),
    }


def timing(size: int = 2048, repeats: int = 40) -> None:
    """The cue's compute per reading on 2048² frames, one thread, beside the features'."""
    spec = FeatureSpec()
    for mode in ("paper-pair", "pi-hq-colour"):
        (frames,) = reading_frames("dense-cells", 7, [5.0], preset_name=mode, size=size)
        cue = cue_for(mode, size, None)
        cue.measure(frames)  # plans
        featurize(frames[0], spec)
        cue_ms, feature_ms = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            cue.measure(frames)
            middle = time.perf_counter()
            featurize(frames[0], spec)
            cue_ms.append((middle - start) * 1e3)
            feature_ms.append((time.perf_counter() - middle) * 1e3)
        per_reading = float(np.median(cue_ms))
        print(f"{mode}: cue {per_reading:.2f} ms per reading of {len(frames)} {size}² frame(s) "
              f"= {per_reading / len(frames):.2f} ms per frame (goal <= 3); features "
              f"{np.median(feature_ms):.2f} ms per frame, same run")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024, help="frame side in pixels")
    parser.add_argument("--seeds", type=int, default=3, help="evaluation seeds per kind and mode")
    parser.add_argument("--kinds", default=",".join(sorted(SAMPLE_KINDS)))
    parser.add_argument("--modes", default="paper-pair,pi-hq-colour")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--timing-only", action="store_true")
    parser.add_argument("--recorded-focus", action="store_true",
                        help="calibrate against the simulator's focal plane instead of the "
                             "stack's ground-truth channel (isolates the cue from the ground "
                             "truth's own errors)")
    args = parser.parse_args()
    truth = "the simulator's focal plane" if args.recorded_focus else "its ground truth"
    print(f"frames {args.size}², {args.seeds} evaluation seed(s) per kind, readings every µm "
          f"over ±{HALF_RANGE_UM:g} µm; calibration on a stack of another seed of the same kind, "
          f"against {truth}")
    for mode in [] if args.timing_only else args.modes.split(","):
        totals = []
        for index, kind in enumerate(args.kinds.split(",")):
            calibration, note = calibrate(mode, kind, index, args.size, args.recorded_focus)
            rows = evaluate(mode, kind, args.seeds, args.size, calibration)
            totals.append(rows)
            s = score(rows)
            print(f"{mode:13s} {kind:13s} RMSE ±10 {s['rmse10']:.3f} µm, ±30 {s['rmse30']:.3f} "
                  f"µm (all readings: {s['rmse10_all']:.3f}, {s['rmse30_all']:.3f}); trusted "
                  f"{s['trusted']:.0%}; wrong signs beyond ±2 µm {s['wrong']:.0f}/"
                  f"{s['signed']:.0f}; calibration {note}", flush=True)
        s = score(np.concatenate(totals))
        print(f"{mode:13s} {'all kinds':13s} RMSE ±10 {s['rmse10']:.3f} µm (goal <= 0.2), ±30 "
              f"{s['rmse30']:.3f} µm (goal <= 1.0); all readings {s['rmse10_all']:.3f}, "
              f"{s['rmse30_all']:.3f}; trusted {s['trusted']:.0%}; correct sign "
              f"{1 - s['wrong'] / max(s['signed'], 1):.2%} of {s['signed']:.0f} "
              f"(goal >= 99.9 %)", flush=True)
    if not args.no_timing:
        timing()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
