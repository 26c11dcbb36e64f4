"""Drawing objects into a sample: the sliced volume they fill, the shapes and random textures
families are built from, and the coverglass background every sample on a coverglass shares."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy.spatial import cKDTree

from controller.sim.samples.params import param

COVERGLASS_PARAMS = frozenset({"medium_index", "slices", "background_opd_um", "debris_per_mm2"})
"""Parameters every family of objects settled on a coverglass accepts: its medium, its slicing
(``slices_of``) and the ``background`` it draws."""


class Volume:
    """Accumulates objects into slices: an object fills heights low..high above the coverglass."""

    def __init__(self, slices: int, shape: tuple[int, int], thickness_um: float) -> None:
        self.path = np.zeros((slices, *shape), dtype=np.complex64)
        self.shape = shape
        self.slices = slices
        self.dz = thickness_um / slices

    def bounds(self, j: int) -> tuple[float, float]:
        if self.slices == 1:  # a thin sample collects the whole projection
            return (-math.inf, math.inf)
        return (j * self.dz, (j + 1) * self.dz)

    def add(self, low: np.ndarray | float, high: np.ndarray, dn: np.ndarray | complex,
            at: tuple[int, int] | None = None) -> None:
        """Add ``dn`` (complex index difference) over heights [low, high] µm; ``at`` places a
        local patch with its top-left corner there (wrapping round the periodic field)."""
        if at is None:
            index: Any = (slice(None), slice(None))
        else:
            rows = (at[0] + np.arange(high.shape[0])) % self.shape[0]
            cols = (at[1] + np.arange(high.shape[1])) % self.shape[1]
            index = np.ix_(rows, cols)
        for j in range(self.slices):
            lo, hi = self.bounds(j)
            overlap = np.clip(np.minimum(high, hi) - np.maximum(low, lo), 0.0, None)
            if np.any(overlap > 0):
                self.path[j][index] += (dn * overlap).astype(np.complex64)


def patch(centre_um: tuple[float, float], extent_um: float,
          pixel_um: float) -> tuple[int, tuple[int, int], tuple[float, float]]:
    """A square patch for an object reaching ``extent_um`` from its centre: its size (px), the
    top-left corner it goes at (``Volume.add(at=...)``), and the centre's offset from the
    patch's centre (px, for ``ellipse`` and friends)."""
    size = 2 * math.ceil(extent_um / pixel_um) + 3
    centre_px = (centre_um[0] / pixel_um - 0.5, centre_um[1] / pixel_um - 0.5)  # index units
    corner = (math.floor(centre_px[0]) - size // 2, math.floor(centre_px[1]) - size // 2)
    offset = (centre_px[0] - corner[0] - (size - 1) / 2, centre_px[1] - corner[1] - (size - 1) / 2)
    return size, corner, offset


def ball(vol: Volume, centre_um: tuple[float, float], height_um: float,
         radii_um: tuple[float, float], dn: complex, pixel_um: float) -> None:
    """Add an ellipsoid of revolution about z (radius ``radii_um[0]`` across, half-height
    ``radii_um[1]``) centred ``height_um`` above the coverglass: a bead, a droplet, a nucleus."""
    size, corner, offset = patch(centre_um, radii_um[0], pixel_um)
    half = dome(ellipse(size, offset, (radii_um[0],) * 2, 0.0, pixel_um), radii_um[1])
    vol.add(height_um - half, height_um + half, dn, at=corner)


def voronoi(seeds: np.ndarray, shape: tuple[int, int],
            pixel_um: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The periodic Voronoi cells of ``seeds`` (µm, (n, 2) as (y, x)) on the grid: per pixel the
    distance to its own seed, the distance to the nearest cell boundary (µm, float32), and the
    index of its seed."""
    size_um = np.array([shape[0] * pixel_um, shape[1] * pixel_um])
    tree = cKDTree(seeds, boxsize=size_um)
    yy, xx = np.meshgrid((np.arange(shape[0]) + 0.5) * pixel_um,
                         (np.arange(shape[1]) + 0.5) * pixel_um, indexing="ij")
    points = np.stack([yy.ravel(), xx.ravel()], axis=1) % size_um
    dist, nearest = tree.query(points, k=2, workers=1)
    d_own = dist[:, 0].reshape(shape).astype(np.float32)
    edge = ((dist[:, 1] - dist[:, 0]) / 2.0).reshape(shape).astype(np.float32)
    return d_own, edge, nearest[:, 0].reshape(shape)


def random_field(rng: np.random.Generator, shape: tuple[int, ...], pixel_um: float,
                 corr_um: float, corr_z_px: float = 0.0) -> np.ndarray:
    """Periodic Gaussian random field, unit standard deviation, correlation length corr_um
    (and corr_z_px along a leading slice axis, when there is one)."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    spectrum = sfft.rfftn(noise, workers=1)
    ky = np.fft.fftfreq(shape[-2], d=pixel_um)[:, None]
    kx = np.fft.rfftfreq(shape[-1], d=pixel_um)[None, :]
    kernel = np.exp(-2.0 * (np.pi * corr_um) ** 2 * (ky**2 + kx**2)).astype(np.float32)
    if len(shape) == 3:
        kz = np.fft.fftfreq(shape[0])[:, None, None]
        kernel = kernel[None] * np.exp(-2.0 * (np.pi * corr_z_px) ** 2 * kz**2).astype(np.float32)
    out = sfft.irfftn(spectrum * kernel, s=shape, workers=1).astype(np.float32)
    std = float(out.std())
    return out / std if std > 0 else out


def ellipse(size: int, offset: tuple[float, float], radii: tuple[float, float], angle: float,
            pixel_um: float) -> np.ndarray:
    """Squared elliptical radius on a size x size patch (1 at the rim), centred at ``offset``
    pixels from the patch centre."""
    u, v = axes(size, offset, angle, pixel_um)
    return np.asarray((u / radii[0]) ** 2 + (v / radii[1]) ** 2, dtype=np.float32)


def axes(size: int, offset: tuple[float, float], angle: float,
         pixel_um: float) -> tuple[np.ndarray, np.ndarray]:
    """µm along (u) and across (v) an object's axis at ``angle`` (from +x towards +y) on a
    size x size patch, from its centre ``offset`` pixels from the patch centre."""
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    y = (y - c - offset[0]) * pixel_um
    x = (x - c - offset[1]) * pixel_um
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    return u, v


def capsule(size: int, offset: tuple[float, float], half_length_um: float, radius_um: float,
            angle: float, pixel_um: float) -> np.ndarray:
    """Thickness (µm) of a rod with round ends lying flat (a bacterium, a fibre): a cylinder
    ``2·sqrt(r² − d²)``, d the distance from its axis segment of ±``half_length_um``."""
    u, v = axes(size, offset, angle, pixel_um)
    d2 = np.clip(np.abs(u) - half_length_um, 0.0, None) ** 2 + v**2
    return np.asarray(2.0 * np.sqrt(np.clip(radius_um**2 - d2, 0.0, None)), dtype=np.float32)


def dome(rho2: np.ndarray, height: float) -> np.ndarray:
    """Height of an ellipsoidal cap over a squared radius from ``ellipse`` (0 outside the rim)."""
    return np.asarray(height * np.sqrt(np.clip(1.0 - rho2, 0.0, None)), dtype=np.float32)


def background(rng: np.random.Generator, vol: Volume, pixel_um: float,
               params: dict[str, Any]) -> None:
    """Slow optical-path variation of the coverglass and medium, and a few debris particles."""
    ripple = float(param(params, "background_opd_um", lambda: rng.uniform(0.0, 0.03)))
    if ripple > 0:
        field = random_field(rng, vol.shape, pixel_um, corr_um=rng.uniform(15.0, 40.0))
        vol.path[vol.slices // 2] += (ripple * field).astype(np.complex64)
    area_mm2 = vol.shape[0] * vol.shape[1] * pixel_um**2 / 1e6
    per_mm2 = float(param(params, "debris_per_mm2", lambda: rng.uniform(0.0, 400.0)))
    for _ in range(rng.poisson(per_mm2 * area_mm2)):
        radius = rng.uniform(0.3, 1.5)
        size = 2 * math.ceil(radius / pixel_um) + 3
        rho2 = ellipse(size, (rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)),
                       (radius, radius * rng.uniform(0.5, 1.0)), rng.uniform(0, np.pi), pixel_um)
        dn = complex(rng.uniform(0.02, 0.15), rng.uniform(0.0, 0.05))
        corner = (int(rng.integers(vol.shape[0])), int(rng.integers(vol.shape[1])))
        vol.add(0.0, dome(rho2, 2 * radius), dn, at=corner)
