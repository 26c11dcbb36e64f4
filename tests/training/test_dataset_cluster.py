"""The build on real Dask clusters: a LocalCluster of two worker processes, a worker killed in
the middle, the whole build killed and run again, and a scheduler and worker started by hand on
the loopback. Every wait is bounded; every process started here is ended here."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli_run import run_cli
from training.build import AcquiredPlan, build_dataset
from training.cluster import ClusterChoice
from training.store import open_store

from .store_helpers import (
    PLAN,
    SPEC,
    assert_same_store,
    record_files,
    tiny_args,
    write_plan_stacks,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
PLAN10 = dataclasses.replace(PLAN, count=10)
COPIES = 8  # of each stack file, for the build killed in the middle
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT),
                                                                  os.environ.get("PYTHONPATH"))))}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    """PLAN10's stacks as files, rendered in this process. The cluster tests featurise files:
    a stack rendered in another process may differ (see test_rendering_differs_...)."""
    return write_plan_stacks(tmp_path_factory.mktemp("stacks"), PLAN10)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, stacks):
    """The stacks' store, built in this process without a cluster."""
    out = tmp_path_factory.mktemp("reference") / "reference.zarr"
    build_dataset(out, AcquiredPlan(str(stacks)), SPEC, cluster=ClusterChoice(in_process=True))
    return out


def _wait_for(condition, what, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def _finished(out):
    folder = out / "record" / "c"
    return len(record_files(out)) if folder.is_dir() else 0


def test_two_worker_processes_give_the_store_of_one_process(tmp_path, stacks, reference):
    workers = set()

    def note_workers(report):
        from distributed import get_client

        workers.update(get_client().run(os.getpid).values())

    report = build_dataset(tmp_path / "two.zarr", AcquiredPlan(str(stacks)), SPEC,
                           cluster=ClusterChoice(workers=2), on_stack=note_workers)
    assert report.finished == PLAN10.count and not report.failed
    assert len(workers) == 2 and os.getpid() not in workers
    assert_same_store(tmp_path / "two.zarr", reference)


def test_worker_processes_render_simulated_stacks_and_record_them(tmp_path, reference):
    out = tmp_path / "simulated.zarr"
    report = build_dataset(out, PLAN10, SPEC, cluster=ClusterChoice(workers=2))
    assert report.finished == PLAN10.count and not report.failed
    store, files = open_store(out), open_store(reference)
    assert store.names() == PLAN10.names() and sorted(files.names()) == sorted(PLAN10.names())
    rendered_here: dict[str, Any] = dict(zip(files.names(), files.records(), strict=True))
    simulated: list[Any] = store.records()
    for name, mine in zip(store.names(), simulated, strict=True):
        theirs = rendered_here[name]
        assert (mine["kind"], mine["seed"]) == (theirs["kind"], theirs["seed"])
        assert mine["metadata"]["sample"] == theirs["metadata"]["sample"]  # params, seed ...
        assert mine["z_um"] == theirs["z_um"] if mine["status"] == "done" else mine["reason"]


def test_a_worker_killed_in_the_middle_loses_no_stack(tmp_path, stacks, reference):
    killed: list[int] = []

    def kill_a_worker(report):
        if not killed:
            from distributed import get_client

            pid = min(get_client().run(os.getpid).values())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    report = build_dataset(tmp_path / "killed.zarr", AcquiredPlan(str(stacks)), SPEC,
                           cluster=ClusterChoice(workers=2), on_stack=kill_a_worker)
    assert killed and report.finished == PLAN10.count and not report.failed
    assert_same_store(tmp_path / "killed.zarr", reference)


def test_a_killed_build_run_again_gives_the_same_store_without_duplicates(tmp_path, stacks):
    many = tmp_path / "many"  # enough stacks that the build is still running when it is killed
    many.mkdir()
    for copy in range(COPIES):
        for path in stacks.iterdir():
            os.link(path, many / f"copy{copy}-{path.name}")
    plan = AcquiredPlan(str(many))
    reference = tmp_path / "reference.zarr"
    build_dataset(reference, plan, SPEC, cluster=ClusterChoice(in_process=True))
    out = tmp_path / "crashed.zarr"
    build = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "dataset", "build", str(out), "--from",
         str(many), "--feature-patch", "64", "--workers", "2"], env=ENV, cwd=tmp_path,
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _finished(out) >= 3 or build.poll() is not None, "three stacks")
    finally:  # the client and its cluster's processes: one process group, started here
        os.killpg(build.pid, signal.SIGKILL)
        build.wait(timeout=30)
    before = record_files(out)
    total = COPIES * PLAN10.count
    assert 3 <= len(before) < total, "the build ended before it could be killed"
    report = build_dataset(out, plan, SPEC, cluster=ClusterChoice(in_process=True))
    assert report.to_do == total - len(before)
    after = record_files(out)
    assert all(after[k] == v for k, v in before.items())  # finished stacks were not rewritten
    assert len(after) == total
    assert_same_store(out, reference)


def test_a_scheduler_and_worker_started_by_hand_run_the_graph(tmp_path, capsys, stacks,
                                                              reference):
    scheduler_file = tmp_path / "scheduler.json"
    processes = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file),
         "--idle-timeout", "300"], env=ENV, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for(scheduler_file.is_file, "the scheduler")
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
             "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", "--death-timeout",
             "60", "--local-directory", str(tmp_path / "worker")], env=ENV, cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
        out = tmp_path / "remote.zarr"
        code, err = run_cli(["dataset", "build", str(out), "--from", str(stacks),
                             "--feature-patch", "64", "--scheduler", address], capsys)
        assert code == 0, err
        assert_same_store(out, reference)
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.mark.parametrize(("address", "message"), [
    ("tcp://127.0.0.1:1", "no Dask scheduler answered within 1 s"),
    ("foo://127.0.0.1:1", "not a Dask scheduler address"),
    ("tcp://127.0.0.1:port", "not a Dask scheduler address"),
])
def test_a_bad_scheduler_address_is_named(tmp_path, capsys, address, message):
    out = tmp_path / "never.zarr"
    code, err = run_cli(["dataset", "build", str(out), *tiny_args(), "--scheduler", address,
                         "--connect-timeout", "1"], capsys)
    assert code == 2
    assert f"--scheduler {address}: {message}" in err
