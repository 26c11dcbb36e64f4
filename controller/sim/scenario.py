"""Scenarios: timed events played against a simulated microscope while the loop runs.

Drift, knocks, the sample leaving the view, a blocked or overexposed light path: a scenario is a
list of :class:`Event` and :class:`Scenario` plays them against a :class:`VirtualScope`, on the
in-process virtual rig or on the digital twin alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from controller.sim.devices import VirtualScope

BLOCKED, OVEREXPOSED = 0.0, 40.0  # light scales of the dark and saturated intervals

EventKind = Literal["knock", "empty-field", "sample-back", "dark", "saturated", "light-normal"]
# What the camera faces, as the demo's rows and plots name it ("": a normal view).
Condition = Literal["", "empty-field", "dark", "saturated"]


@dataclass(frozen=True)
class Event:
    """Something that happens to the microscope at ``at_s`` seconds into a run."""

    at_s: float
    kind: EventKind
    value: float = 0.0  # µm for a knock

    def describe(self) -> str:
        return f"knock {self.value:+.1f} µm" if self.kind == "knock" else self.kind


class Scenario:
    """Plays timed events against a scope; ``condition`` says what the camera is facing."""

    def __init__(self, events: list[Event]) -> None:
        for event in events:
            if event.kind not in get_args(EventKind):
                raise ValueError(f"scenario: unknown event {event.kind!r}")  # a caller's bug
        self.pending = sorted(events, key=lambda e: e.at_s)
        self.fired: list[tuple[float, Event]] = []

    def advance(self, scope: VirtualScope, elapsed_s: float) -> list[Event]:
        """Apply every event due by ``elapsed_s``; return them."""
        due = [e for e in self.pending if e.at_s <= elapsed_s]
        self.pending = self.pending[len(due):]
        for event in due:
            if event.kind == "knock":
                scope.focal_plane.knock(event.value)
            elif event.kind in ("empty-field", "sample-back"):
                scope.empty_field = event.kind == "empty-field"
            else:
                scope.light_scale = {"dark": BLOCKED, "saturated": OVEREXPOSED,
                                     "light-normal": 1.0}[event.kind]
            self.fired.append((elapsed_s, event))
        return due

    @staticmethod
    def condition(scope: VirtualScope) -> Condition:
        """'' for a normal view, else why no frame should be trusted."""
        if scope.empty_field:
            return "empty-field"
        if scope.light_scale == BLOCKED:
            return "dark"
        if scope.light_scale >= OVEREXPOSED:
            return "saturated"
        return ""


def demo_scenario(duration_s: float) -> list[Event]:
    """The demo's bad day, scaled to its length: a knock, the sample leaving the view, a
    blocked and an overexposed light path, with time to re-lock after each."""
    def at(fraction: float) -> float:
        return round(fraction * duration_s, 1)

    return [
        Event(at(0.30), "knock", 5.0),
        Event(at(0.50), "empty-field"),
        Event(at(0.62), "sample-back"),
        Event(at(0.72), "dark"),
        Event(at(0.76), "light-normal"),
        Event(at(0.84), "saturated"),
        Event(at(0.88), "light-normal"),
    ]
