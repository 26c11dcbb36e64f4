"""Seeded virtual samples: what the light passes through, as complex optical path per slice.

A sample is a stack of slices on the simulation grid. Each slice holds the *complex optical path
difference* against the surrounding medium, ``path = Δn·t + i·κ·t`` (µm), so its transmittance at
any wavelength is ``exp(2πi·path/λ)``: the phase and the absorption follow from the same physical
description for every wavelength of a broadband LED. One slice is a thin sample; several are a
thick sample propagated slice by slice (``slice_um`` apart, in ``medium_index``).

The field of view is periodic (objects that cross one edge continue at the other), which is what
the FFT-based optics assume; nothing is cut off at an edge to diffract.

``make_sample(kind, shape, pixel_um, seed, **params)`` is the one factory. Every parameter a kind
does not receive is drawn from a realistic range with the seed, so many seeds give varied training
data; the values used end up in ``Sample.params`` (and in a stack's metadata).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy.spatial import cKDTree

from controller.sim.errors import SimError


@dataclass(frozen=True, eq=False)
class Sample:
    """Complex optical path per slice on a periodic grid (rows = y, columns = x)."""

    path_um: np.ndarray  # complex64 (slices, rows, cols): Δn·t + i·κ·t against the medium
    pixel_um: float
    slice_um: float = 0.0  # spacing of the slices; 0 for a thin sample
    medium_index: float = 1.33
    kind: str = "custom"
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.path_um.ndim != 3 or min(self.path_um.shape) <= 0:
            raise SimError(f"sample: path must be (slices, rows, cols), got {self.path_um.shape}")
        if not self.pixel_um > 0 or not self.medium_index >= 1.0:
            raise SimError(f"sample: need pixel_um > 0 and medium_index >= 1, got "
                           f"{self.pixel_um}, {self.medium_index}")
        if self.path_um.shape[0] > 1 and not self.slice_um > 0:
            raise SimError("sample: a sample of several slices needs slice_um > 0")
        object.__setattr__(self, "path_um", np.asarray(self.path_um, dtype=np.complex64))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.path_um.shape[1]), int(self.path_um.shape[2]))

    @property
    def slices(self) -> int:
        return int(self.path_um.shape[0])

    @property
    def thickness_um(self) -> float:
        return self.slices * self.slice_um

    @cached_property
    def focus_depth_um(self) -> float:
        """Depth of the plane the simulator calls in focus, from the lower edge of the first
        slice: each slice's centre weighted by the detail it holds (the energy of its path's
        gradient: uniform or slowly varying layers make no sharp image). A uniform section is
        focused in its middle; cells on a coverglass nearer the glass, where their edges are."""
        if self.slices == 1:
            return 0.0
        centres = (np.arange(self.slices) + 0.5) * self.slice_um
        weights = np.array([np.sum(np.abs(np.diff(layer, axis=0, append=layer[:1])) ** 2)
                            + np.sum(np.abs(np.diff(layer, axis=1, append=layer[:, :1])) ** 2)
                            for layer in self.path_um])
        if not weights.sum() > 0:
            return float(centres.mean())
        return float(np.average(centres, weights=weights))

    def transmittance(self, wavelength_um: float) -> np.ndarray:
        """complex64 (slices, rows, cols): exp(2πi·path/λ), in float32 parts (a complex exp is
        several times slower)."""
        k = np.float32(2.0 * np.pi / wavelength_um)
        phase = self.path_um.real * k
        amplitude = np.exp(-k * self.path_um.imag)
        out = np.empty(self.path_um.shape, dtype=np.complex64)
        out.real = amplitude * np.cos(phase)
        out.imag = amplitude * np.sin(phase)
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-ready record for stack metadata: kind, seed, the parameters used, the geometry."""
        return {
            "kind": self.kind,
            "seed": self.seed,
            "params": self.params,
            "slices": self.slices,
            "slice_um": self.slice_um,
            "medium_index": self.medium_index,
            "pixel_um": self.pixel_um,
            "shape": list(self.shape),
            "focus_depth_um": self.focus_depth_um,
        }


SampleMaker = Callable[[np.random.Generator, tuple[int, int], float, dict[str, Any]], Sample]


def make_sample(kind: str, shape: tuple[int, int], pixel_um: float, seed: int,
                **params: Any) -> Sample:
    """A reproducible sample of the named kind; unknown kinds and parameters are errors."""
    if kind not in SAMPLE_KINDS:
        raise SimError(f"unknown sample kind {kind!r}; known: {sorted(SAMPLE_KINDS)}")
    rows, cols = (int(s) for s in shape)
    if rows < 8 or cols < 8:
        raise SimError(f"sample: shape must be at least 8x8 pixels, got {shape}")
    if not (isinstance(pixel_um, int | float) and math.isfinite(pixel_um) and pixel_um > 0):
        raise SimError(f"sample: pixel_um must be a positive number, got {pixel_um!r}")
    if int(seed) < 0:
        raise SimError(f"sample: seed must be >= 0, got {seed}")
    maker, known = SAMPLE_KINDS[kind]
    unknown = set(params) - known
    if unknown:
        raise SimError(f"sample {kind!r}: unknown parameters {sorted(unknown)}; "
                       f"known: {sorted(known)}")
    rng = np.random.default_rng([int(seed), _stable_hash(kind)])
    sample = maker(rng, (rows, cols), float(pixel_um), dict(params))
    return Sample(sample.path_um, sample.pixel_um, sample.slice_um, sample.medium_index,
                  kind, int(seed), sample.params)


def _stable_hash(text: str) -> int:
    return sum((i + 1) * ord(ch) for i, ch in enumerate(text))


def _param(params: dict[str, Any], name: str, draw: Callable[[], Any]) -> Any:
    """The given value, else a seeded draw; the result is recorded back into ``params``."""
    if name not in params or params[name] is None:
        params[name] = draw()
    value = params[name]
    if isinstance(value, np.generic):
        value = value.item()
    params[name] = value
    return value


def _range(params: dict[str, Any], name: str, default: tuple[float, float]) -> tuple[float, float]:
    """A (low, high) range parameter; a single number means exactly that value."""
    value = _param(params, name, lambda: list(default))
    try:
        low, high = (float(value), float(value)) if isinstance(value, int | float) else \
            (float(value[0]), float(value[1]))
    except (TypeError, ValueError, IndexError):
        raise SimError(f"sample: {name} must be a number or [low, high], got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise SimError(f"sample: {name} must be finite with low <= high, got {value!r}")
    return low, high


def _positive(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise SimError(f"sample: {name} must be positive, got {value}")
    return float(value)


class _Volume:
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


def _random_field(rng: np.random.Generator, shape: tuple[int, ...], pixel_um: float,
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


def _ellipse(size: int, offset: tuple[float, float], radii: tuple[float, float], angle: float,
             pixel_um: float) -> np.ndarray:
    """Squared elliptical radius on a size x size patch (1 at the rim), centred at ``offset``
    pixels from the patch centre."""
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    y = (y - c - offset[0]) * pixel_um
    x = (x - c - offset[1]) * pixel_um
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    return np.asarray((u / radii[0]) ** 2 + (v / radii[1]) ** 2, dtype=np.float32)


def _dome(rho2: np.ndarray, height: float) -> np.ndarray:
    return np.asarray(height * np.sqrt(np.clip(1.0 - rho2, 0.0, None)), dtype=np.float32)


def _slices_of(params: dict[str, Any], default: int) -> int:
    slices = int(_param(params, "slices", lambda: default))
    if slices < 1:
        raise SimError(f"sample: slices must be >= 1, got {slices}")
    return slices


def _background(rng: np.random.Generator, vol: _Volume, pixel_um: float,
                params: dict[str, Any]) -> None:
    """Slow optical-path variation of the coverglass and medium, and a few debris particles."""
    ripple = float(_param(params, "background_opd_um", lambda: rng.uniform(0.0, 0.03)))
    if ripple > 0:
        field_ = _random_field(rng, vol.shape, pixel_um, corr_um=rng.uniform(15.0, 40.0))
        vol.path[vol.slices // 2] += (ripple * field_).astype(np.complex64)
    area_mm2 = vol.shape[0] * vol.shape[1] * pixel_um**2 / 1e6
    per_mm2 = float(_param(params, "debris_per_mm2", lambda: rng.uniform(0.0, 400.0)))
    for _ in range(rng.poisson(per_mm2 * area_mm2)):
        radius = rng.uniform(0.3, 1.5)
        size = 2 * math.ceil(radius / pixel_um) + 3
        rho2 = _ellipse(size, (rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)),
                        (radius, radius * rng.uniform(0.5, 1.0)), rng.uniform(0, np.pi), pixel_um)
        dn = complex(rng.uniform(0.02, 0.15), rng.uniform(0.0, 0.05))
        corner = (int(rng.integers(vol.shape[0])), int(rng.integers(vol.shape[1])))
        vol.add(0.0, _dome(rho2, 2 * radius), dn, at=corner)


def _sparse_cells(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
                  params: dict[str, Any]) -> Sample:
    """White blood cells settled on a coverglass: phase objects with nuclei and granules."""
    medium = float(_param(params, "medium_index", lambda: 1.33))
    per_mm2 = _positive("density_per_mm2",
                        _param(params, "density_per_mm2", lambda: rng.uniform(150.0, 1500.0)))
    d_lo, d_hi = _range(params, "diameter_um", (8.0, 12.0))
    h_lo, h_hi = _range(params, "height_um", (3.0, 6.0))
    n_lo, n_hi = _range(params, "cell_index", (1.36, 1.39))
    absorb = float(_param(params, "kappa", lambda: rng.uniform(2e-4, 1.5e-3)))
    granularity = float(_param(params, "granularity", lambda: rng.uniform(0.0, 0.01)))
    slices = _slices_of(params, 1)
    _positive("diameter_um", d_lo)
    _positive("height_um", h_lo)
    thickness = h_hi + 1.0
    vol = _Volume(slices, shape, thickness)
    area_mm2 = shape[0] * shape[1] * pixel_um**2 / 1e6
    count = rng.poisson(per_mm2 * area_mm2)
    placed: list[tuple[float, float, float]] = []
    size_um = (shape[0] * pixel_um, shape[1] * pixel_um)
    for _ in range(count):
        radius = rng.uniform(d_lo, d_hi) / 2.0
        for _attempt in range(20):  # sparse: cells do not pile up on each other
            cy, cx = rng.uniform(0, size_um[0]), rng.uniform(0, size_um[1])
            if all(_periodic_distance((cy, cx), (py, px), size_um) > 0.9 * (radius + pr)
                   for py, px, pr in placed):
                break
        else:
            continue
        placed.append((cy, cx, radius))
        _white_cell(rng, vol, pixel_um, (cy, cx), radius, rng.uniform(h_lo, h_hi),
                    complex(rng.uniform(n_lo, n_hi) - medium, absorb), granularity)
    _background(rng, vol, pixel_um, params)
    params["cells"] = len(placed)
    return Sample(vol.path, pixel_um, vol.dz if slices > 1 else 0.0, medium, params=params)


def _periodic_distance(a: tuple[float, float], b: tuple[float, float],
                       size: tuple[float, float]) -> float:
    dy = abs(a[0] - b[0]) % size[0]
    dx = abs(a[1] - b[1]) % size[1]
    return math.hypot(min(dy, size[0] - dy), min(dx, size[1] - dx))


def _white_cell(rng: np.random.Generator, vol: _Volume, pixel_um: float,
                centre_um: tuple[float, float], radius: float, height: float, dn: complex,
                granularity: float) -> None:
    """One leukocyte: a dome with a lobed nucleus (lymphocyte, neutrophil or monocyte look)."""
    size = 2 * math.ceil(1.1 * radius / pixel_um) + 3
    centre_px = (centre_um[0] / pixel_um - 0.5, centre_um[1] / pixel_um - 0.5)  # index units
    corner = (math.floor(centre_px[0]) - size // 2, math.floor(centre_px[1]) - size // 2)
    offset = (centre_px[0] - corner[0] - (size - 1) / 2, centre_px[1] - corner[1] - (size - 1) / 2)
    aspect = rng.uniform(0.85, 1.15)
    angle = rng.uniform(0, np.pi)
    body = _dome(_ellipse(size, offset, (radius * aspect, radius / aspect), angle, pixel_um),
                 height)
    vol.add(0.0, body, dn, at=corner)
    if granularity > 0:
        grains = _random_field(rng, (size, size), pixel_um, corr_um=0.25)
        vol.add(0.0, body, granularity * grains, at=corner)
    lobes = int(rng.choice([1, 1, 2, 3, 4]))
    lobe_radius = radius * (0.7 if lobes == 1 else rng.uniform(0.3, 0.4))
    nucleus_dn = complex(rng.uniform(0.01, 0.03), abs(dn.imag) * rng.uniform(1.0, 3.0))
    for k in range(lobes):
        phi = angle + 2 * np.pi * k / lobes
        spread = 0.0 if lobes == 1 else 0.45 * radius
        lobe_offset = (offset[0] + spread * math.sin(phi) / pixel_um,
                       offset[1] + spread * math.cos(phi) / pixel_um)
        rho2 = _ellipse(size, lobe_offset, (lobe_radius, lobe_radius * rng.uniform(0.7, 1.0)),
                        rng.uniform(0, np.pi), pixel_um)
        thick = _dome(rho2, 0.6 * height)
        vol.add(height / 2 - thick / 2, height / 2 + thick / 2, nucleus_dn, at=corner)


def _dense_cells(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
                 params: dict[str, Any]) -> Sample:
    """A confluent layer: Voronoi cells, each a low dome with a nucleus and nucleoli."""
    medium = float(_param(params, "medium_index", lambda: 1.33))
    cell_um = _positive("cell_size_um", _param(params, "cell_size_um",
                                                 lambda: rng.uniform(12.0, 22.0)))
    height = _positive("height_um", _param(params, "height_um", lambda: rng.uniform(2.0, 5.0)))
    dn_lo, dn_hi = _range(params, "index_contrast", (0.015, 0.045))
    absorb = float(_param(params, "kappa", lambda: rng.uniform(2e-4, 1.5e-3)))
    texture = float(_param(params, "texture_opd_um", lambda: rng.uniform(0.0, 0.03)))
    slices = _slices_of(params, 1)
    size_um = np.array([shape[0] * pixel_um, shape[1] * pixel_um])
    seeds_n = max(2, round(size_um.prod() / cell_um**2))
    seeds = rng.uniform(0, 1, (seeds_n, 2)) * size_um
    tree = cKDTree(seeds, boxsize=size_um)
    yy, xx = np.meshgrid((np.arange(shape[0]) + 0.5) * pixel_um,
                         (np.arange(shape[1]) + 0.5) * pixel_um, indexing="ij")
    points = np.stack([yy.ravel(), xx.ravel()], axis=1) % size_um
    dist, nearest = tree.query(points, k=2, workers=1)
    d_own = dist[:, 0].reshape(shape).astype(np.float32)
    edge = ((dist[:, 1] - dist[:, 0]) / 2.0).reshape(shape).astype(np.float32)
    owner = nearest[:, 0].reshape(shape)
    rise = np.clip(edge / (0.3 * cell_um), 0.0, 1.0)
    cell_height = (height * rng.uniform(0.7, 1.3, seeds_n))[owner].astype(np.float32)
    thick = cell_height * np.sqrt(1.0 - (1.0 - rise) ** 2)
    dn = (rng.uniform(dn_lo, dn_hi, seeds_n) + 1j * absorb)[owner]
    vol = _Volume(slices, shape, height * 1.3 + 1.0)
    vol.add(0.0, thick, dn)
    nucleus_r = (cell_um * rng.uniform(0.2, 0.3, seeds_n))[owner]
    nucleus = _dome((d_own / nucleus_r) ** 2, 1.0) * 0.6 * cell_height
    base = cell_height / 2
    vol.add(base - nucleus / 2, base + nucleus / 2,
            (rng.uniform(0.01, 0.025, seeds_n) + 2j * absorb)[owner])
    if texture > 0:
        grains = _random_field(rng, shape, pixel_um, corr_um=rng.uniform(0.3, 1.0))
        vol.path[vol.slices // 2] += (texture * grains * (thick > 0)).astype(np.complex64)
    _background(rng, vol, pixel_um, params)
    params["cells"] = int(seeds_n)
    return Sample(vol.path, pixel_um, vol.dz if slices > 1 else 0.0, medium, params=params)


def _tissue(rng: np.random.Generator, shape: tuple[int, int], pixel_um: float,
            params: dict[str, Any]) -> Sample:
    """A stained tissue section (~5 µm): fibrous phase and absorption texture through its depth,
    absorbing nuclei, and empty lumina; always multi-slice."""
    medium = float(_param(params, "medium_index", lambda: 1.45))
    thickness = _positive("thickness_um", _param(params, "thickness_um", lambda: 5.0))
    slice_um = _positive("slice_um", _param(params, "slice_um", lambda: 0.5))
    slices = max(1, round(thickness / slice_um))
    fill = float(_param(params, "fill", lambda: rng.uniform(0.4, 0.8)))
    dn_tissue = float(_param(params, "index_contrast", lambda: rng.uniform(0.01, 0.04)))
    kappa_stroma = float(_param(params, "kappa_stroma", lambda: rng.uniform(5e-4, 3e-3)))
    kappa_nuclei = float(_param(params, "kappa_nuclei", lambda: rng.uniform(2e-3, 1e-2)))
    nuclei_per_mm2 = float(_param(params, "nuclei_per_mm2", lambda: rng.uniform(2e3, 1.2e4)))
    dz = thickness / slices
    texture = _random_field(rng, (slices, *shape), pixel_um, corr_um=rng.uniform(0.6, 2.0),
                            corr_z_px=1.0 / dz)
    lumen = _random_field(rng, shape, pixel_um, corr_um=rng.uniform(8.0, 20.0))
    threshold = float(np.quantile(texture.ravel()[::7], 1.0 - fill))  # a subsample suffices
    density = np.float32(1.0) / (np.float32(1.0) + np.exp((threshold - texture) / np.float32(0.3)))
    del texture
    density *= (lumen > rng.uniform(-2.0, -0.5))[None]
    vol = _Volume(slices, shape, thickness)
    vol.path.real = density * np.float32(dz * dn_tissue)
    vol.path.imag = density * np.float32(dz * kappa_stroma)
    del density
    area_mm2 = shape[0] * shape[1] * pixel_um**2 / 1e6
    for _ in range(rng.poisson(nuclei_per_mm2 * area_mm2)):
        radius = rng.uniform(2.0, 4.0)
        size = 2 * math.ceil(1.6 * radius / pixel_um) + 3
        rho2 = _ellipse(size, (0.0, 0.0), (radius * rng.uniform(1.0, 1.6), radius),
                        rng.uniform(0, np.pi), pixel_um)
        depth = rng.uniform(0.0, thickness)
        half = _dome(rho2, radius)
        corner = (int(rng.integers(shape[0])), int(rng.integers(shape[1])))
        vol.add(depth - half, depth + half, complex(rng.uniform(0.01, 0.03), kappa_nuclei),
                at=corner)
    return Sample(vol.path, pixel_um, dz, medium, params=params)


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
    opd = float(_param(params, "opd_um", lambda: rng.uniform(0.05, 0.3)))
    extinction = float(_param(params, "extinction_um", lambda: rng.uniform(0.0, 0.03)))
    darkness = 1.0 - picture
    path = (darkness * complex(opd, extinction)).astype(np.complex64)[None]
    return Sample(path, pixel_um, 0.0, float(_param(params, "medium_index", lambda: 1.33)),
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


_COMMON = {"medium_index", "background_opd_um", "debris_per_mm2", "slices"}
SAMPLE_KINDS: dict[str, tuple[SampleMaker, set[str]]] = {
    "sparse-cells": (_sparse_cells, _COMMON | {"density_per_mm2", "diameter_um", "height_um",
                                               "cell_index", "kappa", "granularity"}),
    "dense-cells": (_dense_cells, _COMMON | {"cell_size_um", "height_um", "index_contrast",
                                             "kappa", "texture_opd_um"}),
    "tissue": (_tissue, {"medium_index", "thickness_um", "slice_um", "fill", "index_contrast",
                         "kappa_stroma", "kappa_nuclei", "nuclei_per_mm2"}),
    "image": (_image, {"image", "opd_um", "extinction_um", "medium_index"}),
}
