"""Optics facts shared by the simulator, the features' spec check and the model bundle record.

One place says what an objective, a camera and an LED array are, so the virtual microscope, the
training data and the controller cannot disagree about them. Conventions (docs/conventions.md):
lengths in µm (LED geometry in mm, as a datasheet gives it); an LED's illumination is recorded as
the NA vector ``(na_x, na_y)`` of the light's direction of travel at the sample, in image axes
(x along columns, y along rows of ``image[y, x]``), plus its brightness.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal, get_args

from controller.errors import FocuslockError

# The camera's colour filter array, named by its top-left 2x2 cell as the raw frame is delivered
# ("mono": no filter). A colour sensor's frame stays the raw mosaic: every pixel one filter.
ColourFilter = Literal["mono", "RGGB", "BGGR", "GRBG", "GBRG"]
COLOUR_FILTERS: tuple[str, ...] = get_args(ColourFilter)
MAX_CHROMATIC_UM_PER_UM = 1000.0  # 100 µm of focal shift per 0.1 µm of wavelength: no objective
MIN_COLOUR_SEPARATION_UM = 0.05  # two LEDs told apart by a colour sensor differ at least this much
MIN_NA = 0.01  # below any objective made (a 1x/0.04 is the faintest common one)


class OpticsError(FocuslockError, ValueError):
    """A physically impossible or inconsistent optical configuration."""


class UndersampledWarning(UserWarning):
    """The camera pixel at the sample is coarser than the coherent Nyquist limit."""


@dataclass(frozen=True)
class Optics:
    """Objective, light and camera: everything that sets how a sample maps onto pixels."""

    wavelength_um: float = 0.53
    na: float = 0.5
    immersion_index: float = 1.0
    magnification: float = 20.0
    camera_pixel_um: float = 6.5
    frame_shape: tuple[int, int] = (2048, 2048)  # (rows, columns) as the camera delivers them
    bit_depth: int = 16
    colour_filter: ColourFilter = "mono"
    # Longitudinal chromatic aberration: light of wavelength λ is in focus
    # chromatic_focus_um_per_um · (λ - wavelength_um) further along +z than the design wavelength.
    chromatic_focus_um_per_um: float = 0.0

    def __post_init__(self) -> None:
        for name in ("wavelength_um", "na", "immersion_index", "magnification", "camera_pixel_um"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise OpticsError(f"optics: {name} must be a positive number, got {value!r}")
        if self.na < MIN_NA:
            raise OpticsError(f"optics: NA {self.na:g} is below any objective's ({MIN_NA})")
        if self.na >= self.immersion_index:
            raise OpticsError(
                f"optics: NA {self.na} must be smaller than the immersion index "
                f"{self.immersion_index} (NA = n sin θ cannot reach n)"
            )
        rows, cols = self.frame_shape
        if rows <= 0 or cols <= 0:
            raise OpticsError(f"optics: frame_shape must be positive, got {self.frame_shape}")
        if not 8 <= self.bit_depth <= 16:
            raise OpticsError(f"optics: bit_depth must be 8..16, got {self.bit_depth}")
        if self.colour_filter not in COLOUR_FILTERS:
            raise OpticsError(f"optics: colour_filter must be one of {COLOUR_FILTERS}, "
                              f"got {self.colour_filter!r}")
        c = self.chromatic_focus_um_per_um
        if not (isinstance(c, int | float) and math.isfinite(c)
                and abs(c) <= MAX_CHROMATIC_UM_PER_UM):
            raise OpticsError(f"optics: chromatic_focus_um_per_um must be a number within "
                              f"±{MAX_CHROMATIC_UM_PER_UM:g}, got {c!r}")
        if self.pixel_um > self.nyquist_pixel_um:
            warnings.warn(
                f"optics: pixel at the sample {self.pixel_um:.3f} µm is coarser than the coherent "
                f"Nyquist limit λ/(2NA) = {self.nyquist_pixel_um:.3f} µm; fine detail will alias",
                UndersampledWarning,
                stacklevel=3,
            )

    @property
    def pixel_um(self) -> float:
        """Size of one camera pixel projected onto the sample."""
        return self.camera_pixel_um / self.magnification

    @property
    def nyquist_pixel_um(self) -> float:
        """Coarsest pixel that still samples the pupil's coherent passband (cutoff NA/λ)."""
        return self.wavelength_um / (2.0 * self.na)

    def focal_shift_um(self, wavelength_um: float | None) -> float:
        """How much further along +z light of this wavelength is in focus than light of the
        design wavelength (None: the design wavelength). The defocus that light sees is
        ``defocus_um + focal_shift_um(λ)`` (docs/conventions.md)."""
        if wavelength_um is None:
            return 0.0
        return self.chromatic_focus_um_per_um * (wavelength_um - self.wavelength_um)

    @property
    def depth_of_field_um(self) -> float:
        """Wave-optical depth of field n·λ/NA² (about 2 µm for the paper's 20x/0.5)."""
        return self.immersion_index * self.wavelength_um / self.na**2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["frame_shape"] = list(self.frame_shape)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Optics:
        d = dict(d)
        if "frame_shape" in d:
            d["frame_shape"] = tuple(d["frame_shape"])
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise OpticsError(f"optics: unknown keys {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class Led:
    """One lit LED: the NA vector of its light at the sample, its relative brightness and, for
    a colour LED, its centre wavelength (None: the optics' wavelength, a monochrome system)."""

    na_x: float
    na_y: float
    brightness: float = 1.0
    wavelength_um: float | None = None

    @property
    def na(self) -> float:
        return math.hypot(self.na_x, self.na_y)

    def to_list(self) -> list[float]:
        """``[na_x, na_y, brightness]``, with the wavelength as a fourth item for a colour LED."""
        out = [self.na_x, self.na_y, self.brightness]
        return out if self.wavelength_um is None else [*out, self.wavelength_um]

    @classmethod
    def from_list(cls, item: Any) -> Led:
        values = [float(v) for v in item]
        if len(values) not in (3, 4):
            raise ValueError(f"an LED is [na_x, na_y, brightness(, wavelength_um)], got {item!r}")
        return cls(*values)

    def same_colour(self, other: Led, tol_um: float = 0.01) -> bool:
        if self.wavelength_um is None or other.wavelength_um is None:
            return self.wavelength_um is other.wavelength_um
        return abs(self.wavelength_um - other.wavelength_um) <= tol_um


@dataclass(frozen=True)
class Pattern:
    """An illumination pattern: mutually incoherent LEDs lit together."""

    name: str
    leds: tuple[Led, ...]

    def __post_init__(self) -> None:
        if not self.leds:
            raise OpticsError(f"pattern {self.name!r}: no LED is lit")
        for led in self.leds:
            if led.na >= 1.0:
                raise OpticsError(f"pattern {self.name!r}: LED NA {led.na:.3f} must be < 1 (air)")
            if led.brightness < 0:
                raise OpticsError(f"pattern {self.name!r}: negative brightness {led.brightness}")
            w = led.wavelength_um
            if w is not None and not (math.isfinite(w) and 0.2 <= w <= 2.0):
                raise OpticsError(f"pattern {self.name!r}: LED wavelength {w} µm is not light "
                                  f"a microscope images with (0.2..2 µm)")

    @property
    def wavelengths(self) -> tuple[float | None, ...]:
        """The distinct LED colours of the pattern in order of first appearance (None: the
        optics' own wavelength)."""
        seen: list[float | None] = []
        for led in self.leds:
            if led.wavelength_um not in seen:
                seen.append(led.wavelength_um)
        return tuple(seen)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "leds": [led.to_list() for led in self.leds]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Pattern:
        try:
            leds = tuple(Led.from_list(item) for item in d["leds"])
            return cls(name=str(d["name"]), leds=leds)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, OpticsError):
                raise
            raise OpticsError(f"pattern: malformed record {dict(d)!r}: {exc}") from exc

    def is_close(self, other: Pattern, tol_na: float = 0.01) -> bool:
        """Same LEDs (order-free) within ``tol_na`` and of the same colours; brightness is
        ignored (exposure absorbs it)."""
        if len(self.leds) != len(other.leds):
            return False
        remaining = list(other.leds)
        for led in self.leds:
            match = next(
                (o for o in remaining
                 if math.hypot(o.na_x - led.na_x, o.na_y - led.na_y) <= tol_na
                 and o.same_colour(led)),
                None,
            )
            if match is None:
                return False
            remaining.remove(match)
        return True


@dataclass(frozen=True)
class LedArray:
    """LED positions in mm relative to the sample; the light travels from the LED to the sample.

    ``positions_mm[i] = (x, y, d)``: x along image columns, y along image rows, d > 0 the LED's
    distance below the sample plane. An LED at +x sends light towards -x, so its ``na_x`` < 0.
    """

    positions_mm: tuple[tuple[float, float, float], ...]
    medium_index: float = 1.0  # air between the LEDs and the sample

    def __post_init__(self) -> None:
        if not self.positions_mm:
            raise OpticsError("LED array: no LEDs")
        for x, y, d in self.positions_mm:
            if d <= 0:
                raise OpticsError(f"LED array: LED at ({x}, {y}, {d}) mm is not below the sample")

    @classmethod
    def planar_grid(cls, rows: int, cols: int, pitch_mm: float, distance_mm: float) -> LedArray:
        """A flat square grid centred on the optical axis (index = row * cols + col)."""
        if rows <= 0 or cols <= 0 or pitch_mm <= 0 or distance_mm <= 0:
            raise OpticsError("LED array: rows, cols, pitch and distance must be positive")
        positions = tuple(
            ((c - (cols - 1) / 2) * pitch_mm, (r - (rows - 1) / 2) * pitch_mm, distance_mm)
            for r in range(rows)
            for c in range(cols)
        )
        return cls(positions)

    @classmethod
    def dome(cls, positions_mm: Iterable[tuple[float, float, float]]) -> LedArray:
        """Any 3D list of LED positions (a quasi-dome, a ring, hand-placed LEDs)."""
        return cls(tuple((float(x), float(y), float(d)) for x, y, d in positions_mm))

    def __len__(self) -> int:
        return len(self.positions_mm)

    @cached_property
    def nas(self) -> tuple[tuple[float, float], ...]:
        """Every LED's NA vector, computed once: patterns and drivers look LEDs up by NA."""
        out = []
        for x, y, d in self.positions_mm:
            r = math.sqrt(x * x + y * y + d * d)
            out.append((-x / r * self.medium_index, -y / r * self.medium_index))
        return tuple(out)

    def na_of(self, index: int) -> tuple[float, float]:
        return self.nas[index]

    def led(self, index: int, brightness: float = 1.0, exposure_compensation: bool = False,
            wavelength_um: float | None = None) -> Led:
        """The LED as lit (in a colour if given); with compensation its brightness is divided by
        cos θ, like the paper's exposure scaling that makes every angle deliver the same light
        per sample area."""
        na_x, na_y = self.na_of(index)
        if exposure_compensation:
            cos_theta = math.sqrt(max(1.0 - (na_x**2 + na_y**2) / self.medium_index**2, 1e-6))
            brightness /= cos_theta
        return Led(na_x, na_y, brightness, wavelength_um)

    def nearest(self, na_x: float, na_y: float) -> int:
        """Index of the LED whose NA vector is closest to the one asked for."""
        return min(range(len(self)),
                   key=lambda i: math.hypot(self.nas[i][0] - na_x, self.nas[i][1] - na_y))

    def single(self, na_x: float, na_y: float, name: str = "autofocus") -> Pattern:
        """One off-axis LED, the one nearest the requested NA vector."""
        return Pattern(name, (self.led(self.nearest(na_x, na_y)),))

    def line(self, na_from: tuple[float, float], na_to: tuple[float, float], count: int,
             name: str = "autofocus-line") -> Pattern:
        """LEDs along a line in NA space (the paper's best-performing family of patterns)."""
        if count < 1:
            raise OpticsError("line pattern: count must be >= 1")
        picks: list[int] = []
        for k in range(count):
            t = k / max(count - 1, 1)
            index = self.nearest(na_from[0] + t * (na_to[0] - na_from[0]),
                                 na_from[1] + t * (na_to[1] - na_from[1]))
            if index not in picks:
                picks.append(index)
        return Pattern(name, tuple(self.led(i) for i in picks))

    def half_annulus(self, na_inner: float, na_outer: float, side: str = "bottom",
                     name: str = "dpc-bottom") -> Pattern:
        """Incoherent half annulus (DPC style) for ground truth: the LEDs with
        na_inner <= NA <= na_outer on one side. ``bottom`` keeps na_y < 0, ``top`` na_y > 0,
        ``left`` na_x < 0, ``right`` na_x > 0.
        """
        keep = {
            "bottom": lambda x, y: y < 0,
            "top": lambda x, y: y > 0,
            "left": lambda x, y: x < 0,
            "right": lambda x, y: x > 0,
        }
        if side not in keep:
            raise OpticsError(f"half annulus: unknown side {side!r}; use one of {sorted(keep)}")
        chosen = [i for i, na in enumerate(self.nas)
                  if na_inner <= math.hypot(*na) <= na_outer and keep[side](*na)]
        if not chosen:
            raise OpticsError(
                f"half annulus {na_inner}..{na_outer}: no LED of the array lies in it"
            )
        return Pattern(name, tuple(self.led(i, exposure_compensation=True) for i in chosen))


PARALLAX_PATTERN = "parallax"  # one-frame mode: both LEDs at once, in two colours
PARALLAX_FIRST = "parallax-first"  # two-frame mode: the first view's LED alone
PARALLAX_SECOND = "parallax-second"  # two-frame mode: the second view's LED alone


@dataclass(frozen=True)
class ParallaxViews:
    """Two views of the sample under two illumination angles, whose sideways shift against each
    other gives the signed defocus (controller/parallax.py).

    ``one_frame``: both LEDs are lit at once in two colours and a colour camera separates the
    views in one exposure; otherwise each view is its own frame (any camera). The views are
    always ordered: the shift is measured of ``second`` against ``first``.
    """

    first: Led
    second: Led
    one_frame: bool = False

    def __post_init__(self) -> None:
        a, b = self.first, self.second
        if math.hypot(a.na_x - b.na_x, a.na_y - b.na_y) < 0.05:
            raise OpticsError("parallax views: the two LEDs must light the sample from different "
                              "angles (NA vectors at least 0.05 apart)")
        if self.one_frame:
            if a.wavelength_um is None or b.wavelength_um is None:
                raise OpticsError("parallax views in one frame: both LEDs need a colour "
                                  "(wavelength_um), which the colour camera separates")
            if abs(a.wavelength_um - b.wavelength_um) < MIN_COLOUR_SEPARATION_UM:
                raise OpticsError(
                    f"parallax views in one frame: LED colours {a.wavelength_um} and "
                    f"{b.wavelength_um} µm are too close for a colour camera to separate "
                    f"(at least {MIN_COLOUR_SEPARATION_UM} µm apart)")

    @property
    def patterns(self) -> tuple[Pattern, ...]:
        """What one parallax reading lights, one pattern per frame, in capture order."""
        if self.one_frame:
            return (Pattern(PARALLAX_PATTERN, (self.first, self.second)),)
        return (Pattern(PARALLAX_FIRST, (self.first,)), Pattern(PARALLAX_SECOND, (self.second,)))

    def to_dict(self) -> dict[str, Any]:
        return {"first": self.first.to_list(), "second": self.second.to_list(),
                "one_frame": self.one_frame}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParallaxViews:
        try:
            return cls(Led.from_list(d["first"]), Led.from_list(d["second"]),
                       bool(d["one_frame"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, OpticsError):
                raise
            raise OpticsError(f"parallax views: malformed record {dict(d)!r}: {exc}") from exc


@dataclass(frozen=True)
class Preset:
    """A named, complete optical system: optics, LED array, the two channels' patterns and,
    where the hardware has them, the two parallax views."""

    name: str
    optics: Optics
    leds: LedArray
    autofocus: Pattern
    ground_truth: Pattern
    description: str = field(default="", compare=False)
    parallax: ParallaxViews | None = None

    def __post_init__(self) -> None:
        if (self.parallax is not None and self.parallax.one_frame
                and self.optics.colour_filter == "mono"):
            raise OpticsError(f"preset {self.name!r}: one-frame parallax needs a colour camera "
                              f"(optics.colour_filter), the optics have none")

    @property
    def patterns(self) -> tuple[Pattern, ...]:
        """Every pattern the preset names, without repeats."""
        out = [self.autofocus, self.ground_truth]
        if self.parallax is not None:
            out += [p for p in self.parallax.patterns if p.name not in (o.name for o in out)]
        return tuple(out)

    def pattern(self, name: str) -> Pattern:
        for pattern in self.patterns:
            if pattern.name == name:
                return pattern
        known = ", ".join(repr(p.name) for p in self.patterns)
        raise OpticsError(f"preset {self.name!r}: unknown pattern {name!r}; known: {known}")


def _paper() -> Preset:
    # 20x/0.5 dry, 6.5 µm camera pixels (0.325 µm at the sample), green light. A 15x15 array of
    # 6 mm pitch 60 mm below the sample gives an NA step of ~0.1; the autofocus LED tilts along y
    # like the original, whose spectrum crop was wide along y.
    leds = LedArray.planar_grid(15, 15, pitch_mm=6.0, distance_mm=60.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndersampledWarning)
        optics = Optics()
    return Preset(
        name="paper",
        optics=optics,
        leds=leds,
        autofocus=leds.single(0.0, 0.35),
        ground_truth=leds.half_annulus(0.4, 0.5, side="bottom"),
        description="Pinkard et al. 2019: Zeiss 20x/0.5, 2048² sCMOS, LED array a few cm below",
    )


def _pi_hq() -> Preset:
    # The low-cost box: Raspberry Pi HQ camera (IMX477, 2x2-binned 2028x1520 mode, 3.1 µm pixels)
    # behind a retrofitted 10x/0.25 objective, and an 8x8 WS2812 matrix 40 mm below the sample.
    leds = LedArray.planar_grid(8, 8, pitch_mm=5.0, distance_mm=40.0)
    optics = Optics(wavelength_um=0.53, na=0.25, magnification=10.0, camera_pixel_um=3.1,
                    frame_shape=(1520, 2028), bit_depth=12)
    return Preset(
        name="pi-hq",
        optics=optics,
        leds=leds,
        autofocus=leds.single(0.0, 0.18),
        # A darkfield half annulus (the LEDs just beyond the objective's NA: 0.26, 0.30, 0.34).
        # Measured on 512² stacks of ±30 µm (sparse cells, dense cells, tissue; 5 seeds each):
        # the sharpest plane lies 0.2–3.3 µm beyond focus (mean +1.5 µm, a sixth of the 8.4 µm
        # depth of field), with no failure. Brightfield half annuli put it up to 25 µm off on
        # sparse phase objects, which gain contrast with defocus under partially coherent light:
        # NA 0.05–0.25 in 7 of 15 stacks, the rim alone (0.19–0.26) in 6 of 15.
        ground_truth=leds.half_annulus(0.25, 0.4, side="bottom"),
        description="Low-cost retrofit: Pi HQ camera, 10x/0.25 objective, 8x8 WS2812 matrix",
    )


def _paper_pair() -> Preset:
    # The paper's microscope with a second LED mirrored across the axis: two monochrome frames,
    # one under the autofocus LED (the network's frame too) and one under its mirror, shift
    # against each other by about 0.8 µm per µm of defocus (2.5 pixels).
    paper = _paper()
    first = paper.autofocus.leds[0]
    second = paper.leds.led(paper.leds.nearest(first.na_x, -first.na_y))
    return dataclasses.replace(
        paper, name="paper-pair", parallax=ParallaxViews(first, second, one_frame=False),
        description="The paper's microscope with a mirrored second LED: parallax from two frames")


# WS2812 emission peaks (µm): what a colour retrofit lights its two views with.
WS2812_RED_UM = 0.625
WS2812_GREEN_UM = 0.525
WS2812_BLUE_UM = 0.465


def _pi_hq_colour() -> Preset:
    # The low-cost box as a one-shot colour retrofit: the HQ camera's raw Bayer mosaic, a red LED
    # on one side of the axis and a blue one mirrored on the other, lit together, so one exposure
    # holds both views. A plain achromat keeps red and blue in focus about 1.6 µm apart. The two
    # LEDs are those of the matrix's middle rows (NA ±0.06 along y, a third of the objective's
    # NA): measured on 512² frames of four sample kinds (calibrated on another seed), the
    # autofocus LED's rows (NA ±0.18, three quarters of it) read 6 of 228 signs beyond ±2 µm
    # wrong and sparse cells with 6.7 µm RMSE within ±10 µm; the middle rows none, and 2.9 µm.
    hq = _pi_hq()
    optics = dataclasses.replace(hq.optics, wavelength_um=WS2812_GREEN_UM, colour_filter="RGGB",
                                 chromatic_focus_um_per_um=10.0)
    leds = hq.leds
    red_index = leds.nearest(0.0, 0.06)
    red_na = leds.na_of(red_index)
    red = leds.led(red_index, wavelength_um=WS2812_RED_UM)
    blue = leds.led(leds.nearest(red_na[0], -red_na[1]), wavelength_um=WS2812_BLUE_UM)
    views = ParallaxViews(red, blue, one_frame=True)
    ground_truth = Pattern(hq.ground_truth.name, tuple(
        dataclasses.replace(led, wavelength_um=WS2812_GREEN_UM) for led in hq.ground_truth.leds))
    return Preset(
        name="pi-hq-colour", optics=optics, leds=leds, autofocus=views.patterns[0],
        ground_truth=ground_truth, parallax=views,
        description="Low-cost colour retrofit: Pi HQ raw Bayer frames, a red and a blue WS2812 "
                    "LED lit together (parallax in one frame)")


PRESETS: dict[str, Preset] = {
    p.name: p for p in (_paper(), _pi_hq(), _paper_pair(), _pi_hq_colour())}


def preset(name: str) -> Preset:
    """The named optical system; the error lists the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise OpticsError(f"unknown optics preset {name!r}; known: {sorted(PRESETS)}") from None
