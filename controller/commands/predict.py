"""``focuslock predict``: what a model bundle says about images or focal stacks.

A focal-stack file gives one prediction per plane of its autofocus channel (the bundle is checked
against the stack's optics and illumination); any other image file (TIFF, PNG) is one frame,
taken to come from the optics the bundle was trained for.
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
    p.add_argument("files", type=Path, nargs="+", metavar="FILE", help="images or focal stacks")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line: file, plane, z_um, defocus_um, confidence")
    p.set_defaults(func=run)


def _frames(model_path: Path, path: Path) -> Iterator[tuple[Any, int, float | None, Any]]:
    """(model, plane index, z, frame) for every frame of one file."""

    from controller.model import FocusModel
    from controller.stackio import AUTOFOCUS_CHANNEL, read_stack

    if path.name.endswith((".ome.tif", ".ome.tiff")):
        stack = read_stack(path)
        pattern = stack.channels[stack.channel_index(AUTOFOCUS_CHANNEL)]
        model = FocusModel.load(model_path, optics=stack.optics, pattern=pattern)
        for i, frame in enumerate(stack.channel(AUTOFOCUS_CHANNEL)):
            yield model, i, float(stack.z_um[i]), frame
        return
    image = read_image(path)
    yield FocusModel.load(model_path), 0, None, image


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
    for path in args.files:
        for model, plane, z, frame in _frames(args.bundle, path):
            p = model.predict(frame)
            if args.json:
                print(json.dumps({
                    "file": str(path), "plane": plane, "z_um": z,
                    "defocus_um": round(p.defocus_um, 4), "confidence": round(p.confidence, 4),
                    "spread_um": None if math.isnan(p.spread_um) else round(p.spread_um, 4),
                    "in_range": p.in_range}), flush=True)
            else:
                where = f"z {z:+8.2f} µm" if z is not None else ""
                print(f"{path} [{plane}] {where} defocus {p.defocus_um:+7.2f} µm  "
                      f"confidence {p.confidence:.2f}{'' if p.in_range else '  OUT OF RANGE'}",
                      flush=True)
    return 0
