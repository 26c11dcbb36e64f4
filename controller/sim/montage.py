"""A PNG contact sheet of a focal stack: one row per channel, planes left to right, z labelled.

A colour camera's raw Bayer frames are drawn in colour, one pixel per 2x2 cell (its R site, the
mean of its G sites, its B site), so the two views of a two-colour parallax frame show as red and
blue images."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from controller.sim.bayer import FILTER_COLOURS, site_offsets
from controller.sim.errors import SimError
from controller.stackio import FocalStack

LABEL_PX = 14  # height of the text strip under each tile


def pick_planes(count: int, max_planes: int) -> list[int]:
    """Evenly spread plane indices, first and last included."""
    if max_planes < 1:
        raise SimError(f"montage: max_planes must be >= 1, got {max_planes}")
    if count <= max_planes:
        return list(range(count))
    return sorted({round(i) for i in np.linspace(0, count - 1, max_planes)})


def montage(stack: FocalStack, channels: Sequence[str] | None = None, max_planes: int = 11,
            tile_px: int = 160) -> Image.Image:
    """Tiles scaled to ``tile_px``; each channel's grey levels (each colour's, for a colour
    camera) stretched between its 0.5th and 99.5th percentiles over all its planes, so defocus
    shows as contrast, not as brightness."""
    if tile_px < 16:
        raise SimError(f"montage: tile size must be >= 16 px, got {tile_px}")
    names = list(channels) if channels else stack.channel_names
    planes = pick_planes(stack.z_um.size, max_planes)
    layout = stack.optics.colour_filter
    rows, cols = stack.images.shape[2:] if layout == "mono" else \
        (stack.images.shape[2] // 2, stack.images.shape[3] // 2)
    scale = tile_px / max(rows, cols)
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    mode = "L" if layout == "mono" else "RGB"
    sheet = Image.new(mode, (size[0] * len(planes), (size[1] + LABEL_PX) * len(names)))
    draw = ImageDraw.Draw(sheet)
    for r, name in enumerate(names):
        shown = _shown(stack.channel(name)[planes], layout)
        per_colour = tuple(range(shown.ndim - 1)) if layout != "mono" else None
        lo, hi = np.percentile(shown, [0.5, 99.5], axis=per_colour)
        span = np.maximum(hi - lo, 1.0)
        for c, p in enumerate(planes):
            levels = np.clip((shown[c].astype(np.float32) - lo) / span * 255.0, 0, 255)
            tile = Image.fromarray(levels.astype(np.uint8)).resize(size, Image.Resampling.BOX)
            x, y = c * size[0], r * (size[1] + LABEL_PX)
            sheet.paste(tile, (x, y))
            label = f"{name} z={stack.z_um[p]:+.1f}"
            if stack.focus_z_um is not None:
                label += f" D={stack.focus_z_um - stack.z_um[p]:+.1f}"
            draw.text((x + 2, y + size[1] + 1), label, fill=255 if mode == "L" else (255,) * 3)
    return sheet


def _shown(frames: np.ndarray, layout: str) -> np.ndarray:
    """The frames as drawn: (planes, rows, cols) grey as they are, or for raw Bayer frames
    (planes, rows/2, cols/2, 3) float32 RGB, one pixel per whole 2x2 cell."""
    if layout == "mono":
        return frames
    rows, cols = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    sites = {colour: [frames[:, y:rows:2, x:cols:2] for y, x in site_offsets(layout, colour)]
             for colour in FILTER_COLOURS}
    return np.stack([np.mean(sites[colour], axis=0, dtype=np.float32)
                     for colour in FILTER_COLOURS], axis=-1)


def write_montage(stack: FocalStack, path: str | os.PathLike[str],
                  channels: Sequence[str] | None = None, max_planes: int = 11,
                  tile_px: int = 160) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    montage(stack, channels, max_planes, tile_px).save(path, format="PNG")
    return path
