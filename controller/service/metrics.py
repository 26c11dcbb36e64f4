"""The service's metrics for Prometheus (``GET /metrics``), through ``prometheus_client`` in a
registry of the service's own (never the library's global one: two services in one process,
as in the tests, must not share or clash).

Gauges for what is true now (state, z, the last reading) and counters for what has happened
since the service started (steps, moves, rejections by gate, faults, resent board packets) are
read from the status the worker publishes, at the moment of a scrape: its counters only ever
grow, and a scrape changes nothing, so two scrapes never count anything twice. Step time and
|defocus| are histograms the worker observes once per step (``observe_step``). An unknown
value is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.loop import LoopState
from controller.runlog import StepRecord
from controller.service.status import ServiceMode, StatusSnapshot

CONTENT_TYPE = CONTENT_TYPE_LATEST
PREFIX = "focuslock_"
# A step on the box: an exposure, a prediction and maybe a move (tens of ms to about a second);
# a camera or board that stalls shows in the top buckets.
STEP_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A locked sample sits within the tolerance (0.5 µm by default); the model reads up to ±30 µm.
ABS_DEFOCUS_UM_BUCKETS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)


class ServiceMetrics:
    """The registry ``GET /metrics`` serves: the status read at each scrape, and the per-step
    histograms."""

    def __init__(self, status: Callable[[], StatusSnapshot]) -> None:
        self.registry = CollectorRegistry()
        self._step_seconds = Histogram(
            f"{PREFIX}step_seconds", "duration of a loop step (reading, gates, move) on the "
            "loop's clock: real time on the box, simulated time on the virtual microscope",
            buckets=STEP_SECONDS_BUCKETS, registry=self.registry)
        self._abs_defocus = Histogram(
            f"{PREFIX}abs_defocus_um", "|defocus_um| of trusted readings, in micrometres",
            buckets=ABS_DEFOCUS_UM_BUCKETS, registry=self.registry)
        self.registry.register(_StatusCollector(status))

    def observe_step(self, record: StepRecord, duration_s: float) -> None:
        """Count one step of the loop (worker thread, as it publishes the step)."""
        self._step_seconds.observe(max(0.0, duration_s))
        defocus = record.defocus_um
        if not record.rejected and defocus is not None and math.isfinite(defocus):
            self._abs_defocus.observe(abs(defocus))

    def exposition(self) -> bytes:
        """The Prometheus text of every metric, as ``CONTENT_TYPE``."""
        return generate_latest(self.registry)


class _StatusCollector(Collector):
    """Gauges and counters read from the service's status at each scrape."""

    def __init__(self, status: Callable[[], StatusSnapshot]) -> None:
        self._status = status

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        status = self._status()
        worker = status.worker
        last = worker.last_step or {}
        counters = worker.counters
        counts = counters.step_counts
        yield _gauge("up", "1 when the loop thread is alive, making progress and not in fault",
                     1.0 if status.health.healthy else 0.0)
        state = GaugeMetricFamily(f"{PREFIX}state", "1 for the loop's current state, 0 for "
                                                    "the others", labels=["state"])
        for s in LoopState:
            state.add_metric([s.value], 1.0 if worker.state is s else 0.0)
        yield state
        yield _gauge("lock_running", "1 while the continuous lock runs",
                     1.0 if worker.mode is ServiceMode.LOCK else 0.0)
        yield _gauge("z_um", "focus drive position in micrometres", worker.z_um)
        yield _gauge("offset_um", "lock offset: the lock holds z = z_focus + offset_um",
                     worker.offset_um)
        yield _gauge("defocus_um", "last prediction of z_focus - z in micrometres",
                     last.get("defocus_um"))
        yield _gauge("model_bias_um", "what the model reads at the sharpest plane focus now "
                                      "found; the lock holds that reading (0: not measured)",
                     worker.model_bias_um)
        yield _gauge("error_um", "last correction wanted (defocus_um + offset_um - "
                                 "model_bias_um)",
                     last.get("error_um"))
        yield _gauge("confidence", "last prediction's confidence (0..1)", last.get("confidence"))
        yield _gauge("uptime_seconds", "seconds since the service started", status.uptime_s)
        yield _counter("steps", "loop steps since the service started", counts.steps)
        yield _counter("moves", "focus moves since the service started", counts.moves)
        yield _counter("locked_steps", "steps that ended locked", counts.locked_steps)
        yield _counter_by("rejections", "readings rejected, by gate", "gate", counts.rejected)
        yield _counter_by("readings", "trusted readings, by the cue that decided them (network, "
                                      "or parallax where it overruled the network)",
                          "cue", counts.decided)
        yield _counter("faults", "times the loop entered the fault state", counters.faults)
        yield _counter("lock_starts", "times the lock was started", counters.lock_starts)
        yield _counter("focus_runs", "times focus now ran", counters.focus_runs)
        yield _counter("board_link_retries", "packets resent to the focus board on its serial "
                                             "link (no reply in time, or a garbled one)",
                       counters.link_retries)


def _gauge(name: str, help_text: str, value: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}{name}", help_text,
                             value=math.nan if value is None else float(value))


def _counter(name: str, help_text: str, value: int) -> CounterMetricFamily:
    """A counter, exposed as ``focuslock_<name>_total``."""
    return CounterMetricFamily(f"{PREFIX}{name}", help_text, value=value)


def _counter_by(name: str, help_text: str, label: str,
                values: Mapping[str, int]) -> CounterMetricFamily:
    """A counter with one sample per value of ``label`` (none until the first count)."""
    family = CounterMetricFamily(f"{PREFIX}{name}", help_text, labels=[label])
    for key, count in sorted(values.items()):
        family.add_metric([key], count)
    return family
