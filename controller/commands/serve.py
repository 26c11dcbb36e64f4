"""``focuslock serve``: the headless focus-lock service (HTTP API, dashboard, systemd notify).

Runs until SIGTERM or SIGINT, then stops the loop and the drive, switches the LEDs off, closes
the rig and exits 0. Under systemd (``Type=notify``) it reports READY once it answers requests
and pings the watchdog from the loop's thread. See docs/service.md.
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
from controller.preflight import check_listen_address, check_log_dir

log = logging.getLogger("controller.serve")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the focus lock as a service: HTTP API and dashboard, systemd notify")
    serve.add_argument("--config", type=Path, help="TOML config (default: built-in defaults)")
    serve.add_argument("--host", help="listen address (default: service.host, 127.0.0.1)")
    serve.add_argument("--port", type=int,
                       help="TCP port, 0 for any free one (default: service.port, 8470)")
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from controller.service.api import ApiServer
    from controller.service.auth import AccessPolicy
    from controller.service.daemon import FocusService
    from controller.service.sdnotify import Notifier

    config = load_config(args.config)
    host = args.host or config.service.host
    check_log_dir(config.log_dir)
    access = AccessPolicy.for_listener(config.service, host)  # beyond loopback: a token
    check_listen_address(host)
    port = config.service.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise FocuslockError(f"--port: must be in [0, 65535], got {port}")
    notifier = Notifier.from_environ()
    service = FocusService(config, notifier=notifier)
    try:
        server = ApiServer((host, port), service, access=access)
    except FocuslockError:
        service.close()
        notifier.close()
        raise
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    service.start()
    server.start()
    try:
        status = service.status().worker
        log.info("listening on %s (%s)", server.url, status.state)
        notifier.ready(f"listening on {server.url}; {status.state}: {status.reason}")
        while not stop.wait(1.0):
            pass
    finally:
        notifier.stopping("stopping: loop, drive, LEDs, rig")
        server.shutdown()
        server.server_close()
        clean, summary = service.close()
        notifier.status(summary)
        notifier.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if clean else 1
