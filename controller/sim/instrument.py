"""The instrument a stack is taken on: how one real microscope differs from its preset's nominal
optics, and the seeded draw of those differences that gives training data the variety of many
microscopes.

An ``Instrument`` holds what a preset leaves ideal (every default is the ideal, and the ideal
instrument renders bit for bit what the simulator rendered before instruments existed):

- **LEDs**: the array's position error, a common shift of every LED's NA vector
  (``led_shift_na``: a 1.2 mm misplacement 60 mm below the sample is 0.02 NA); the drive's
  brightness (``led_brightness``, which scales the image: 1 is the nominal brightfield) and the
  LED-to-LED scatter of brightness (``led_scatter``, rms; each LED's factor is fixed by its
  nominal position and ``led_seed``, so it is the same in every pattern that lights it);
- **sample tilt** (``tilt_deg``: the slide's surface rises by tan θx per µm along +x and tan θy
  along +y, towards the objective, about the field's centre; ``tilted``);
- **aberrations** of the objective, a phase over its pupil (``pupil_phase``): Zernike terms in
  the fringe form, each 1 at the pupil's edge along its axis, so a coefficient is the term's
  peak wavefront error in waves at the design wavelength (``defocus_waves`` 2ρ²−1,
  ``spherical_waves`` 6ρ⁴−6ρ²+1, ``astigmatism_waves`` (0°, 45°) ρ²cos 2φ and ρ²sin 2φ,
  ``coma_waves`` (x, y) (3ρ³−2ρ)cos φ and sin φ; φ from +x towards +y). A defocus term c moves
  the plane of best focus by +4·c·n·λ/NA² µm in z (paraxially); the others are balanced against
  defocus and tilt, as Zernike terms are;
- **camera**: the sensor (``camera``: ``native``, the one the render would use otherwise, or a
  name in ``CAMERA_PRESETS``), its exposure and read noise relative to that sensor's, and the
  seed of its fixed pattern (``sensor_seed``, None: the sensor's own).

``InstrumentVariation`` holds the ranges and ``draw(seed)`` draws an instrument from them; both
``Instrument.to_dict`` and the variation's fields are plain JSON for a stack's metadata.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.optics import Led, Pattern
from controller.sim.camera import CAMERA_PRESETS, CameraModel
from controller.sim.errors import SimError
from controller.sim.samples import Sample

NATIVE_CAMERA = "native"
INSTRUMENT_STREAM = 0x696E7374  # the instrument's rng stream beside each sample kind's
MAX_LED_SHIFT_NA = 0.2
MAX_TILT_DEG = 10.0
MAX_ABERRATION_WAVES = 5.0  # beyond this the pupil's phase is no longer sampled by its box


@dataclass(frozen=True)
class Instrument:
    """One microscope's departures from its preset (see the module's docstring)."""

    led_shift_na: tuple[float, float] = (0.0, 0.0)
    led_brightness: float = 1.0
    led_scatter: float = 0.0
    led_seed: int = 0
    tilt_deg: tuple[float, float] = (0.0, 0.0)
    defocus_waves: float = 0.0
    spherical_waves: float = 0.0
    astigmatism_waves: tuple[float, float] = (0.0, 0.0)
    coma_waves: tuple[float, float] = (0.0, 0.0)
    camera: str = NATIVE_CAMERA
    exposure_scale: float = 1.0
    read_noise_scale: float = 1.0
    sensor_seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("led_shift_na", "tilt_deg", "astigmatism_waves", "coma_waves"):
            value = getattr(self, name)
            if not (isinstance(value, tuple | list) and len(value) == 2):
                raise SimError(f"instrument: {name} must be a pair of numbers, got {value!r}")
            object.__setattr__(self, name, (float(value[0]), float(value[1])))
        _within("led_shift_na", math.hypot(*self.led_shift_na), MAX_LED_SHIFT_NA)
        _within("tilt_deg", math.hypot(*self.tilt_deg), MAX_TILT_DEG)
        for name in ("defocus_waves", "spherical_waves"):
            _within(name, abs(getattr(self, name)), MAX_ABERRATION_WAVES)
        for name in ("astigmatism_waves", "coma_waves"):
            _within(name, math.hypot(*getattr(self, name)), MAX_ABERRATION_WAVES)
        for name in ("led_brightness", "exposure_scale", "read_noise_scale"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise SimError(f"instrument: {name} must be a positive number, got "
                               f"{getattr(self, name)!r}")
        _within("led_scatter", self.led_scatter, 1.0)
        if self.camera != NATIVE_CAMERA and self.camera not in CAMERA_PRESETS:
            raise SimError(f"instrument: unknown camera {self.camera!r}; known: "
                           f"{[NATIVE_CAMERA, *CAMERA_PRESETS]}")
        if self.led_seed < 0 or (self.sensor_seed is not None and self.sensor_seed < 0):
            raise SimError("instrument: led_seed and sensor_seed must be >= 0")

    # -- LEDs ---------------------------------------------------------------------------------

    def lit(self, pattern: Pattern) -> Pattern:
        """The LEDs as this instrument lights the pattern: moved by the array's position error,
        at its brightness (the nominal pattern itself when both are ideal)."""
        if self.led_shift_na == (0.0, 0.0) and self.led_brightness == 1.0 \
                and self.led_scatter == 0.0:
            return pattern
        dx, dy = self.led_shift_na
        return Pattern(pattern.name, tuple(
            Led(led.na_x + dx, led.na_y + dy, led.brightness * self.led_factor(led),
                led.wavelength_um) for led in pattern.leds))

    def led_factor(self, led: Led) -> float:
        """This LED's brightness relative to nominal: the drive's level times its own scatter,
        fixed by where the LED sits (its nominal NA vector) and ``led_seed``."""
        if self.led_scatter == 0.0:
            return self.led_brightness
        where = [round(led.na_x * 1e4) + 20_000, round(led.na_y * 1e4) + 20_000]
        own = 1.0 + self.led_scatter * np.random.default_rng([self.led_seed, *where]).normal()
        return self.led_brightness * max(0.0, own)

    # -- objective ----------------------------------------------------------------------------

    @property
    def aberrated(self) -> bool:
        return (self.defocus_waves, self.spherical_waves) != (0.0, 0.0) \
            or self.astigmatism_waves != (0.0, 0.0) or self.coma_waves != (0.0, 0.0)

    def pupil_phase(self, ky: np.ndarray, kx: np.ndarray, cutoff: float,
                    design_over_wavelength: float) -> np.ndarray | None:
        """complex64 exp(2πi·W·λ₀/λ) at spatial frequencies (ky, kx) (cycles/µm, broadcast),
        ``cutoff`` = NA/λ the pupil's edge, W the wavefront error in waves of the design
        wavelength λ₀ (a fixed error in µm is fewer waves of longer light); None when there is
        none."""
        if not self.aberrated:
            return None
        rho = np.hypot(ky, kx) / cutoff
        phi = np.arctan2(ky, kx)
        r2 = rho**2
        cx, cy = self.coma_waves
        a0, a45 = self.astigmatism_waves
        waves = (self.defocus_waves * (2 * r2 - 1) + self.spherical_waves * (6 * r2**2 - 6 * r2 + 1)
                 + r2 * (a0 * np.cos(2 * phi) + a45 * np.sin(2 * phi))
                 + (3 * rho**3 - 2 * rho) * (cx * np.cos(phi) + cy * np.sin(phi)))
        return np.asarray(np.exp(2j * np.pi * design_over_wavelength * waves), dtype=np.complex64)

    # -- camera -------------------------------------------------------------------------------

    def camera_model(self, base: CameraModel) -> CameraModel:
        """The sensor this instrument exposes with: ``base`` (the render's own) or the named
        preset, at its exposure and read noise (``base`` itself when all are ideal)."""
        if (self.camera, self.exposure_scale, self.read_noise_scale, self.sensor_seed) == \
                (NATIVE_CAMERA, 1.0, 1.0, None):
            return base
        sensor = base if self.camera == NATIVE_CAMERA else CAMERA_PRESETS[self.camera]
        return dataclasses.replace(
            sensor, exposure_s=sensor.exposure_s * self.exposure_scale,
            read_noise_e=sensor.read_noise_e * self.read_noise_scale,
            sensor_seed=sensor.sensor_seed if self.sensor_seed is None else self.sensor_seed)

    # -- records ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Instrument:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(record) - known
        if unknown:
            raise SimError(f"instrument: unknown fields {sorted(unknown)}; known: {sorted(known)}")
        fields: dict[str, Any] = {name: tuple(value) if isinstance(value, list) else value
                                  for name, value in record.items()}
        try:
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            raise SimError(f"instrument: malformed record {record!r}: {exc}") from exc


def _plain(record: Instrument | InstrumentVariation) -> dict[str, Any]:
    """A record's fields as plain JSON (pairs and tuples as lists)."""
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(record).items()}


def _within(name: str, value: float, limit: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= limit):
        raise SimError(f"instrument: {name} must be within {limit:g} (in size), got {value!r}")


@dataclass(frozen=True)
class InstrumentVariation:
    """Ranges an instrument is drawn from, one draw per stack (defaults: the issue's ranges).
    Magnitudes of pairs are drawn uniformly with a uniform direction; the exposure
    log-uniformly; the camera uniformly among ``cameras``."""

    led_shift_na: float = 0.02  # each axis uniform in ±this
    led_brightness: tuple[float, float] = (0.8, 1.2)
    led_scatter: float = 0.1  # the instrument's rms scatter, uniform in [0, this]
    tilt_deg: float = 0.5
    # Peak-to-valley 0.5 waves for astigmatism and coma (2c), 0.375 for spherical (1.5c): at
    # c = 0.5 each the sharpest incoherent plane is no longer one plane (docs/families.md).
    spherical_waves: float = 0.25  # uniform in ±this
    astigmatism_waves: float = 0.25
    coma_waves: float = 0.25
    cameras: tuple[str, ...] = (NATIVE_CAMERA,)
    exposure_scale: tuple[float, float] = (0.3, 1.2)
    read_noise_scale: tuple[float, float] = (1.0, 2.0)
    new_sensor: bool = True  # each instrument has its own sensor's fixed pattern

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        for name in ("led_brightness", "exposure_scale", "read_noise_scale"):
            low, high = getattr(self, name)
            if not (0 < low <= high and math.isfinite(high)):
                raise SimError(f"instrument variation: {name} must be 0 < low <= high, got "
                               f"{getattr(self, name)!r}")
            object.__setattr__(self, name, (float(low), float(high)))
        if not self.cameras:
            raise SimError("instrument variation: name at least one camera")
        Instrument(led_shift_na=(self.led_shift_na, self.led_shift_na),
                   led_scatter=self.led_scatter, tilt_deg=(self.tilt_deg, 0.0),
                   spherical_waves=self.spherical_waves,
                   astigmatism_waves=(self.astigmatism_waves, 0.0),
                   coma_waves=(self.coma_waves, 0.0))  # the extremes must be an instrument
        for camera in self.cameras:
            Instrument(camera=camera)

    def draw(self, seed: int | np.random.Generator) -> Instrument:
        """An instrument from these ranges: reproducible from ``seed`` (its own rng stream, so
        the same seed also drawing a sample is independent of it). Every value is drawn in the
        same order whatever the ranges, so narrowing one range leaves the others' draws."""
        rng = seed if isinstance(seed, np.random.Generator) else \
            np.random.default_rng([int(seed), INSTRUMENT_STREAM])
        shift = rng.uniform(-1.0, 1.0, 2) * self.led_shift_na
        brightness = rng.uniform(*self.led_brightness)
        scatter = rng.uniform(0.0, 1.0) * self.led_scatter
        led_seed = int(rng.integers(2**31))
        tilt = _polar(rng, self.tilt_deg)
        spherical = rng.uniform(-1.0, 1.0) * self.spherical_waves
        astigmatism = _polar(rng, self.astigmatism_waves)
        coma = _polar(rng, self.coma_waves)
        camera = self.cameras[int(rng.integers(len(self.cameras)))]
        low, high = self.exposure_scale
        exposure = math.exp(rng.uniform(math.log(low), math.log(high)))
        read_noise = rng.uniform(*self.read_noise_scale)
        sensor_seed = int(rng.integers(2**31))
        return Instrument(
            led_shift_na=(float(shift[0]), float(shift[1])), led_brightness=float(brightness),
            led_scatter=float(scatter), led_seed=led_seed if scatter > 0 else 0,
            tilt_deg=tilt, spherical_waves=float(spherical), astigmatism_waves=astigmatism,
            coma_waves=coma, camera=camera, exposure_scale=exposure,
            read_noise_scale=float(read_noise),
            sensor_seed=sensor_seed if self.new_sensor else None)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


IDEAL = InstrumentVariation(led_shift_na=0.0, led_brightness=(1.0, 1.0), led_scatter=0.0,
                            tilt_deg=0.0, spherical_waves=0.0, astigmatism_waves=0.0,
                            coma_waves=0.0, exposure_scale=(1.0, 1.0),
                            read_noise_scale=(1.0, 1.0), new_sensor=False)
"""The variation that always draws the ideal instrument, ``Instrument()``."""


def _polar(rng: np.random.Generator, limit: float) -> tuple[float, float]:
    """A pair of magnitude uniform in [0, limit] and uniform direction (for astigmatism, whose
    pair is (cos 2θ, sin 2θ), an axis θ uniform over 180°)."""
    magnitude = rng.uniform(0.0, 1.0) * limit
    angle = rng.uniform(0.0, 2.0 * math.pi)
    return (magnitude * math.cos(angle), magnitude * math.sin(angle)) if magnitude else (0.0, 0.0)


def tilted(sample: Sample, tilt_deg: tuple[float, float], step_um: float) -> Sample:
    """The sample on a tilted slide: each point raised by tan θx·(x − x₀) + tan θy·(y − y₀)
    along the light, (x₀, y₀) the field's centre. A thin sample becomes a volume cut in
    ``step_um`` slices (each point in the slice of its height); a thick one has each column
    moved up or down by whole slices of its own. The field stays periodic, so the height jumps
    back at the field's edges. The sample itself when the tilt moves nothing by a slice."""
    if tilt_deg == (0.0, 0.0):
        return sample
    rows, cols = sample.shape
    dz = sample.slice_um if sample.slices > 1 else step_um
    y = (np.arange(rows) + 0.5 - rows / 2) * sample.pixel_um
    x = (np.arange(cols) + 0.5 - cols / 2) * sample.pixel_um
    height = (math.tan(math.radians(tilt_deg[0])) * x[None, :]
              + math.tan(math.radians(tilt_deg[1])) * y[:, None])
    steps = np.rint(height / dz).astype(np.int64)
    steps -= steps.min()
    span = int(steps.max())
    if span == 0:
        return sample
    path = np.zeros((sample.slices + span, rows, cols), dtype=np.complex64)
    rr, cc = np.indices((rows, cols))
    for j, layer in enumerate(sample.path_um):
        path[j + steps, rr, cc] = layer
    return dataclasses.replace(sample, path_um=path, slice_um=dz)
