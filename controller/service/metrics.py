"""The service's status in the Prometheus text exposition format (``GET /metrics``).

Gauges for what is true now (state, z, the last reading), counters for what has happened since
the service started (steps, moves, rejections by gate, faults), so a Prometheus server can plot
the lock over weeks and alert on a fault or a lock that stops locking. An unknown value is NaN.
"""

from __future__ import annotations

import math

from controller.loop import LoopState
from controller.service.status import ServiceMode, StatusSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render_metrics(status: StatusSnapshot) -> str:
    """Prometheus text for a status snapshot of the service."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str,
               samples: list[tuple[dict[str, str], float | None]]) -> None:
        lines.append(f"# HELP focuslock_{name} {help_text}")
        lines.append(f"# TYPE focuslock_{name} {kind}")
        for labels, value in samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"focuslock_{name}{{{label_text}}} {_number(value)}" if labels
                         else f"focuslock_{name} {_number(value)}")

    worker = status.worker
    last = worker.last_step or {}
    counters = worker.counters
    counts = counters.step_counts
    metric("up", "gauge", "1 when the loop thread is alive, making progress and not in fault",
           [({}, 1.0 if status.health.healthy else 0.0)])
    metric("state", "gauge", "1 for the loop's current state, 0 for the others",
           [({"state": s.value}, 1.0 if worker.state is s else 0.0) for s in LoopState])
    metric("lock_running", "gauge", "1 while the continuous lock runs",
           [({}, 1.0 if worker.mode is ServiceMode.LOCK else 0.0)])
    metric("z_um", "gauge", "focus drive position in micrometres", [({}, worker.z_um)])
    metric("offset_um", "gauge", "lock offset: the lock holds z = z_focus + offset_um",
           [({}, worker.offset_um)])
    metric("defocus_um", "gauge", "last prediction of z_focus - z in micrometres",
           [({}, last.get("defocus_um"))])
    metric("error_um", "gauge", "last correction wanted (defocus_um + offset_um)",
           [({}, last.get("error_um"))])
    metric("confidence", "gauge", "last prediction's confidence (0..1)",
           [({}, last.get("confidence"))])
    metric("steps_total", "counter", "loop steps since the service started",
           [({}, counts.steps)])
    metric("moves_total", "counter", "focus moves since the service started",
           [({}, counts.moves)])
    metric("locked_steps_total", "counter", "steps that ended locked",
           [({}, counts.locked_steps)])
    metric("rejections_total", "counter", "readings rejected, by gate",
           [({"gate": gate}, count) for gate, count in sorted(counts.rejected.items())])
    metric("readings_total", "counter", "trusted readings, by the cue that decided them "
                                         "(network, or parallax where it overruled the network)",
           [({"cue": cue}, count) for cue, count in sorted(counts.decided.items())])
    metric("faults_total", "counter", "times the loop entered the fault state",
           [({}, counters.faults)])
    metric("uptime_seconds", "gauge", "seconds since the service started",
           [({}, status.uptime_s)])
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "NaN"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
