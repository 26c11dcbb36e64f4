"""``focuslock dataset build``: the Dask graph from focal stacks to a dataset store.

One task per stack (training/stack_jobs.py) on the cluster of choice (training/cluster.py); this
process plans the stacks, hands out the tasks and writes each result into the store
(training/store.py) as it arrives, then gathers the index. Only features travel back, so the
store may be a local folder whatever cluster runs the tasks.

Restartable: every planned stack has a slot, and a stack is finished once its record is written
(after its features). A rerun of the same command (after a crash, Ctrl-C or a killed client)
runs only the slots without a record and rewrites nothing else; a worker lost during a run has
its tasks run again elsewhere by Dask. A stack that cannot be used is recorded as skipped with
the reason and the build goes on; a rerun leaves it skipped unless asked to retry it. A longer
``--count`` (simulated) or new files in the folder (acquired) add slots after the existing ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from controller.errors import FocuslockError
from controller.features import FeatureSpec
from controller.files import require_writable_dir
from controller.optics import Pattern, Preset
from controller.sim.instrument import InstrumentVariation
from controller.stackio import write_stack
from training.acquired import list_stacks, read_acquired_record
from training.cluster import ClusterChoice, dask_client
from training.datagen import FOCUS_JITTER_UM, check_render, stack_name, with_autofocus
from training.dataset import DatasetError, identity_of, mirror_symmetric
from training.stack_jobs import AcquiredJob, Job, SimulatedJob, StackResult, run_job
from training.store import DatasetStore, Layout, StoreError, create_store, is_store, open_store

log = logging.getLogger(__name__)


class BuildError(FocuslockError):
    """A build that cannot start, or that ended with stacks still to do."""


def describe_system(system: Preset) -> dict[str, Any]:
    """An optical system as a plan records it (a rerun must simulate the same one)."""
    return {"name": system.name, "optics": system.optics.to_dict(),
            "autofocus": system.autofocus.to_dict(),
            "ground_truth": system.ground_truth.to_dict()}


@dataclass(frozen=True)
class SimulatedPlan:
    """Stack i: sample kind ``kinds[i % len(kinds)]``, seed ``seed + i`` (as train-data draws
    it, so a build and a folder of ``train-data`` hold the same stacks). With ``vary_instrument``
    each stack is taken on its own instrument, drawn by its seed from the default
    ``InstrumentVariation`` (LED misplacement, aberrations, tilt, exposure, sensor): the variety
    of many microscopes, for a model that must work on the user's."""

    kinds: tuple[str, ...]
    count: int
    seed: int = 0
    size: int = 512
    preset: str = "paper"
    z_range_um: float = 30.0
    z_step_um: float = 1.0
    focus_jitter_um: float = FOCUS_JITTER_UM
    vary_instrument: bool = False
    # the autofocus pattern instead of the preset's (named "autofocus"): the experiments of
    # training/experiments/ try LED positions and multi-LED patterns on the preset's microscope
    autofocus: Pattern | None = None
    # the whole optical system instead of the named preset: `focuslock design-illumination`
    # simulates the user's own optics (training/design_illumination.py)
    system: Preset | None = None

    def variation(self) -> InstrumentVariation | None:
        return InstrumentVariation() if self.vary_instrument else None

    def z_um(self) -> np.ndarray:
        return self._checked()[0]

    def describe(self) -> dict[str, Any]:
        """What the stacks are, whatever their number (a longer run extends a store)."""
        return {"source": "simulated", "kinds": list(self.kinds), "seed": self.seed,
                "size": self.size, "preset": self.preset, "z_um": self.z_um().tolist(),
                "focus_jitter_um": self.focus_jitter_um,
                **({"instrument_variation": InstrumentVariation().to_dict()}
                   if self.vary_instrument else {}),
                **({} if self.autofocus is None else {"autofocus": self.autofocus.to_dict()}),
                **({} if self.system is None else {"system": describe_system(self.system)})}

    def layout(self, spec: FeatureSpec, mirror: bool) -> Layout:
        z, system = self._checked()
        optics = replace(system.optics, frame_shape=(self.size, self.size))
        return Layout(spec, optics, system.autofocus, z.size, mirror)

    def _checked(self) -> tuple[np.ndarray, Preset]:
        """The planes' z and the preset, once the numbers are known to make stacks."""
        z, system = check_render(self.count, kinds=self.kinds, size=self.size,
                                 preset_name=self.preset, system=self.system,
                                 z_range_um=self.z_range_um,
                                 z_step_um=self.z_step_um, what="dataset build")
        return z, with_autofocus(system, self.autofocus)

    def names(self) -> list[str]:
        return [stack_name(self.kinds[i % len(self.kinds)], self.seed + i)
                for i in range(self.count)]

    def jobs(self, slots: list[int], names: list[str], keep: int) -> list[Job]:
        z = tuple(self.z_um().tolist())
        return [SimulatedJob(slot, names[slot], self.kinds[slot % len(self.kinds)],
                             self.seed + slot, self.size, self.preset, z, self.focus_jitter_um,
                             slot < keep, self.variation(), self.autofocus, self.system)
                for slot in slots]


@dataclass(frozen=True)
class AcquiredPlan:
    """Every focal-stack file of a folder or fsspec URL, in name order."""

    url: str

    def describe(self) -> dict[str, Any]:
        return {"source": "acquired", "url": self.url}

    def layout(self, spec: FeatureSpec, mirror: bool,
               files: list[tuple[str, str]]) -> Layout:
        """The optics, autofocus pattern, frame and planes of the first readable stack."""
        for _, url in files:
            try:
                record = read_acquired_record(url)
                optics, pattern = identity_of(record)
                return Layout(spec, optics, pattern, len(record["z_um"]), mirror)
            except (FocuslockError, KeyError, TypeError, AttributeError, StopIteration):
                continue
        raise DatasetError(f"{self.url}: no stack in it is readable and has an autofocus "
                           f"channel")

    def jobs(self, slots: list[int], names: list[str], files: list[tuple[str, str]]
             ) -> list[Job]:
        where = dict(files)  # a file gone since its slot was planned: the task names it missing
        base = self.url.rstrip("/")
        return [AcquiredJob(slot, names[slot], where.get(names[slot], f"{base}/{names[slot]}"))
                for slot in slots]


Plan = SimulatedPlan | AcquiredPlan


@dataclass
class BuildReport:
    """What one build run did; ``on_stack`` sees it after every stack."""

    store: Path
    planned: int  # slots in the store
    to_do: int  # stacks this run set out to build
    cluster: str
    built: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (stack, reason)
    failed: list[tuple[str, str]] = field(default_factory=list)  # no result: retried on rerun
    counts: dict[str, int] = field(default_factory=dict)  # the store's done/skipped/missing
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0

    @property
    def finished(self) -> int:
        return self.built + len(self.skipped)

    def stacks_per_minute(self) -> float:
        return 60.0 * self.finished / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "to_do": self.to_do, "built": self.built,
                "skipped": [{"stack": n, "reason": r} for n, r in self.skipped],
                "failed": [{"stack": n, "reason": r} for n, r in self.failed],
                "elapsed_s": round(self.elapsed_s, 3), "cluster": self.cluster}


def build_dataset(out: Path, plan: Plan, spec: FeatureSpec, *, mirror: bool = False,
                  cluster: ClusterChoice | None = None, keep_stacks: int = 0,
                  retry_skipped: bool = False,
                  on_stack: Callable[[BuildReport], None] | None = None) -> BuildReport:
    """Build (or finish, or extend) the store at ``out``; the run's report. With
    ``keep_stacks`` the first simulated stacks are also written as OME-TIFF files beside it
    (``<OUT name>-stacks/``), to look at."""
    cluster = cluster or ClusterChoice()
    if keep_stacks and not isinstance(plan, SimulatedPlan):
        raise BuildError("--keep-stacks: acquired stacks are already files; nothing to keep")
    store, files = _prepared_store(out, plan, spec, mirror)
    kept = out.with_name(out.name.removesuffix(".zarr") + "-stacks")
    if keep_stacks:
        require_writable_dir(kept)
    records = store.records()
    slots = [i for i, r in enumerate(records)
             if r is None or (retry_skipped and r["status"] == "skipped")]
    names = store.names()
    jobs = (plan.jobs(slots, names, keep_stacks) if isinstance(plan, SimulatedPlan)
            else plan.jobs(slots, names, files))
    report = BuildReport(out, len(records), len(jobs), cluster.describe())
    log.info("%s: %d of %d stacks to build on %s", out, len(jobs), len(records), report.cluster)
    try:
        if jobs:
            with dask_client(cluster) as client:
                _run(client, jobs, store, records, report, kept, on_stack)
    finally:
        report.elapsed_s = time.monotonic() - report.started
        report.counts = store.write_index(records)
        store.group.attrs["last_build"] = report.to_dict()
    return report


def _prepared_store(out: Path, plan: Plan, spec: FeatureSpec, mirror: bool
                    ) -> tuple[DatasetStore, list[tuple[str, str]]]:
    """The store to fill, made or checked against the command before any task runs, with the
    acquired files found (none for a simulated plan)."""
    if out.exists() and not is_store(out):
        raise StoreError(f"{out}: exists and is not a dataset store; choose another name")
    files = list_stacks(plan.url) if isinstance(plan, AcquiredPlan) else []
    if not out.exists():
        require_writable_dir(out.parent)
        if isinstance(plan, SimulatedPlan):
            layout, names = plan.layout(spec, mirror), plan.names()
        else:
            layout, names = plan.layout(spec, mirror, files), [name for name, _ in files]
        if mirror and not mirror_symmetric(layout.pattern):
            raise BuildError(f"--mirror: the autofocus pattern {layout.pattern.name!r} is not "
                             f"symmetric under x -> -x, so mirrored frames would be false "
                             f"examples")
        return create_store(out, layout, plan.describe(), names), files
    store = open_store(out)
    _require_same(out, "sources", store.plan, plan.describe())
    _require_same(out, "feature spec", store.layout.spec.to_dict(), spec.to_dict())
    _require_same(out, "mirror", store.layout.mirror, mirror)
    known = store.names()
    if isinstance(plan, SimulatedPlan):
        if plan.count < len(known):
            raise StoreError(f"{out}: holds {len(known)} planned stacks; --count {plan.count} "
                             f"would leave some out (give at least {len(known)})")
        store.add_slots(plan.names()[len(known):])
    else:
        seen = set(known)
        store.add_slots([name for name, _ in files if name not in seen])
    return store, files


def _require_same(out: Path, what: str, stored: object, asked: object) -> None:
    if stored != asked:
        raise StoreError(f"{out}: was built with other {what} ({stored}); this command asks "
                         f"for {asked}. Rerun it as it was built, or choose another OUT")


def _run(client: Any, jobs: list[Job], store: DatasetStore,
         records: list[dict[str, Any] | None], report: BuildReport, kept: Path,
         on_stack: Callable[[BuildReport], None] | None) -> None:
    """Hand out the tasks; write each result as it comes back."""
    from distributed import KilledWorker, as_completed

    by_key = {}
    futures = []
    for job in jobs:
        future = client.submit(run_job, job, store.layout, key=f"stack-{job.slot}-{job.name}",
                               pure=False)
        by_key[future.key] = job
        futures.append(future)
    for future in as_completed(futures):
        job = by_key[future.key]
        try:
            result: StackResult = future.result()
        except KilledWorker as exc:
            report.failed.append((job.name, f"its task killed {exc.last_worker.name!r} and "
                                            f"other workers (out of memory?)"))
            continue
        except Exception as exc:
            exc.add_note(f"while building stack {job.name} (slot {job.slot})")
            raise
        finally:
            future.release()
        store.write_stack(result.slot, result.record, result.features, result.mirror_features)
        records[result.slot] = result.record
        if result.kept is not None:
            write_stack(kept / job.name, result.kept)
        if result.record["status"] == "done":
            report.built += 1
        else:
            report.skipped.append((job.name, str(result.record["reason"])))
        report.elapsed_s = time.monotonic() - report.started
        if on_stack is not None:
            on_stack(report)
