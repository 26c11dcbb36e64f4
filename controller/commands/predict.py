"""``focuslock predict``: what a model bundle says about images or focal stacks.

A focal-stack file gives one prediction per plane of its autofocus channel (the bundle is checked
against the stack's optics and illumination); any other image file (TIFF, PNG) is one frame,
taken to come from the optics the bundle was trained for.

The parallax cue (controller/parallax.py) answers beside the network where the frames hold two
views: a stack with parallax channels, per plane; a pair of frames (``--pair A B``: A under the
first view's LED, also the network's frame, B under the second's); or a raw colour frame when the
optics read both views from one mosaic. Its views and optics are the preset's (``--preset``, by
default the one with parallax views that the bundle fits); its calibration the file given
(``--parallax-calibration``), else the optics' prediction.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from controller.errors import FocuslockError

LUMINANCE_BYTES = 8  # per pixel and band: colour is averaged in float64


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict", help="predict the distance to focus of images or focal stacks",
        description="Print the model's defocus_um (move the drive by it to focus) and confidence "
                    "for every image, or every plane of a focal stack's autofocus channel.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="model bundle directory")
    p.add_argument("files", type=Path, nargs="*", metavar="FILE", help="images or focal stacks")
    p.add_argument("--pair", type=Path, nargs=2, action="append", default=[], metavar=("A", "B"),
                   help="two frames of one parallax reading: A under the first view's LED (the "
                        "network reads it), B under the second's; repeatable")
    p.add_argument("--preset", default=None,
                   help="optical system of image files for the parallax cue (default: the "
                        "preset with parallax views that the bundle fits)")
    p.add_argument("--parallax-calibration", type=Path, default=None, metavar="FILE",
                   help="parallax calibration (focuslock parallax calibrate; default: the "
                        "optics' uncalibrated prediction)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line: file, plane, z_um, defocus_um, confidence "
                        "(and parallax: defocus_um, confidence, shift_px, in_range, calibrated)")
    p.set_defaults(func=run)


def _frames(model_path: Path, path: Path,
            parallax: _Parallax) -> Iterator[tuple[Any, int, float | None, Any, Any]]:
    """(model, plane index, z, frame, parallax reading or None) for every frame of one file."""

    from controller.model import FocusModel
    from controller.stackio import AUTOFOCUS_CHANNEL, read_stack

    if path.name.endswith((".ome.tif", ".ome.tiff")):
        stack = read_stack(path)
        pattern = stack.channels[stack.channel_index(AUTOFOCUS_CHANNEL)]
        model = FocusModel.load(model_path, optics=stack.optics, pattern=pattern)
        readings = parallax.stack_readings(stack)
        for i, frame in enumerate(stack.channel(AUTOFOCUS_CHANNEL)):
            yield model, i, float(stack.z_um[i]), frame, readings[i]
        return
    image = read_image(path)
    yield FocusModel.load(model_path), 0, None, image, parallax.colour_reading(image)


class _Parallax:
    """The parallax cue for the files of one command: views and optics of the preset, the
    calibration given or the optics' own; one cue per frame shape."""

    def __init__(self, args: argparse.Namespace) -> None:
        from controller.model import check_fit, read_record
        from controller.optics import PRESETS, Preset, preset
        from controller.parallax import ParallaxCalibration

        self.calibration = (None if args.parallax_calibration is None
                            else ParallaxCalibration.load(args.parallax_calibration))
        self.system: Preset | None
        if args.preset is not None:
            self.system = preset(args.preset)
        else:
            record = read_record(args.bundle)
            self.system = next((p for p in PRESETS.values()
                                if p.parallax is not None and _fits(check_fit, record, p)), None)
        self._cues: dict[tuple[Any, Any], Any] = {}

    def cue(self, shape: tuple[int, int], optics: Any = None, views: Any = None) -> Any:
        import dataclasses

        from controller.parallax import ParallaxCue, ParallaxError

        if views is None:
            if self.system is None or self.system.parallax is None:
                raise ParallaxError("no parallax views: name a preset that has them (--preset), "
                                    "the bundle fits none")
            views, optics = self.system.parallax, self.system.optics
        optics = dataclasses.replace(optics, frame_shape=tuple(shape))
        key = (views, optics)  # both frozen: the same views and optics make the same cue
        if key not in self._cues:
            self._cues[key] = ParallaxCue(views, optics, self.calibration)
        return self._cues[key]

    def stack_readings(self, stack: Any) -> list[Any]:
        """Per plane, the reading of a stack's parallax channels (None without them)."""
        from controller.parallax import ParallaxError, stack_views

        try:
            views = stack_views(stack)
        except ParallaxError:
            return [None] * stack.z_um.size
        cue = self.cue(stack.images.shape[-2:], stack.optics, views)
        frames = [stack.channel(p.name) for p in views.patterns]
        return [cue.measure([f[i] for f in frames]) for i in range(stack.z_um.size)]

    def colour_reading(self, image: Any) -> Any:
        """A raw colour frame's reading when the preset reads both views from one frame."""
        views = None if self.system is None else self.system.parallax
        if views is None or not views.one_frame:
            return None
        return self.cue(image.shape).measure([image])


def _fits(check_fit: Any, record: dict[str, Any], system: Any) -> bool:
    from controller.model import ModelError

    try:
        check_fit(record, system.optics, system.autofocus)
    except ModelError:
        return False
    return True


def read_image(path: Path) -> Any:
    """One frame from an image file, as a 2-D array (colour becomes its luminance). Its size is
    read from the header first: past PIL's decompression-bomb limit, or more than the free
    memory, the file is refused before its pixels are decoded."""
    import numpy as np
    from PIL import Image

    from controller.resources import require_memory

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                cols, rows = opened.size
                bands = len(opened.getbands())
                require_memory(f"reading {path} ({cols}x{rows} pixels)",
                               rows * cols * bands * LUMINANCE_BYTES)
                image = np.asarray(opened)
    except FileNotFoundError:
        raise FocuslockError(f"{path}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise FocuslockError(f"{path}: refused, a damaged file or a decompression bomb: "
                             f"{exc}") from None
    except OSError as exc:
        raise FocuslockError(f"{path}: not a readable image ({exc})") from exc
    if image.ndim == 3:  # colour or RGBA: the luminance is what the method uses
        image = image[..., :3].mean(axis=2)
    return image


def run(args: argparse.Namespace) -> int:
    from controller.model import FocusModel

    if not args.files and not args.pair:
        raise FocuslockError("predict: give image or stack files, or --pair A B")
    parallax = _Parallax(args)
    for path in args.files:
        for model, plane, z, frame, reading in _frames(args.bundle, path, parallax):
            _report(args, str(path), None, plane, z, model.predict(frame), reading,
                    model.min_confidence)
    for first, second in args.pair:
        model = FocusModel.load(args.bundle)
        a, b = read_image(first), read_image(second)
        cue = parallax.cue(a.shape)
        if cue.views.one_frame:
            raise FocuslockError("--pair: the preset reads both views from one colour frame; "
                                 "give that frame as a FILE")
        _report(args, str(first), str(second), 0, None, model.predict(a), cue.measure([a, b]),
                model.min_confidence)
    return 0


def _fused(p: Any, reading: Any, network_min_confidence: float) -> tuple[Any, bool]:
    """The reading the box would act on (controller/fusion.py, the config's default rules) and
    whether the gates would trust it."""
    from controller.fusion import FusionRules, fuse
    from controller.gates import check_prediction
    from controller.parallax import MIN_CONFIDENCE

    fused = fuse(p, network_min_confidence, reading, MIN_CONFIDENCE, FusionRules())
    return fused, not check_prediction(fused, network_min_confidence)


def _report(args: argparse.Namespace, file: str, second: str | None, plane: int,
            z: float | None, p: Any, reading: Any, network_min_confidence: float) -> None:
    """One line of output: the network's prediction and, where there is one, the parallax
    reading beside it and the two fused."""
    fused, trusted = (None, False) if reading is None else _fused(p, reading,
                                                                  network_min_confidence)
    if args.json:
        out: dict[str, Any] = {"file": file}
        if second is not None:
            out["pair"] = [file, second]
        out.update({
            "plane": plane, "z_um": z,
            "defocus_um": round(p.defocus_um, 4), "confidence": round(p.confidence, 4),
            "spread_um": None if math.isnan(p.spread_um) else round(p.spread_um, 4),
            "in_range": p.in_range})
        if reading is not None:
            out["parallax"] = _parallax_json(reading, args.parallax_calibration is not None)
        if fused is not None:
            out["fused"] = {"defocus_um": round(fused.defocus_um, 4),
                            "confidence": round(fused.confidence, 4), "cue": fused.cue,
                            "why": fused.cue_reason, "trusted": trusted}
        print(json.dumps(out), flush=True)
        return
    where = f"z {z:+8.2f} µm" if z is not None else ""
    name = file if second is None else f"{file} + {second}"
    extra = ""
    if reading is not None:
        extra = (f"  parallax {reading.defocus_um:+7.2f} µm confidence {reading.confidence:.2f}"
                 f"{'' if reading.in_range else ' OUT OF RANGE'}")
    if fused is not None:
        extra += (f"  fused {fused.defocus_um:+7.2f} µm ({fused.cue}"
                  f"{'' if trusted else ', not trusted'})")
    print(f"{name} [{plane}] {where} defocus {p.defocus_um:+7.2f} µm  "
          f"confidence {p.confidence:.2f}{'' if p.in_range else '  OUT OF RANGE'}{extra}",
          flush=True)


def _parallax_json(reading: Any, calibrated: bool) -> dict[str, Any]:
    def number(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 4)

    return {"defocus_um": number(reading.defocus_um), "confidence": round(reading.confidence, 4),
            "shift_px": number(reading.shift_px), "in_range": reading.in_range,
            "calibrated": calibrated}
