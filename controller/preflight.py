"""What a config needs from the machine, checked before the box relies on it.

controller/config.py checks what a config says (types, ranges, the rules between settings) each
time one is made; this module checks what it needs to find: the model bundle it names, the
simulated sample, a log folder it can write, an address it can listen on and the API token it
needs there. ``focuslock config
check`` runs them all (``check_environment``), so a value that would fail at 3 a.m. fails while
someone is watching; ``focuslock serve`` runs the log folder's and the address's before it
starts, and the lock and focus commands the log folder's. Nothing here leaves anything behind:
the log folder is tried with a nameless temporary file, the address with a free port.

The simulator and the model are imported only inside their checks: a box with a Pi camera never
loads the simulator for its config.
"""

from __future__ import annotations

import dataclasses
import socket
import tempfile
from pathlib import Path

from controller.config import Config, ConfigError, shown
from controller.errors import FocuslockError
from controller.optics import Preset, preset


def check_environment(config: Config) -> None:
    """Every check of this module; the first failing one's ConfigError names its key."""
    check_model_bundle(config)
    check_parallax_calibration(config)
    check_sample_kind(config)
    check_log_dir(config.log_dir)
    check_listen_address(config.service.host)
    check_access(config)


def check_model_bundle(config: Config) -> None:
    """The bundle the config names (or the bundled default) loads and fits the optics and the
    frames it will see (the simulated camera's frame where it is simulated); where it has a probe
    pair network, the probes are its length (any other leaves the pair unread, and the sign on
    a sample the network never learned to the distances alone)."""
    from controller.sensing import load_network

    try:
        model = load_network(config, configured_system(config))
    except FocuslockError as exc:
        raise ConfigError(f"model.bundle: {exc}") from None
    pair = None if model is None else model.pair
    if pair is None:
        return
    for key, probe_um in (("focus.probe_um", config.focus.probe_um),
                          ("lock.probe_um", config.lock.probe_um)):
        if not pair.matches(probe_um):
            raise ConfigError(f"{key}: {probe_um:g} µm, but the model's probe pair network reads "
                              f"probes of {pair.probe_um:g} µm: set {key} = "
                              f"{pair.probe_um:g}, or retrain it with focuslock pair-probe "
                              f"--probe-um {probe_um:g}")


def configured_system(config: Config) -> Preset:
    """The optics preset the config names, with the frames its camera delivers (the simulated
    camera's frame where it is simulated): what a model bundle must fit."""
    system = preset(config.optics.preset)
    if config.camera.backend != "virtual":
        return system
    from controller.sim.rigs import sim_frame_shape

    optics = dataclasses.replace(system.optics, frame_shape=sim_frame_shape(system, config.sim))
    return dataclasses.replace(system, optics=optics)


def check_parallax_calibration(config: Config) -> None:
    """A parallax calibration the config names loads and was made for the preset's views."""
    if not (config.parallax.calibration and config.reads_parallax):
        return
    from controller.parallax import ParallaxCalibration, ParallaxCue

    system = preset(config.optics.preset)
    assert system.parallax is not None  # reads_parallax says so
    try:
        ParallaxCue(system.parallax, system.optics,
                    ParallaxCalibration.load(config.parallax.calibration))
    except FocuslockError as exc:
        raise ConfigError(f"parallax.calibration: {exc}") from None


def check_sample_kind(config: Config) -> None:
    """The simulated sample is one the simulator can draw (only where it is simulated)."""
    if config.camera.backend != "virtual":
        return
    from controller.sim.samples import SAMPLE_KINDS

    if config.sim.sample not in SAMPLE_KINDS:
        raise ConfigError(f"sim.sample: must be one of {', '.join(map(repr, SAMPLE_KINDS))}, "
                          f"got {shown(config.sim.sample)}")


def check_log_dir(log_dir: str) -> None:
    """``log_dir`` is a folder this user can write, or can become one: its nearest existing
    ancestor is a folder that takes a (nameless, at once deleted) file."""
    path = Path(log_dir)
    existing = path
    try:
        while not existing.exists():
            existing = existing.parent
    except OSError as exc:
        raise ConfigError(f"log_dir: cannot use {shown(log_dir)}: {exc.strerror or exc}") from None
    if not existing.is_dir():
        raise ConfigError(f"log_dir: {existing} is not a folder, so {shown(log_dir)} cannot be one")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ConfigError(f"log_dir: cannot write in {existing}: {exc.strerror or exc}") \
            from None


def check_access(config: Config) -> None:
    """A listen address beyond loopback has a token file, and the token file gives a token."""
    from controller.service.auth import AccessPolicy

    AccessPolicy.for_listener(config.service, config.service.host)


def check_listen_address(host: str) -> None:
    """``host`` is an IPv4 address (the HTTP server's family) of this machine, or a name that
    resolves to one: a numeric address is read without the network, a name is resolved, and
    either is bound on a free port as the server will bind it."""
    for flags in (socket.AI_NUMERICHOST, 0):
        try:
            socket.getaddrinfo(host, 0, socket.AF_INET, socket.SOCK_STREAM, 0, flags)
            break
        except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: not a valid name
            reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
    else:
        raise ConfigError(f"service.host: {shown(host)} is neither an IPv4 address nor a name that "
                          f"resolves to one ({reason})")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except OSError as exc:
        raise ConfigError(f"service.host: cannot listen on {shown(host)}: "
                          f"{exc.strerror or exc}") from None
