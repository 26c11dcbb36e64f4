"""``image``: any 2D picture, a file or an array, taken as a thin sample; ``pictures``: a folder
of them, one drawn per seed, cropped, turned and mapped to phase and absorption in all the ways
the other families vary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from controller.sim.errors import SimError
from controller.sim.samples.drawing import Volume
from controller.sim.samples.params import param
from controller.sim.samples.sample import Sample, SampleFamily
from controller.sim.samples.slide import RELATIONS, SLIDE_PARAMS, Stain, on_slide


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
    return _resize(_read_grey(path, "image"), shape)


def _read_grey(path: Path, kind: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("F"), dtype=np.float32)
    except (OSError, UnidentifiedImageError) as exc:
        raise SimError(f"sample {kind!r}: cannot read {path}: {exc}") from exc


def _resize(picture: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if picture.ndim != 2:
        raise SimError(f"sample 'image': the array must be 2D, got shape {picture.shape}")
    from PIL import Image

    img = Image.fromarray(picture).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


IMAGE = SampleFamily(_image, frozenset({"image", "opd_um", "extinction_um", "medium_index"}))


def _pictures(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
              params: dict[str, Any]) -> Sample:
    """One picture of a folder (drawn by the seed), a random crop of 1/``zoom`` of it turned by
    ``turn`` quarter turns (and mirrored by ``flip``), as a thin object whose optical path is
    ``opd_um`` times its brightness or its darkness (``dark_is_thick``), absorbing by the drawn
    relation, on a slide with its background, debris and dust."""
    folder = params.get("images")
    if folder is None:
        raise SimError("sample 'pictures': give images=FOLDER (of PNG, JPEG, TIFF or BMP "
                       "pictures)")
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICTURE_SUFFIXES) \
        if folder.is_dir() else []
    if not files:
        raise SimError(f"sample 'pictures': {folder} is not a folder holding pictures "
                       f"({', '.join(sorted(PICTURE_SUFFIXES))})")
    params["images"] = str(folder)
    name = str(param(params, "picture", lambda: files[int(rng.integers(len(files)))].name))
    if not (folder / name).is_file():
        raise SimError(f"sample 'pictures': no picture {name!r} in {folder}")
    grey = _read_grey(folder / name, "pictures")
    zoom = float(param(params, "zoom", lambda: rng.uniform(1.0, 3.0)))
    if not 1.0 <= zoom <= 100.0:
        raise SimError(f"sample 'pictures': zoom must be 1..100, got {zoom}")
    turn = int(param(params, "turn", lambda: int(rng.integers(4))))
    flip = bool(param(params, "flip", lambda: bool(rng.random() < 0.5)))
    rows, cols = (max(2, round(n / zoom)) for n in grey.shape)
    top = int(param(params, "crop_top", lambda: int(rng.integers(grey.shape[0] - rows + 1))))
    left = int(param(params, "crop_left", lambda: int(rng.integers(grey.shape[1] - cols + 1))))
    crop = grey[top:top + rows, left:left + cols]
    crop = np.rot90(crop[:, ::-1] if flip else crop, turn)
    picture = _resize(np.ascontiguousarray(crop), shape)
    lo, hi = float(picture.min()), float(picture.max())
    picture = (picture - lo) / (hi - lo) if hi > lo else np.zeros_like(picture)
    opd = float(param(params, "opd_um", lambda: rng.uniform(0.01, 0.25)))
    dark_is_thick = bool(param(params, "dark_is_thick", lambda: bool(rng.random() < 0.5)))
    vol = Volume(1, shape, 1.0)
    vol.path.real = opd * (1.0 - picture if dark_is_thick else picture)
    medium = float(param(params, "medium_index", lambda: 1.333))
    return on_slide(rng, vol, pixel_um, medium, params, PICTURE_STAIN)


PICTURE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
PICTURE_STAIN = Stain(relations=RELATIONS, ratio=(0.01, 0.3), unstained=0.3)
PICTURES = SampleFamily(_pictures, SLIDE_PARAMS | {
    "images", "picture", "zoom", "turn", "flip", "crop_top", "crop_left", "opd_um",
    "dark_is_thick"})
