"""``image``: any 2D picture, a file or an array, taken as a thin sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from controller.sim.errors import SimError
from controller.sim.samples.params import param
from controller.sim.samples.sample import Sample, SampleFamily


def _image(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
           params: dict[str, Any]) -> Sample:
    """Any 2D picture (a file path or an array) as a thin object: bright = clear, dark = absorbing
    and optically thicker."""
    source = params.get("image")
    if source is None:
        raise SimError("sample 'image': give image=PATH or image=ARRAY")
    if isinstance(source, str | Path):
        picture = _load_picture(Path(source), shape)
        params["image"] = str(source)
    else:
        picture = _resize(np.asarray(source, dtype=np.float32), shape)
        params["image"] = "array"
    lo, hi = float(picture.min()), float(picture.max())
    picture = (picture - lo) / (hi - lo) if hi > lo else np.zeros_like(picture)
    opd = float(param(params, "opd_um", lambda: rng.uniform(0.05, 0.3)))
    extinction = float(param(params, "extinction_um", lambda: rng.uniform(0.0, 0.03)))
    darkness = 1.0 - picture
    path = (darkness * complex(opd, extinction)).astype(np.complex64)[None]
    return Sample(path, pixel_um, 0.0, float(param(params, "medium_index", lambda: 1.33)),
                  params=params)


def _load_picture(path: Path, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            gray = img.convert("F").resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
            return np.asarray(gray, dtype=np.float32)
    except (OSError, UnidentifiedImageError) as exc:
        raise SimError(f"sample 'image': cannot read {path}: {exc}") from exc


def _resize(picture: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if picture.ndim != 2:
        raise SimError(f"sample 'image': the array must be 2D, got shape {picture.shape}")
    from PIL import Image

    img = Image.fromarray(picture).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


IMAGE = SampleFamily(_image, frozenset({"image", "opd_um", "extinction_um", "medium_index"}))
