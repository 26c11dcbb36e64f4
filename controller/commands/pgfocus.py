"""``focuslock pgfocus``: Micro-Manager's pgFocus adapter drives the running service over a
serial line (docs/pgfocus.md).

Runs until SIGTERM or SIGINT. A serial device that goes away (a USB cable pulled, the gadget's
host gone) is opened again every few seconds; the service not answering is told to the adapter
as ERROR: lines while the bridge keeps serving.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from controller.config import load_config
from controller.errors import FocuslockError

log = logging.getLogger("controller.pgfocus")

READ_TIMEOUT_S = 0.25  # how long a stop or a lock command waiting for focus now waits at most
REOPEN_S = 2.0  # between tries to open a serial device that is not there (yet)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bridge = subparsers.add_parser(
        "pgfocus", help="speak the pgFocus serial protocol, so Micro-Manager's pgFocus adapter "
                        "drives the running service")
    bridge.add_argument("--config", type=Path, help="TOML config (default: built-in defaults)")
    bridge.add_argument("--port", help="serial device (default: pgfocus.port)")
    bridge.set_defaults(func=run_pgfocus)


def run_pgfocus(args: argparse.Namespace) -> int:
    import serial

    from controller.pgfocus.bridge import PgFocusBridge
    from controller.service.client import local_client, service_url

    config = load_config(args.config)
    device = args.port or config.pgfocus.port
    if not device:
        raise FocuslockError("no serial device: give --port or set pgfocus.port")
    client = local_client(config)  # TokenError (a FocuslockError) if the token is unreadable
    if client is None:
        raise FocuslockError("service.port is 0 (any free port): the bridge cannot find the "
                             "service; give it a fixed port")
    bridge = PgFocusBridge(client, config.pgfocus.um_per_pixel)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("pgFocus on %s at %d baud, driving %s", device, config.pgfocus.baud,
             service_url(config))
    try:
        while not stop.is_set():
            try:
                with serial.Serial(device, config.pgfocus.baud, timeout=READ_TIMEOUT_S) as port:
                    bridge.serve(port, stop)
            except (serial.SerialException, OSError) as exc:
                log.warning("%s: %s; trying again in %g s", device, exc, REOPEN_S)
                stop.wait(REOPEN_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
