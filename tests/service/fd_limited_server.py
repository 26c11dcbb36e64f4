"""A real service in a process of its own with a low RLIMIT_NOFILE, for the file-descriptor tests
of test_connections.py (the limit is per process: lowering it in the test's own would starve
pytest). Run as ``python -m tests.service.fd_limited_server LIMIT RESERVE LOG_DIR``; it prints
``port N`` once it answers, then obeys one command per line on stdin, answering on stdout:

- ``rig N``: open N files and close them again, as the rig does (``rig ok`` or the error);
- ``hog``: hold every descriptor still free (``hogged N``), as a leak elsewhere would;
- ``free``: close them (``freed``);
- ``cpu``: the CPU seconds the process has used (``cpu S``).
"""

from __future__ import annotations

import logging
import os
import resource
import sys
from pathlib import Path

from controller.service.api import ApiServer
from controller.service.connections import Deadlines
from controller.service.daemon import FocusService
from tests.service.conftest import oracle_hardware, service_config

HOLD_S = 120.0  # idle test sockets are held, not timed out, while a test runs


def main(limit: int, reserve: int, log_dir: Path) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(
        resource.RLIMIT_NOFILE)[1]))
    config = service_config(log_dir, service={"max_connections": 1024})
    service = FocusService(config, lambda: oracle_hardware(config))
    server = ApiServer(("127.0.0.1", 0), service, fd_reserve=reserve,
                       deadlines=Deadlines(header_s=HOLD_S, idle_s=HOLD_S))
    service.start()
    server.start()
    print(f"port {server.server_address[1]}", flush=True)
    hogged: list[int] = []
    for line in sys.stdin:
        command, *args = line.split()
        if command == "rig":
            try:
                opened = [os.open(os.devnull, os.O_RDONLY) for _ in range(int(args[0]))]
            except OSError as exc:
                print(f"rig failed: {exc}", flush=True)
            else:
                for fd in opened:
                    os.close(fd)
                print("rig ok", flush=True)
        elif command == "hog":
            try:
                while True:
                    hogged.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                print(f"hogged {len(hogged)}", flush=True)
        elif command == "free":
            while hogged:
                os.close(hogged.pop())
            print("freed", flush=True)
        elif command == "cpu":
            times = os.times()
            print(f"cpu {times.user + times.system}", flush=True)
    server.shutdown()
    service.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
