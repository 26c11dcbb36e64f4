"""The network's input: spectrum-magnitude features of a frame, one function for training and box.

Method (Pinkard et al. 2019): under one off-axis LED the magnitude of an image's low-frequency
spectrum holds the defocus as fringes inside the two shifted pupil circles; a small network reads
the distance to focus from it. The frame is cut into square patches (each gets its own
prediction, so the controller can judge their agreement), and per patch:

1. sum ``bin_x`` neighbouring pixels along x (across the LED's tilt), which cuts the FFT's cost
   by ``bin_x`` (see benchmarks/bench_training.py). The kept x band lies below the binned
   Nyquist frequency; the box's response keeps it (0.65 at its edge for 4 pixels) and folds
   higher x frequencies into it with a gain that falls to zero at multiples of the binned
   sampling frequency. That folded part is the sample's own spectrum from outside the overlap
   lens (below), identical in training and inference: noise for the network, not a bias;
2. real FFT (pyfftw plans cached per shape, scipy.fft when pyfftw is missing), DC set to zero,
   which is exactly what subtracting the patch mean does to a DFT;
3. magnitude of the central crop: ``|f_y| < crop_y`` and ``0 <= f_x < crop_x`` (fractions of the
   camera's sampling frequency). The defocus lives where the two pupil circles (radius NA/λ,
   centred at ±NA_led/λ along the tilt axis y) overlap: there the scattered light interferes with
   the unscattered beam of both circles and rings appear whose spacing shrinks with |defocus|;
   where only one circle reaches, the magnitude is the sample's spectrum alone. For the paper
   preset the overlap lens reaches |f_y| < 0.08 and |f_x| < 0.2 of the sampling frequency, so the
   default keeps |f_y| < 0.1 and f_x < 0.125 (the most that binning by 4 allows). The paper kept
   a tall strip (|f_y| < 0.3, f_x < 0.05), mostly outside the lens: on the same ~60 simulated
   stacks it gave 8.4 µm validation RMSE and 10 % wrong signs, the lens crop 4.6 µm and 1.5 %;
4. mean-pool ``pool_y`` x ``pool_x`` neighbouring frequency bins (a Bartlett-style estimate:
   less speckle from the sample texture, fewer weights; the rings stay resolved: at 30 µm their
   spacing is about five pooled bins);
5. normalise each patch's vector (unit L2 norm by default: exposure and brightness drop out),
   then take its log: the sample's texture multiplies the defocus pattern, the log makes that an
   offset the network can ignore.

Measured (280 simulated 512² stacks of both cell kinds, same split and network, per-patch
validation RMSE over ±30 µm): paper crop 8.4 µm (on 60 stacks), lens crop with 2x2 pooling 5.1,
with log 4.4, 4x4 pooling 5.1, 4x4 pooling with log 4.0 µm (3.5 with input dropout 0.2); the
lens crop binned by 2 and covering all of the lens along x (0.22) was no better (4.3).

Same bytes in, same vector out within a process. FFTW picks its algorithm by timing
(FFTW_MEASURE, twice as fast here as the deterministic FFTW_ESTIMATE), so two processes may differ
in the last bit of a float (about 1e-7 relative), far below the int8 input step of the network.

Per-feature standardisation is frozen at training (``Standardizer``) and travels in the model
bundle with the ``FeatureSpec``. Everything is float32 and batched: ``featurize(images, spec)``
takes (frames, rows, cols) or one (rows, cols) frame of any integer or float dtype and returns
(frames, patches, features).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from controller.errors import FocuslockError

try:  # pyfftw is the fast path on the box; scipy.fft gives identical numbers within float32 eps
    import pyfftw

    _HAVE_PYFFTW = True
except ImportError:  # pragma: no cover - pyfftw is a dependency, the fallback is for odd platforms
    _HAVE_PYFFTW = False
import scipy.fft


class FeatureError(FocuslockError, ValueError):
    """A feature spec that cannot work, or a frame that does not fit it."""


_NORMALISATIONS = ("l2", "mean")
# What of the complex spectrum the crop keeps. The box reads the magnitude (the method); phase
# (its argument, radians) and the real part exist only for the input experiment of
# training/experiments/representation.py (the paper's Fig. 3a). They can be negative, so they
# take no log and are normalised only by scale.
REPRESENTATIONS = ("magnitude", "phase", "real")
_LOG_FLOOR = 1e-6  # below any real normalised magnitude; keeps log finite for blank patches


@dataclass(frozen=True)
class FeatureSpec:
    """How a frame becomes feature vectors; stored in every model bundle."""

    patch: int = 512  # square patch side in camera pixels
    bin_x: int = 4  # pixels summed along x before the FFT
    crop_y: float = 0.1  # kept |f_y| as a fraction of the sampling frequency (paper: 0.3)
    crop_x: float = 0.125  # kept f_x as a fraction of the sampling frequency (paper: 0.05)
    pool_y: int = 4  # frequency bins averaged along y
    pool_x: int = 4  # frequency bins averaged along x
    normalisation: str = "l2"  # "l2": unit norm; "mean": unit mean
    log: bool = True  # take the log after normalising (sample texture multiplies the spectrum)
    representation: str = "magnitude"  # the box's; "phase", "real": experiments only

    def __post_init__(self) -> None:
        for name in ("patch", "bin_x", "pool_y", "pool_x"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise FeatureError(f"feature spec: {name} must be a positive integer, "
                                   f"got {value!r}")
        if self.patch % self.bin_x:
            raise FeatureError(f"feature spec: patch {self.patch} is not a multiple of "
                               f"bin_x {self.bin_x}")
        if not 0 < self.crop_y <= 0.5:
            raise FeatureError(f"feature spec: crop_y must be in (0, 0.5], got {self.crop_y}")
        nyquist_after_bin = 0.5 / self.bin_x
        if not 0 < self.crop_x <= nyquist_after_bin:
            raise FeatureError(
                f"feature spec: crop_x {self.crop_x} must be in (0, {nyquist_after_bin:g}]: "
                f"binning {self.bin_x} pixels leaves no higher x frequency"
            )
        if self.normalisation not in _NORMALISATIONS:
            raise FeatureError(f"feature spec: normalisation must be one of {_NORMALISATIONS}, "
                               f"got {self.normalisation!r}")
        if self.representation not in REPRESENTATIONS:
            raise FeatureError(f"feature spec: representation must be one of "
                               f"{REPRESENTATIONS}, got {self.representation!r}")
        if self.log and self.representation != "magnitude":
            raise FeatureError(f"feature spec: the {self.representation} of the spectrum can be "
                               f"negative; it takes no log (log=False)")
        if self.rows_kept < 1 or self.cols_kept < 1:
            raise FeatureError(f"feature spec: the crop keeps no frequency bin after pooling "
                               f"({self})")

    @property
    def half_rows(self) -> int:
        """Frequency rows kept on each side of f_y = 0 (before pooling)."""
        half = round(self.crop_y * self.patch)
        return half - half % self.pool_y

    @property
    def rows_kept(self) -> int:
        return 2 * self.half_rows // self.pool_y

    @property
    def cols_kept(self) -> int:
        cols = round(self.crop_x * self.patch)
        return (cols - cols % self.pool_x) // self.pool_x

    @property
    def n_features(self) -> int:
        return self.rows_kept * self.cols_kept

    def grid(self, frame_shape: tuple[int, int]) -> tuple[int, int]:
        """(rows, columns) of patches a frame holds; the grid is centred on the frame."""
        rows, cols = frame_shape[0] // self.patch, frame_shape[1] // self.patch
        if rows < 1 or cols < 1:
            raise FeatureError(f"frame of {frame_shape[0]}x{frame_shape[1]} pixels is smaller "
                               f"than one {self.patch}x{self.patch} feature patch")
        return rows, cols

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.representation == "magnitude":  # the box's: records and stores stay as before
            del d["representation"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSpec:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise FeatureError(f"feature spec: unknown keys {sorted(unknown)}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise FeatureError(f"feature spec: {exc}") from exc


Transform = Callable[[], np.ndarray]
_plans: dict[tuple[int, ...], tuple[np.ndarray, Transform]] = {}
# One buffer per shape is shared, so a frame is featurised (and a parallax reading measured,
# controller/parallax_shift.py) under this lock (threads of one process; training parallelises
# with processes).
fft_lock = threading.Lock()


def rfft_plan(shape: tuple[int, int, int]) -> tuple[np.ndarray, Transform]:
    """An aligned input buffer and a reusable single-thread real FFT of it over its last two axes;
    the FFT's output array is reused by the next call. Use it under ``fft_lock``."""
    if shape not in _plans:
        if _HAVE_PYFFTW:
            buffer = pyfftw.empty_aligned(shape, dtype="float32")
            plan = pyfftw.builders.rfftn(buffer, axes=(1, 2), threads=1,
                                         planner_effort="FFTW_MEASURE", avoid_copy=True)
            _plans[shape] = (buffer, plan)
        else:  # pragma: no cover
            buffer = np.empty(shape, np.float32)
            _plans[shape] = (buffer, lambda: scipy.fft.rfftn(buffer, axes=(1, 2), workers=1))
    return _plans[shape]


_inverse_plans: dict[tuple[int, ...], tuple[np.ndarray, Transform]] = {}


def irfft_plan(shape: tuple[int, int, int]) -> tuple[np.ndarray, Transform]:
    """An aligned complex64 half-spectrum buffer and its reusable inverse real FFT to ``shape``,
    the inverse of ``rfft_plan`` (use it under ``fft_lock`` too)."""
    if shape not in _inverse_plans:
        half = (shape[0], shape[1], shape[2] // 2 + 1)
        if _HAVE_PYFFTW:
            buffer = pyfftw.empty_aligned(half, dtype="complex64")
            plan = pyfftw.builders.irfftn(buffer, s=shape[1:], axes=(1, 2), threads=1,
                                          planner_effort="FFTW_MEASURE", avoid_copy=True)
            _inverse_plans[shape] = (buffer, plan)
        else:  # pragma: no cover
            buffer = np.empty(half, np.complex64)
            _inverse_plans[shape] = (buffer, lambda: scipy.fft.irfftn(
                buffer, s=shape[1:], axes=(1, 2), workers=1))
    return _inverse_plans[shape]


def featurize(images: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Feature vectors of every patch of every frame: float32 (frames, patches, n_features)."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[np.newaxis]
    if images.ndim != 3:
        raise FeatureError(f"featurize: expected (rows, cols) or (frames, rows, cols), got shape "
                           f"{images.shape}")
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise FeatureError(f"featurize: images must be numbers, got dtype {images.dtype}")
    n_rows, n_cols = spec.grid(images.shape[1:])
    out = np.empty((images.shape[0], n_rows * n_cols, spec.n_features), np.float32)
    with fft_lock:
        for i, frame in enumerate(images):
            out[i] = _featurize_frame(frame, spec, n_rows, n_cols)
    return out


def _featurize_frame(frame: np.ndarray, spec: FeatureSpec, n_rows: int, n_cols: int) -> np.ndarray:
    p, b = spec.patch, spec.bin_x
    y0 = (frame.shape[0] - n_rows * p) // 2
    x0 = (frame.shape[1] - n_cols * p) // 2
    region = frame[y0:y0 + n_rows * p, x0:x0 + n_cols * p]
    # integer frames are binned exactly in int32 (faster than float32 and loses nothing)
    exact = np.issubdtype(frame.dtype, np.integer) and frame.dtype.itemsize <= 2
    binned = region[:, 0::b].astype(np.int32 if exact else np.float32)
    for offset in range(1, b):
        binned += region[:, offset::b]
    buffer, rfft = rfft_plan((n_rows * n_cols, p, p // b))
    np.copyto(buffer.reshape(n_rows, n_cols, p, p // b),
              binned.reshape(n_rows, p, n_cols, p // b).transpose(0, 2, 1, 3), casting="unsafe")
    spectrum = rfft()
    h, c = spec.half_rows, spec.cols_kept * spec.pool_x
    crop = np.concatenate((spectrum[:, -h:, :c], spectrum[:, :h, :c]), axis=1)
    magnitude = _represented(crop, spec.representation)
    magnitude[:, h, 0] = 0.0  # DC: the patch mean subtracted
    pooled = magnitude[:, 0::spec.pool_y]
    for offset in range(1, spec.pool_y):
        pooled = pooled + magnitude[:, offset::spec.pool_y]
    pooled_x = pooled[:, :, 0::spec.pool_x]
    for offset in range(1, spec.pool_x):
        pooled_x = pooled_x + pooled[:, :, offset::spec.pool_x]
    pooled_x *= np.float32(1.0 / (spec.pool_y * spec.pool_x))
    vectors = pooled_x.reshape(pooled_x.shape[0], -1)
    if spec.normalisation == "l2":
        scale = np.linalg.norm(vectors, axis=1, keepdims=True)
    elif spec.representation == "magnitude":
        scale = vectors.mean(axis=1, keepdims=True)
    else:  # a signed vector's mean may be near zero: scale by its mean absolute value
        scale = np.abs(vectors).mean(axis=1, keepdims=True)
    # a blank (constant) patch has no spectrum: leave it zero rather than divide by zero
    normalised = np.divide(vectors, scale, out=np.zeros_like(vectors), where=scale > 0)
    if spec.log:
        np.log(normalised + np.float32(_LOG_FLOOR), out=normalised)
    return normalised


def _represented(crop: np.ndarray, representation: str) -> np.ndarray:
    """The crop's magnitude (the box's input), or for experiments its phase or real part."""
    if representation == "magnitude":
        return np.abs(crop).astype(np.float32, copy=False)
    if representation == "phase":
        return np.angle(crop).astype(np.float32, copy=False)
    return np.array(crop.real, np.float32)


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean and std, measured on the training set and frozen with the model."""

    mean: np.ndarray  # float32 (n_features,)
    std: np.ndarray  # float32 (n_features,)

    @classmethod
    def fit(cls, features: np.ndarray) -> Standardizer:
        flat = np.asarray(features, np.float64).reshape(-1, features.shape[-1])
        return cls.from_moments(flat.mean(axis=0), flat.std(axis=0))

    @classmethod
    def from_moments(cls, mean: np.ndarray, std: np.ndarray) -> Standardizer:
        """From per-feature mean and std measured elsewhere (training streams them over a
        dataset larger than memory)."""
        std = np.array(std, np.float64)
        # a feature that never varies (the zeroed DC bin) must not blow up: divide by 1
        std[std < 1e-12] = 1.0
        return cls(np.asarray(mean).astype(np.float32), std.astype(np.float32))

    def apply(self, features: np.ndarray) -> np.ndarray:
        if features.shape[-1] != self.mean.size:
            raise FeatureError(f"standardizer: {features.shape[-1]} features given, "
                               f"{self.mean.size} expected")
        return ((features - self.mean) / self.std).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Standardizer:
        try:
            mean = np.asarray(d["mean"], np.float32)
            std = np.asarray(d["std"], np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureError(f"standardizer: malformed record: {exc}") from exc
        if mean.ndim != 1 or mean.shape != std.shape or not np.all(std > 0):
            raise FeatureError("standardizer: mean and std must be equal-length vectors, std > 0")
        return cls(mean, std)
