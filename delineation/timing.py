"""The trial's timing endpoints, recomputed from the stored interaction events (docs/DELINEATION.md).

Times are derived, never stored, so a changed cut-off or a found bug can be re-run over every case. Each
session's events carry the page's own monotonic clock (performance.now(), ms), so gaps are taken within a
session and sessions are added up; only wall time uses server clocks.

A hidden tab sends no events, so its time falls out through the idle cut-off; only explicit pause/resume
events are excluded as such. A pause lasts until the next resume (or the end of the session); a second
pause or a resume without a pause changes nothing.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

PAUSE, RESUME, EDIT = "pause", "resume", "edit"


@dataclass(frozen=True)
class Event:
    t_ms: float
    kind: str


@dataclass(frozen=True)
class SessionEvents:
    opened_at: datetime
    events: list[Event] = field(default_factory=list)
    submitted_at: datetime | None = None


@dataclass(frozen=True)
class CaseTimes:
    wall_seconds: float | None
    active_seconds: float
    editing_seconds: float
    sessions: int


def active_seconds(events: Iterable[Event], idle_cutoff_s: float) -> float:
    """Sum of gaps between consecutive events, without gaps longer than the cut-off or starting in a pause."""
    total_ms, cutoff_ms = 0.0, idle_cutoff_s * 1000.0
    previous, paused = None, False
    for event in _in_order(events):
        if previous is not None and not paused and event.t_ms - previous <= cutoff_ms:
            total_ms += event.t_ms - previous
        paused = _paused_after(event, paused)
        previous = event.t_ms
    return total_ms / 1000.0


def editing_seconds(events: Iterable[Event], burst_gap_s: float) -> float:
    """Sum of gaps between consecutive edits no longer than the burst gap, unless a pause overlaps the gap."""
    total_ms, burst_ms = 0.0, burst_gap_s * 1000.0
    last_edit, paused, interrupted = None, False, False
    for event in _in_order(events):
        paused = _paused_after(event, paused)
        if event.kind == PAUSE:
            interrupted = True
        elif event.kind == EDIT:
            if last_edit is not None and not interrupted and event.t_ms - last_edit <= burst_ms:
                total_ms += event.t_ms - last_edit
            last_edit, interrupted = event.t_ms, paused
    return total_ms / 1000.0


def case_times(
    sessions: Iterable[SessionEvents],
    *,
    idle_cutoff_s: float = 60,
    burst_gap_s: float = 10,
    submitted_at: datetime | None = None,
) -> CaseTimes:
    """Wall time from the first session opened to submission (None until submitted); active and editing summed.

    submitted_at defaults to the latest submitted_at any session carries.
    """
    sessions = list(sessions)
    if submitted_at is None:
        submitted_at = max((s.submitted_at for s in sessions if s.submitted_at is not None), default=None)
    wall = None
    if submitted_at is not None and sessions:
        wall = (submitted_at - min(s.opened_at for s in sessions)).total_seconds()
    return CaseTimes(
        wall_seconds=wall,
        active_seconds=sum((active_seconds(s.events, idle_cutoff_s) for s in sessions), 0.0),
        editing_seconds=sum((editing_seconds(s.events, burst_gap_s) for s in sessions), 0.0),
        sessions=len(sessions),
    )


def _in_order(events: Iterable[Event]) -> list[Event]:
    """By page time; stable, so events with equal times keep the order they were sent in."""
    return sorted(events, key=lambda event: event.t_ms)


def _paused_after(event: Event, paused: bool) -> bool:
    if event.kind == PAUSE:
        return True
    if event.kind == RESUME:
        return False
    return paused
