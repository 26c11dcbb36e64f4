"""``focuslock sim``: render simulated focal stacks and draw them as PNG montages."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.commands.arguments import bounded_float, bounded_int, finite_float
from controller.optics import MIN_NA

if TYPE_CHECKING:
    from controller.sim.instrument import Instrument

SEED = bounded_int(0, 2**63 - 1)
MAX_LED_RADIUS_NA = 0.1  # a real LED die spans about 0.005 NA seen from the sample
MAX_MONTAGE_PLANES = 100
MIN_TILE_PX, MAX_TILE_PX = 16, 1024
MIN_FRAME_PX = 8
MAX_FAMILY_PX = 1024  # a sheet of every family at 1024² already takes minutes
MAX_SHEET_DEFOCI = 11
# What microscopes have; beyond these the simulation overflows (a 1e-283 µm wavelength) or draws
# a field of metres (a 1e-5 magnification), which takes its sample generator days.
OPTICS_RANGES = {"na": (MIN_NA, 1.7), "immersion-index": (1.0, 2.5), "wavelength-um": (0.2, 2.0),
                 "magnification": (1.0, 200.0), "camera-pixel-um": (0.5, 30.0)}
SAMPLE_PIXEL_UM = (0.01, 2.0)  # the camera pixel seen at the sample


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sim", help="the virtual microscope: simulated focal stacks and montages",
        description="Render focal stacks on the virtual microscope (docs/simulator.md).")
    commands = parser.add_subparsers(dest="sim_command", metavar="SIMCOMMAND", required=True)

    stack = commands.add_parser(
        "stack", help="render a focal stack to an OME-TIFF file",
        description="Render a seeded sample at a list of focus positions under illumination "
                    "patterns; the true focal plane is recorded (docs/stack-format.md).")
    stack.add_argument("out", metavar="OUT.ome.tif", help="stack file to write")
    stack.add_argument("--sample", default="sparse-cells",
                       help="sample family (focuslock sim families lists them; "
                            "docs/families.md) (default: %(default)s)")
    stack.add_argument("--seed", type=SEED, default=1, help="sample seed (default: %(default)s)")
    stack.add_argument("--noise-seed", type=SEED, default=None,
                       help="camera-noise seed (default: the sample seed)")
    stack.add_argument("--preset", default="paper", help="optical system (default: %(default)s)")
    stack.add_argument("--z-range", nargs=2, type=finite_float, default=(-30.0, 30.0),
                       metavar=("FROM", "TO"), help="focus positions in µm (default: -30 30)")
    stack.add_argument("--z-step", type=finite_float, default=1.0,
                       help="µm (default: %(default)s)")
    stack.add_argument("--focus-z", type=finite_float, default=0.0,
                       help="drive position of the true focal plane, µm (default: %(default)s)")
    stack.add_argument("--size", nargs="+", type=int, default=[1024], metavar="PX",
                       help="frame size: N (square) or ROWS COLS (default: 1024)")
    stack.add_argument("--patterns", default=None,
                       help="comma-separated pattern names of the preset (default: every "
                            "pattern it names: autofocus, ground truth and any parallax views)")
    stack.add_argument("--oversample", type=bounded_int(1), default=1,
                       help="simulate on a grid this many times finer than the camera pixel, "
                            "for sample detail beyond the camera's Nyquist frequency "
                            "(default: %(default)s)")
    stack.add_argument("--bandwidth-nm", type=finite_float, default=0.0,
                       help="LED spectral FWHM, sampled at 3 wavelengths, below half the "
                            "wavelength (default: 0, one)")
    stack.add_argument("--led-radius-na", type=bounded_float(0.0, MAX_LED_RADIUS_NA),
                       default=0.0, help=f"angular radius of the LED die in NA, up to "
                                         f"{MAX_LED_RADIUS_NA} (default: 0, a point)")
    stack.add_argument("--image", default=None, help="picture for --sample image")
    stack.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                       help="a sample parameter (JSON value), e.g. density_per_mm2=800; "
                            "repeatable")
    for name, what in (("na", "objective NA"), ("immersion-index", "immersion index"),
                       ("wavelength-um", "wavelength (µm)"), ("magnification", "magnification"),
                       ("camera-pixel-um", "camera pixel (µm, on the sensor)")):
        low, high = OPTICS_RANGES[name]
        stack.add_argument(f"--{name}", type=bounded_float(low, high, open_low=low == 0),
                           default=None,
                           help=f"override the preset's {what}, {low:g}..{high:g}")
    stack.add_argument("--instrument-seed", type=SEED, default=None,
                       help="render on an instrument drawn with this seed from the default "
                            "variation (LED position and brightness, tilt, aberrations, "
                            "exposure, noise; docs/families.md) (default: the ideal one)")
    stack.add_argument("--montage", default=None, metavar="PNG",
                       help="also draw the stack's montage there")
    stack.set_defaults(func=run_stack)

    families = commands.add_parser(
        "families", help="list the sample families, or draw each as a PNG sheet",
        description="Every sample family with the parameters it draws (docs/families.md); "
                    "with --out, a sheet of each family's channels at a few defoci.")
    families.add_argument("--out", default=None, metavar="PNG",
                          help="draw the families there instead of listing them")
    families.add_argument("--sample", action="append", default=None, metavar="FAMILY",
                          help="a family to draw (repeatable; default: every family that "
                               "needs no input, and pictures when --images is given)")
    families.add_argument("--images", default=None, metavar="FOLDER",
                          help="the pictures family's folder of pictures")
    families.add_argument("--preset", default="paper",
                          help="optical system (default: %(default)s)")
    families.add_argument("--seed", type=SEED, default=1, help="sample seed (default: 1)")
    families.add_argument("--size", type=bounded_int(MIN_FRAME_PX, MAX_FAMILY_PX), default=256,
                          help=f"frame size in px, {MIN_FRAME_PX}..{MAX_FAMILY_PX} "
                               f"(default: 256)")
    families.add_argument("--defocus", nargs="+", type=finite_float, default=[-6.0, 0.0, 6.0],
                          metavar="UM", help="defoci drawn, µm (default: -6 0 6)")
    families.add_argument("--tile", type=bounded_int(MIN_TILE_PX, MAX_TILE_PX), default=96,
                          help=f"tile size in px, {MIN_TILE_PX}..{MAX_TILE_PX} (default: 96)")
    families.add_argument("--columns", type=bounded_int(1, 20), default=3,
                          help="families across (default: %(default)s)")
    families.add_argument("--instrument-seed", type=SEED, default=None,
                          help="draw on an instrument drawn with this seed (default: ideal)")
    families.set_defaults(func=run_families)

    draw = commands.add_parser("montage", help="draw a stack's planes as a PNG grid",
                               description="One row per channel, planes with z labels.")
    draw.add_argument("stack", help="focal-stack file")
    draw.add_argument("--out", required=True, metavar="PNG", help="image to write")
    draw.add_argument("--channel", action="append", default=None,
                      help="channel to draw (repeatable; default: all)")
    draw.add_argument("--max-planes", type=bounded_int(1, MAX_MONTAGE_PLANES), default=11,
                      help="planes per row, spread over the stack (default: %(default)s)")
    draw.add_argument("--tile", type=bounded_int(MIN_TILE_PX, MAX_TILE_PX), default=160,
                      help=f"tile size in px, {MIN_TILE_PX}..{MAX_TILE_PX} (default: 160)")
    draw.set_defaults(func=run_montage)


def _params(pairs: list[str]) -> dict[str, Any]:
    from controller.sim import SimError

    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SimError(f"--param {pair!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _require_file_target(path: Path) -> None:
    """Before any work: a file can be written at ``path`` (not a folder, in a writable one)."""
    from controller.files import require_writable_dir
    from controller.sim import SimError

    if path.is_dir():
        raise SimError(f"{path}: is a folder; give a file name in it")
    require_writable_dir(path.parent)


class _ProgressLine:
    """Planes done, percentage and time left on stderr: one rewritten line on a terminal, a line
    per tenth of the work otherwise (logs and pipes)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.reported = -1

    def __call__(self, done: int, total: int) -> None:
        tenth = 10 * done // total
        if not self.tty and tenth == self.reported:
            return
        self.reported = tenth
        elapsed = time.monotonic() - self.start
        left = elapsed / done * (total - done)
        line = (f"rendering plane {done}/{total} ({100 * done // total}%), {elapsed:.0f} s, "
                f"~{left:.0f} s left")
        if self.tty:
            sys.stderr.write(f"\r{line} " + ("\n" if done == total else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def run_stack(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from controller.optics import UndersampledWarning, preset
    from controller.sim import ImagingSettings, SimError, make_sample, render_stack
    from controller.sim.montage import write_montage
    from controller.sim.stacks import require_render_memory, resolve_patterns
    from controller.stackio import GROUND_TRUTH_MIN_PLANES, write_stack

    system = preset(args.preset)
    overrides = {name: getattr(args, name) for name in
                 ("na", "immersion_index", "wavelength_um", "magnification", "camera_pixel_um")
                 if getattr(args, name) is not None}
    if overrides:
        with warnings.catch_warnings():  # render_stack reports it, once
            warnings.simplefilter("ignore", UndersampledWarning)
            optics = dataclasses.replace(system.optics, **overrides)
        system = dataclasses.replace(system, optics=optics)
    finest, coarsest = SAMPLE_PIXEL_UM
    if not finest <= system.optics.pixel_um <= coarsest:
        raise SimError(f"the camera pixel at the sample (camera pixel / magnification) is "
                       f"{system.optics.pixel_um:.4g} µm; the simulator takes "
                       f"{finest:g}..{coarsest:g} µm")
    if len(args.size) not in (1, 2) or min(args.size) < MIN_FRAME_PX:
        raise SimError(f"--size: give one or two pixel counts of at least {MIN_FRAME_PX}, "
                       f"got {args.size}")
    rows, cols = (args.size * 2)[:2]
    low, high = args.z_range
    if not args.z_step > 0:
        raise SimError(f"--z-step must be positive, got {args.z_step}")
    if not low <= high:
        raise SimError(f"--z-range {low:g} {high:g}: the first must not exceed the second")
    if not 0 <= args.bandwidth_nm / 1000.0 < system.optics.wavelength_um / 2:
        raise SimError(f"--bandwidth-nm must be in [0, {system.optics.wavelength_um * 500:g}) "
                       f"(half the wavelength), got {args.bandwidth_nm}")
    names = None if args.patterns is None else [n.strip() for n in args.patterns.split(",")
                                                 if n.strip()]
    if names == []:
        raise SimError("--patterns: no pattern named")
    patterns = resolve_patterns(system, names)
    require_render_memory("sim stack", (rows, cols), args.oversample,
                          len(patterns), (high - low) / args.z_step + 1)
    for out in (Path(args.out), *([Path(args.montage)] if args.montage else [])):
        _require_file_target(out)
    z = np.arange(low, high + args.z_step / 2, args.z_step)
    params = _params(args.param)
    if args.image is not None:
        params["image"] = args.image
    k = args.oversample
    sample = make_sample(args.sample, (rows * k, cols * k), system.optics.pixel_um / k,
                         args.seed, **params)
    settings = ImagingSettings(bandwidth_um=args.bandwidth_nm / 1000.0,
                               led_radius_na=args.led_radius_na)
    noise_seed = args.seed if args.noise_seed is None else args.noise_seed
    instrument = _instrument(args.instrument_seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UndersampledWarning)
        stack = render_stack(sample, z, preset=system, patterns=patterns,
                             focus_z_um=args.focus_z, settings=settings, seed=noise_seed,
                             instrument=instrument, progress=_ProgressLine())
    for message in {str(w.message) for w in caught}:
        print(f"focuslock sim: warning: {message}", file=sys.stderr)
    stack.metadata["name"] = f"{args.sample}-{args.seed}"
    path = write_stack(args.out, stack)
    if z.size < GROUND_TRUTH_MIN_PLANES:
        print(f"focuslock sim: warning: {path} has {z.size} plane(s): predict reads it (one "
              f"plane is a single image), but train and evaluate need at least "
              f"{GROUND_TRUTH_MIN_PLANES} for their ground truth", file=sys.stderr)
    print(f"wrote {path}: {sample.kind} seed {args.seed}, {len(patterns)} channel(s) "
          f"x {z.size} planes of {cols}x{rows}, focus at z = {args.focus_z:g} µm")
    if args.montage:
        print(f"wrote {write_montage(stack, args.montage)}")
    return 0


def run_montage(args: argparse.Namespace) -> int:
    from controller.sim.montage import write_montage
    from controller.stackio import read_stack

    _require_file_target(Path(args.out))
    stack = read_stack(args.stack)
    path = write_montage(stack, args.out, args.channel, args.max_planes, args.tile)
    print(f"wrote {path}")
    return 0


def _instrument(seed: int | None) -> Instrument | None:
    """The instrument drawn with ``seed`` from the default variation, or None (ideal)."""
    from controller.sim.instrument import InstrumentVariation

    return None if seed is None else InstrumentVariation().draw(seed)


def run_families(args: argparse.Namespace) -> int:
    from controller.optics import preset
    from controller.sim import SimError
    from controller.sim.gallery import family_sheet, renderable_kinds
    from controller.sim.samples import SAMPLE_KINDS
    from controller.sim.stacks import require_render_memory

    if args.out is None:
        for kind, family in SAMPLE_KINDS.items():
            doc = " ".join((family.make.__doc__ or "").split("\n\n")[0].split())
            print(f"{kind}\n    {doc}\n    parameters: {', '.join(sorted(family.params))}")
        return 0
    if len(args.defocus) > MAX_SHEET_DEFOCI:
        raise SimError(f"--defocus: at most {MAX_SHEET_DEFOCI} defoci, got {len(args.defocus)}")
    system = preset(args.preset)
    params = {} if args.images is None else {"pictures": {"images": args.images}}
    kinds = args.sample or renderable_kinds(params)
    require_render_memory("sim families", (args.size, args.size), 1, len(system.patterns),
                          len(args.defocus))
    _require_file_target(Path(args.out))
    sheet = family_sheet(kinds, system, size_px=args.size, seed=args.seed,
                         defocus_um=args.defocus, tile_px=args.tile, columns=args.columns,
                         params=params, instrument=_instrument(args.instrument_seed),
                         progress=lambda kind: print(f"rendering {kind}", file=sys.stderr))
    sheet.save(args.out, format="PNG")
    print(f"wrote {args.out}: {len(kinds)} families")
    return 0
