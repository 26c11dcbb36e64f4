"""``tissue-section``: a mounted section 3–10 µm thick in one of several textures (fibrous
connective tissue, epithelium, adipose tissue, skeletal muscle), stained or not, always
simulated in slices. (``tissue``, the first family, is one fibrous texture at 5 µm.)"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import fft as sfft

from controller.sim.samples.drawing import Volume, random_field, voronoi
from controller.sim.samples.params import choice, param, positive
from controller.sim.samples.sample import Sample, SampleFamily
from controller.sim.samples.slide import SLIDE_PARAMS, Stain, on_slide
from controller.sim.samples.tissue import add_nuclei

TEXTURES = ("fibrous", "epithelial", "adipose", "muscle")
# Eosin (and most counterstains) binds protein, so the dense material absorbs (positive); some
# stains pick out structures of their own (uncorrelated); frozen or unstained sections absorb
# almost nothing.
SECTION_STAIN = Stain(relations=("positive", "uncorrelated"), ratio=(0.02, 0.5), unstained=0.3)
NUCLEI_PER_MM2 = {"fibrous": (1e3, 6e3), "epithelial": (5e3, 2e4), "adipose": (2e2, 1.5e3),
                  "muscle": (1e3, 4e3)}


def _tissue_section(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
                    params: dict[str, Any]) -> Sample:
    """A section's density (0..1) through its depth from the chosen texture, times the index
    contrast; nuclei (ellipsoids 4–10 µm, denser, hematoxylin-stained by ``nuclear_stain``)."""
    medium = float(param(params, "medium_index", lambda: rng.uniform(1.40, 1.52)))
    texture = choice(params, "texture", TEXTURES, rng)
    thickness = positive("thickness_um", param(params, "thickness_um",
                                               lambda: rng.uniform(3.0, 10.0)))
    slice_um = positive("slice_um", param(params, "slice_um",
                                          lambda: max(0.5, thickness / 10)))
    contrast = float(param(params, "index_contrast", lambda: rng.uniform(0.01, 0.05)))
    per_mm2 = float(param(params, "nuclei_per_mm2",
                          lambda: rng.uniform(*NUCLEI_PER_MM2[texture])))
    nuclear = float(param(params, "nuclear_stain", lambda: rng.uniform(0.0, 0.5)))
    slices = max(2, round(thickness / slice_um))
    vol = Volume(slices, shape, thickness)
    density = _DENSITY[texture](rng, (slices, *shape), pixel_um, vol.dz)
    vol.path.real = density * np.float32(vol.dz * contrast)
    del density
    count = add_nuclei(rng, vol, pixel_um, per_mm2, lambda dn: complex(dn, nuclear * dn))
    params["objects"] = count
    return on_slide(rng, vol, pixel_um, medium, params, SECTION_STAIN)


def _fibrous(rng: np.random.Generator, shape: tuple[int, int, int], pixel_um: float,
             dz: float) -> np.ndarray:
    """Collagen bundles: two families of fibres (each correlated 4–15 µm along, 0.6–1.5 µm
    across, ~1 µm in depth) in patches of their own direction."""
    bundles = [_oriented_field(rng, shape, pixel_um, dz, rng.uniform(4.0, 15.0),
                               rng.uniform(0.6, 1.5), rng.uniform(0, np.pi)) for _ in range(2)]
    share = _sigmoid(random_field(rng, shape[1:], pixel_um, corr_um=rng.uniform(15.0, 40.0)))
    fibres = bundles[0] * share + bundles[1] * (1 - share)
    threshold = float(np.quantile(fibres.ravel()[::7], 1.0 - rng.uniform(0.3, 0.7)))
    return _sigmoid((fibres - threshold) / np.float32(0.3))


def _epithelial(rng: np.random.Generator, shape: tuple[int, int, int], pixel_um: float,
                dz: float) -> np.ndarray:
    """Packed cells 8–15 µm (denser membranes, each cell its own density) around empty lumina."""
    _, edge, owner = _cells(rng, shape[1:], pixel_um, rng.uniform(8.0, 15.0))
    density = (rng.uniform(0.4, 0.8, owner.max() + 1)[owner]
               + 0.5 * np.exp(-((edge / 0.5) ** 2))).astype(np.float32)
    lumen = random_field(rng, shape[1:], pixel_um, corr_um=rng.uniform(10.0, 25.0))
    density *= lumen > rng.uniform(-2.5, -0.8)
    return _through(rng, density, shape, pixel_um)


def _adipose(rng: np.random.Generator, shape: tuple[int, int, int], pixel_um: float,
             dz: float) -> np.ndarray:
    """Fat cells 30–80 µm whose lipid was washed out in processing: thin walls only."""
    _, edge, _ = _cells(rng, shape[1:], pixel_um, rng.uniform(30.0, 80.0))
    wall = rng.uniform(0.8, 1.5)
    density = np.clip(1.5 - edge / wall, 0.0, 1.0).astype(np.float32)
    return _through(rng, density, shape, pixel_um)


def _muscle(rng: np.random.Generator, shape: tuple[int, int, int], pixel_um: float,
            dz: float) -> np.ndarray:
    """Skeletal muscle cut along its fibres: parallel fibres 10–30 µm wide with gaps between,
    striated every 1.8–2.8 µm (the sarcomere)."""
    angle = rng.uniform(0, np.pi)
    rows, cols = shape[1:]
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32) * np.float32(pixel_um)
    along = x * math.cos(angle) + y * math.sin(angle)
    across = -x * math.sin(angle) + y * math.cos(angle)
    width = rng.uniform(10.0, 30.0)
    wobble = random_field(rng, (rows, cols), pixel_um, corr_um=20.0) * np.float32(2.0)
    position = (across + wobble) / np.float32(width)
    fibre = np.clip((0.5 - np.abs(position - np.round(position))) / 0.08, 0.0, 1.0)
    period = rng.uniform(1.8, 2.8)
    density = (fibre * (0.75 + 0.25 * np.cos(2 * np.pi * along / period))).astype(np.float32)
    return _through(rng, density, shape, pixel_um)


_DENSITY = {"fibrous": _fibrous, "epithelial": _epithelial, "adipose": _adipose,
            "muscle": _muscle}


def _cells(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
           cell_um: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    size_um = np.array([shape[0] * pixel_um, shape[1] * pixel_um])
    seeds = rng.uniform(0, 1, (max(2, round(size_um.prod() / cell_um**2)), 2)) * size_um
    return voronoi(seeds, shape, pixel_um)


def _through(rng: np.random.Generator, density: np.ndarray, shape: tuple[int, int, int],
             pixel_um: float) -> np.ndarray:
    """A 2D texture through the section's depth (cells are larger than it is thick), with a
    fine grain that changes from slice to slice."""
    grain = random_field(rng, shape, pixel_um, corr_um=0.5, corr_z_px=1.0)
    return np.clip(density[None] * (1.0 + np.float32(0.15) * grain), 0.0, None)


def _oriented_field(rng: np.random.Generator, shape: tuple[int, int, int], pixel_um: float,
                    dz: float, along_um: float, across_um: float, angle: float) -> np.ndarray:
    """A periodic Gaussian random field (unit std) correlated ``along_um`` in the direction
    ``angle``, ``across_um`` across it and about 1 µm in depth."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    spectrum = sfft.rfftn(noise, workers=1)
    kz = np.fft.fftfreq(shape[0], d=dz)[:, None, None]
    ky = np.fft.fftfreq(shape[1], d=pixel_um)[None, :, None]
    kx = np.fft.rfftfreq(shape[2], d=pixel_um)[None, None, :]
    k_along = kx * math.cos(angle) + ky * math.sin(angle)
    k_across = -kx * math.sin(angle) + ky * math.cos(angle)
    kernel = np.exp(-2.0 * np.pi**2 * ((along_um * k_along) ** 2 + (across_um * k_across) ** 2
                                       + kz**2)).astype(np.float32)
    out = sfft.irfftn(spectrum * kernel, s=shape, workers=1).astype(np.float32)
    return out / max(float(out.std()), 1e-12)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.float32(1.0) / (np.float32(1.0) + np.exp(-x)), dtype=np.float32)


TISSUE_SECTION = SampleFamily(_tissue_section, SLIDE_PARAMS | {
    "texture", "thickness_um", "slice_um", "index_contrast", "nuclei_per_mm2", "nuclear_stain"})
