"""A PNG contact sheet of a focal stack: one row per channel, planes left to right, z labelled."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

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
    """Tiles scaled to ``tile_px``; each channel's grey levels stretched between its 0.5th and
    99.5th percentiles over all its planes, so defocus shows as contrast, not as brightness."""
    if tile_px < 16:
        raise SimError(f"montage: tile size must be >= 16 px, got {tile_px}")
    names = list(channels) if channels else stack.channel_names
    planes = pick_planes(stack.z_um.size, max_planes)
    rows, cols = stack.images.shape[2:]
    scale = tile_px / max(rows, cols)
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    sheet = Image.new("L", (size[0] * len(planes), (size[1] + LABEL_PX) * len(names)), 0)
    draw = ImageDraw.Draw(sheet)
    for r, name in enumerate(names):
        data = stack.channel(name)
        lo, hi = np.percentile(data[planes], [0.5, 99.5])
        span = max(float(hi - lo), 1.0)
        for c, p in enumerate(planes):
            grey = np.clip((data[p].astype(np.float32) - lo) / span * 255.0, 0, 255)
            tile = Image.fromarray(grey.astype(np.uint8)).resize(size, Image.Resampling.BOX)
            x, y = c * size[0], r * (size[1] + LABEL_PX)
            sheet.paste(tile, (x, y))
            label = f"{name} z={stack.z_um[p]:+.1f}"
            if stack.focus_z_um is not None:
                label += f" D={stack.focus_z_um - stack.z_um[p]:+.1f}"
            draw.text((x + 2, y + size[1] + 1), label, fill=255)
    return sheet


def write_montage(stack: FocalStack, path: str | os.PathLike[str],
                  channels: Sequence[str] | None = None, max_planes: int = 11,
                  tile_px: int = 160) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    montage(stack, channels, max_planes, tile_px).save(path, format="PNG")
    return path
