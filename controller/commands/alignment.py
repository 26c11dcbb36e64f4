"""``focuslock check-alignment``: is the autofocus LED where the model bundle expects it?

From saved frames (``--frame``, taken under the autofocus LED alone) or, without them, from a
few frames the rig of ``--config`` takes now under its autofocus pattern (nothing moves; the
LEDs are off afterwards). The fit and the sentence are controller/alignment.py's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from controller.commands.arguments import bounded_int

LIVE_FRAMES_DEFAULT = 3


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check-alignment", help="say whether the autofocus LED sits where the model expects it",
        description="Fit the two pupil circles in the spectrum of frames taken under the "
                    "autofocus LED and print where the LED is, its offset from where the "
                    "bundle expects it (NA and mm) and which way to move it. Exit status 0: "
                    "aligned; 1: the LED needs moving; 2: the circles cannot be seen.")
    p.add_argument("--config", type=Path, help="TOML config (default: built-in defaults)")
    p.add_argument("--frame", type=Path, nargs="+", default=[], metavar="FILE",
                   help="saved frames (TIFF, PNG) under the autofocus LED; default: take "
                        "frames with the configured rig")
    p.add_argument("--frames", type=bounded_int(1, 20), default=LIVE_FRAMES_DEFAULT,
                   help=f"frames to take from the rig (default {LIVE_FRAMES_DEFAULT})")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from controller.alignment import AlignmentError, check_alignment, led_distance_mm
    from controller.config import load_config
    from controller.optics import preset

    config = load_config(args.config)
    if args.frame:
        from controller.commands.predict import read_image

        frames = [read_image(path) for path in args.frame]
        system = preset(config.optics.preset)
        optics = dataclasses.replace(system.optics, frame_shape=frames[0].shape)
    else:
        system, frames = _live_frames(config, args.frames)
        optics = system.optics
    try:
        result = check_alignment(frames, optics, system.autofocus,
                                 led_distance_mm(config.optics.led_distance_mm, system))
    except AlignmentError as exc:
        print(json.dumps({"error": str(exc)}) if args.json else f"focuslock: {exc}")
        return 2
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        record = result.to_json()
        print(f"LED NA expected ({record['expected_na'][0]:.3f}, {record['expected_na'][1]:.3f}), "
              f"measured ({record['measured_na'][0]:.3f}, {record['measured_na'][1]:.3f}): "
              f"off by {record['offset_na_norm']:.3f} NA (accuracy about "
              f"{record['accuracy_na']} NA)")
        print(result.advice)
    return 0 if result.aligned else 1


def _live_frames(config: Any, count: int) -> tuple[Any, list[Any]]:
    """The rig's preset and ``count`` frames under its autofocus pattern, taken now."""
    from controller.collect import check_rig_free
    from controller.hardware.rig import open_rig

    check_rig_free(config)  # the service, if it runs, holds the camera: ask it instead
    rig = open_rig(config)
    try:
        rig.illuminator.show(rig.preset.autofocus)
        frames = []
        for _ in range(count):
            frames.append(rig.camera.capture(not_before=rig.clock.now(),
                                             timeout_s=config.camera.timeout_s).image)
        rig.illuminator.off()
        return rig.preset, frames
    finally:
        rig.close()
