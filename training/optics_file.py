"""A user's microscope as `focuslock design-illumination` reads it: an optics file (TOML).

    [optics]
    na = 0.25                  # the objective's
    magnification = 10.0
    camera_pixel_um = 3.1      # the camera's pixel (at the sensor)
    wavelength_um = 0.53       # the LEDs' light
    immersion_index = 1.0      # optional: 1.0 (dry) unless given

    [leds]                     # either an LED array below the sample ...
    pitch_mm = 5.0
    rows = 8
    cols = 8
    distance_mm = 40.0
    # ... or the NA vectors (na_x, na_y) where LEDs could go, for a retrofit:
    # candidates = [[0.0, 0.05], [0.0, 0.1], [0.0, 0.15], [0.0, 0.2]]

Every error names the file and the field. The simulated microscope built from it
(``design_system``) lights the autofocus channel with the candidates and finds each stack's
focus, as the presets do, under a half annulus of LEDs placed for the objective's NA (not the
user's: the ground truth is the simulator's, not part of the design).
"""

from __future__ import annotations

import math
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.alignment import led_position_mm
from controller.errors import FocuslockError
from controller.optics import (
    Led,
    LedArray,
    Optics,
    OpticsError,
    Pattern,
    Preset,
    UndersampledWarning,
)

OPTICS_FIELDS = ("na", "magnification", "camera_pixel_um", "wavelength_um")
ARRAY_FIELDS = {"pitch_mm": float, "rows": int, "cols": int, "distance_mm": float}
MAX_ARRAY_LEDS = 10_000
# The ground truth's half annulus, as the presets place theirs: brightfield (0.8-1.0 of the NA,
# the paper's) from NA 0.3 up, darkfield (1.0-1.6, the Pi HQ preset's, measured robust on
# sparse phase samples) below; LEDS_IN_ANNULUS LEDs on its middle radius.
DARKFIELD_TRUTH_BELOW_NA = 0.3
LEDS_IN_ANNULUS = 6
DISTANCE_MM = 50.0  # where candidates given by NA are put below the sample (any will do)


class OpticsFileError(FocuslockError, ValueError):
    """An optics file that cannot describe a microscope; the message names the field."""


@dataclass(frozen=True)
class DesignOptics:
    """The user's optics and where LEDs can be (NA vectors of their light at the sample)."""

    name: str  # the file's stem
    optics: Optics
    candidates: tuple[tuple[float, float], ...]
    source: str  # "array" or "candidates"
    notes: tuple[str, ...] = ()  # what the reader should know (an undersampled camera)


def read_optics_file(path: Path) -> DesignOptics:
    """The optics file at ``path``, checked; OpticsFileError naming the field otherwise."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise OpticsFileError(f"optics file {path}: cannot read it: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise OpticsFileError(f"optics file {path}: not valid TOML: {exc}") from exc
    where = f"optics file {path}"
    optics_table = _table(data, "optics", where)
    unknown = sorted(set(optics_table) - {*OPTICS_FIELDS, "immersion_index"})
    if unknown:
        raise OpticsFileError(f"{where}: [optics] has unknown field(s) {unknown}; known: "
                              f"{[*OPTICS_FIELDS, 'immersion_index']}")
    values = {name: _number(optics_table, name, "optics", where) for name in OPTICS_FIELDS}
    values["immersion_index"] = _number(optics_table, "immersion_index", "optics", where,
                                        default=1.0)
    if values["na"] >= values["immersion_index"]:
        raise OpticsFileError(f"{where}: [optics] na {values['na']:g} is beyond physical: an "
                              f"NA must be below the immersion index "
                              f"{values['immersion_index']:g} (NA = n sin θ)")
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UndersampledWarning)
        try:
            optics = Optics(wavelength_um=values["wavelength_um"], na=values["na"],
                            immersion_index=values["immersion_index"],
                            magnification=values["magnification"],
                            camera_pixel_um=values["camera_pixel_um"])
        except OpticsError as exc:
            raise OpticsFileError(f"{where}: [optics]: {exc}") from exc
    notes += [str(w.message) for w in caught if issubclass(w.category, UndersampledWarning)]
    candidates, source = _candidates(_table(data, "leds", where), where)
    return DesignOptics(Path(path).stem, optics, candidates, source, tuple(notes))


def _table(data: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    table = data.get(name)
    if table is None:
        raise OpticsFileError(f"{where}: the [{name}] table is missing")
    if not isinstance(table, dict):
        raise OpticsFileError(f"{where}: {name} must be a table ([{name}]), got "
                              f"{type(table).__name__}")
    return table


def _number(table: Mapping[str, Any], name: str, section: str, where: str,
            default: float | None = None) -> float:
    """A positive finite number (an int is taken too)."""
    if name not in table:
        if default is not None:
            return default
        raise OpticsFileError(f"{where}: [{section}] {name} is missing")
    value = table[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OpticsFileError(f"{where}: [{section}] {name} must be a number, got "
                              f"{value!r} ({type(value).__name__})")
    if not (math.isfinite(value) and value > 0):
        raise OpticsFileError(f"{where}: [{section}] {name} must be a positive number, got "
                              f"{value!r}")
    return float(value)


def _candidates(leds: Mapping[str, Any], where: str
                ) -> tuple[tuple[tuple[float, float], ...], str]:
    """The NA vectors LEDs can have: an array's every LED, or the listed candidates."""
    given = set(leds)
    if "candidates" in given:
        if given & set(ARRAY_FIELDS):
            raise OpticsFileError(f"{where}: [leds] gives both candidates and an array's "
                                  f"{sorted(given & set(ARRAY_FIELDS))}; give one of them")
        items = leds["candidates"]
        if not isinstance(items, list) or not items:
            raise OpticsFileError(f"{where}: [leds] candidates must be a non-empty list of "
                                  f"[na_x, na_y] pairs, got {items!r}")
        return tuple(_na_vector(item, f"{where}: [leds] candidates[{i}]")
                     for i, item in enumerate(items)), "candidates"
    unknown = sorted(given - set(ARRAY_FIELDS))
    if unknown:
        raise OpticsFileError(f"{where}: [leds] has unknown field(s) {unknown}; give an "
                              f"array's {list(ARRAY_FIELDS)} or candidates")
    array = {}
    for name, kind in ARRAY_FIELDS.items():
        value = _number(leds, name, "leds", where)
        if kind is int and (not isinstance(leds[name], int) or value > MAX_ARRAY_LEDS):
            raise OpticsFileError(f"{where}: [leds] {name} must be a whole number of LEDs up "
                                  f"to {MAX_ARRAY_LEDS}, got {leds[name]!r}")
        array[name] = value
    grid = LedArray.planar_grid(int(array["rows"]), int(array["cols"]), array["pitch_mm"],
                                array["distance_mm"])
    return grid.nas, "array"


def _na_vector(item: Any, where: str) -> tuple[float, float]:
    if (not isinstance(item, list) or len(item) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in item)):
        raise OpticsFileError(f"{where} must be a pair of numbers [na_x, na_y], got {item!r}")
    na_x, na_y = float(item[0]), float(item[1])
    if not (math.isfinite(na_x) and math.isfinite(na_y)) or math.hypot(na_x, na_y) >= 1.0:
        raise OpticsFileError(f"{where}: NA {math.hypot(na_x, na_y):g} is beyond physical: "
                              f"light from an LED in air has an NA below 1")
    return na_x, na_y


def design_system(design: DesignOptics) -> Preset:
    """The simulated microscope: the user's optics and LEDs (the autofocus channel lit by the
    candidate nearest 0.7 of the NA along y, until an experiment's arm lights another) and a
    half annulus of LEDs for the ground truth (module docstring)."""
    na = design.optics.na
    inner, outer = (0.8 * na, na) if na >= DARKFIELD_TRUTH_BELOW_NA else (na, 1.6 * na)
    radius = min((inner + outer) / 2, 0.95 * design.optics.immersion_index)
    angles = [math.pi * (k + 0.5) / LEDS_IN_ANNULUS for k in range(LEDS_IN_ANNULUS)]
    truth = Pattern("dpc-bottom", tuple(
        Led(radius * math.cos(a), -radius * math.sin(a),
            1.0 / math.sqrt(1.0 - radius**2 / design.optics.immersion_index**2))
        for a in angles))
    first = min(design.candidates, key=lambda c: math.hypot(c[0], c[1] - 0.7 * na))
    leds = LedArray.dome((*led_position_mm(c, DISTANCE_MM), DISTANCE_MM)
                         for c in design.candidates)
    return Preset(name=f"design:{design.name}", optics=design.optics, leds=leds,
                  autofocus=Pattern("autofocus", (Led(*first),)), ground_truth=truth,
                  description=f"from the optics file {design.name}")
