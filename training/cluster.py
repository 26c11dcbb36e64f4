"""Where a build's tasks run: a Dask cluster of this machine, a running one, or this process.

- ``LocalCluster`` of ``workers`` processes, one thread each (the renderer and the feature FFTs
  are single-threaded; a process per core uses every core without sharing the GIL);
- a running scheduler at ``scheduler`` (``tcp://host:8786``: a ``dask scheduler`` and its
  ``dask worker`` processes started by hand or by a batch system; the workers need focuslock
  with its ``train`` extra and read access to the input);
- ``in_process``: one worker thread inside this process, no cluster (small builds, debugging).

The same graph runs on each; only the results (features, never images) come back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from controller.errors import FocuslockError

log = logging.getLogger(__name__)


class ClusterError(FocuslockError):
    """No Dask cluster to run the build on."""


@dataclass(frozen=True)
class ClusterChoice:
    workers: int = 1  # worker processes of a LocalCluster
    scheduler: str | None = None  # the address of a running scheduler
    in_process: bool = False
    connect_timeout_s: float = 10.0

    def describe(self) -> str:
        if self.scheduler is not None:
            return f"the Dask scheduler at {self.scheduler}"
        if self.in_process:
            return "this process"
        return f"a local Dask cluster of {self.workers} worker process(es)"


def check_scheduler_address(address: str) -> None:
    """Refuse an address no scheduler can have, before anything else is done."""
    from distributed.comm import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise ClusterError(f"--scheduler {address}: not a Dask scheduler address ({exc}); "
                           f"expected e.g. tcp://host:8786") from None


@contextmanager
def dask_client(choice: ClusterChoice) -> Iterator[Any]:
    """A connected ``distributed.Client``; the cluster it started is closed afterwards."""
    from distributed import Client, LocalCluster

    if not log.isEnabledFor(logging.DEBUG):  # Dask's start-up and shutdown chatter, unless -v
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if choice.scheduler is not None:
        check_scheduler_address(choice.scheduler)
        try:
            client = Client(choice.scheduler, timeout=choice.connect_timeout_s)
        except OSError as exc:
            raise ClusterError(f"--scheduler {choice.scheduler}: no Dask scheduler answered "
                               f"within {choice.connect_timeout_s:g} s ({exc})") from None
        with client:
            if not client.scheduler_info().get("workers"):
                log.warning(
                    "the scheduler at %s has no workers yet: the build waits for them",
                    choice.scheduler)
            yield client
        return
    # the scheduler's web server (dashboard, health) on a free port of the loopback: 8787 may
    # belong to another cluster of this machine
    cluster = LocalCluster(n_workers=1 if choice.in_process else choice.workers,
                           threads_per_worker=1, processes=not choice.in_process,
                           dashboard_address="127.0.0.1:0")
    with cluster, Client(cluster) as client:
        yield client
