"""A PNG sheet of sample families: per family a row of its ground-truth channel in focus and its
autofocus channel at a few defoci (tiles drawn as ``sim montage`` draws them), families in a
grid. What docs/families.md shows and ``focuslock sim families --out`` draws."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from controller.optics import Preset
from controller.sim.errors import SimError
from controller.sim.instrument import Instrument
from controller.sim.montage import LABEL_PX, montage
from controller.sim.samples import SAMPLE_KINDS, make_sample
from controller.sim.stacks import render_stack

Progress = Callable[[str], None]  # the family about to be rendered


def family_sheet(kinds: Sequence[str], system: Preset, *, size_px: int = 256, seed: int = 1,
                 defocus_um: Sequence[float] = (-6.0, 0.0, 6.0), tile_px: int = 96,
                 columns: int = 3, params: dict[str, dict[str, Any]] | None = None,
                 instrument: Instrument | None = None,
                 progress: Progress | None = None) -> Image.Image:
    """Each family drawn with ``seed`` on a size_px² field: its ground-truth channel at focus,
    then its autofocus channel at each defocus (left to right, one grey scale for all, so
    defocus shows as contrast), ``columns`` families across. ``params`` gives a family what it
    must be given (``pictures``: its folder)."""
    if not kinds:
        raise SimError("gallery: no family named")
    if columns < 1:
        raise SimError(f"gallery: columns must be >= 1, got {columns}")
    z = -np.asarray(sorted(defocus_um), dtype=np.float64)  # D = -z: increasing to the right
    rows = []
    for kind in kinds:
        if progress is not None:
            progress(kind)
        sample = make_sample(kind, (size_px, size_px), system.optics.pixel_um, seed,
                             **(params or {}).get(kind, {}))
        focused = render_stack(sample, [0.0], preset=system, patterns=[system.ground_truth],
                               seed=seed, instrument=instrument)
        stack = render_stack(sample, z, preset=system, patterns=[system.autofocus], seed=seed,
                             instrument=instrument)
        tiles = [_unlabelled(montage(focused, tile_px=tile_px)),
                 _unlabelled(montage(stack, max_planes=len(z), tile_px=tile_px))]
        rows.append((kind, tiles))
    tile_w, tile_h = rows[0][1][0].size
    width = tile_w * (1 + len(z))
    height = tile_h + LABEL_PX
    mode = rows[0][1][0].mode
    white = 255 if mode == "L" else (255,) * 3
    across = min(columns, len(rows))
    out = Image.new(mode, (width * across, LABEL_PX + height * -(-len(rows) // columns)))
    draw = ImageDraw.Draw(out)
    heads = [system.ground_truth.name] + [f"D={-zi:+g}" for zi in z]
    for c in range(across):
        for k, head in enumerate(heads):
            draw.text((c * width + k * tile_w + 2, 1), head, fill=white)
    for i, (kind, tiles) in enumerate(rows):
        x, y = (i % columns) * width, LABEL_PX + (i // columns) * height
        draw.text((x + 2, y + 1), kind, fill=white)
        out.paste(tiles[0], (x, y + LABEL_PX))
        out.paste(tiles[1], (x + tile_w, y + LABEL_PX))
    return out


def _unlabelled(sheet: Image.Image) -> Image.Image:
    """A one-row montage without its label strip."""
    return sheet.crop((0, 0, sheet.size[0], sheet.size[1] - LABEL_PX))


def renderable_kinds(params: dict[str, dict[str, Any]]) -> list[str]:
    """Every registered family that needs nothing given, and those that were given it."""
    needs = {"image", "pictures"}
    return [kind for kind in SAMPLE_KINDS if kind not in needs or kind in params]
