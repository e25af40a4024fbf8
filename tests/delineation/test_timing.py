"""Timing endpoints from stored events: idle gaps, pauses, edit bursts and sessions, all computed by hand."""

from datetime import UTC, datetime, timedelta

import pytest

from delineation.timing import CaseTimes, Event, SessionEvents, active_seconds, case_times, editing_seconds

OPENED = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def at(*seconds: float, kind: str = "pointer") -> list[Event]:
    return [Event(t_ms=s * 1000, kind=kind) for s in seconds]


def test_active_time_skips_gaps_longer_than_the_cutoff():
    assert active_seconds(at(0, 1, 3, 70, 71), idle_cutoff_s=60) == 4.0  # 1 + 2 + (67 skipped) + 1


def test_a_gap_exactly_at_the_cutoff_counts():
    assert active_seconds(at(0, 60), idle_cutoff_s=60) == 60.0
    assert active_seconds(at(0, 60.001), idle_cutoff_s=60) == 0.0


def test_unsorted_events_are_taken_in_page_time_order():
    assert active_seconds(at(71, 3, 0, 70, 1), idle_cutoff_s=60) == 4.0


def test_time_between_pause_and_resume_is_not_active():
    events = [*at(0, 5), Event(10_000, "pause"), Event(500_000, "resume"), *at(501)]
    assert active_seconds(events, idle_cutoff_s=1000) == 10.0 + 1.0  # 0→5→10, then 500→501


def test_events_inside_a_pause_and_repeated_pauses_change_nothing():
    events = [
        *at(0),
        Event(2_000, "pause"),
        *at(3),
        Event(4_000, "pause"),
        Event(6_000, "resume"),
        Event(7_000, "resume"),
        *at(9),
    ]
    assert active_seconds(events, idle_cutoff_s=60) == 2.0 + 1.0 + 2.0  # 0→2, 6→7, 7→9


def test_a_pause_without_resume_lasts_to_the_end():
    assert active_seconds([*at(0, 1), Event(2_000, "pause"), *at(3, 4)], idle_cutoff_s=60) == 2.0


def test_empty_and_single_event_sessions_have_no_time():
    assert active_seconds([], 60) == 0.0 and editing_seconds([], 10) == 0.0
    assert active_seconds(at(5), 60) == 0.0 and editing_seconds(at(5, kind="edit"), 10) == 0.0


def test_editing_time_sums_bursts_of_edits():
    events = [*at(0, 2, 5, kind="edit"), *at(6, 30), *at(31, 41, 52, kind="edit")]
    # 0→2→5: 5 s; 5→31: 26 s > 10 skipped; 31→41: exactly 10 s counts; 41→52: 11 s skipped.
    assert editing_seconds(events, burst_gap_s=10) == 15.0


def test_edit_gaps_overlapping_a_pause_are_not_editing():
    events = [
        *at(0, 1, kind="edit"),
        Event(2_000, "pause"),
        Event(3_000, "resume"),
        *at(4, 5, kind="edit"),
    ]
    assert editing_seconds(events, burst_gap_s=10) == 1.0 + 1.0  # 1→4 spans the pause


def test_an_edit_during_a_pause_starts_no_editing_gap():
    events = [
        *at(0, kind="edit"),
        Event(1_000, "pause"),
        *at(2, kind="edit"),
        Event(3_000, "resume"),
        *at(4, 5, kind="edit"),
    ]
    assert editing_seconds(events, burst_gap_s=10) == 1.0  # only 4→5


def test_case_times_add_sessions_and_take_wall_from_first_open_to_submission():
    first = SessionEvents(OPENED, [*at(0, 1, 3, kind="edit"), *at(70, 71)])  # active 4, editing 3
    second = SessionEvents(OPENED + timedelta(hours=2), [*at(100, 130, 150, kind="edit")])  # active 50, editing 0
    submitted = OPENED + timedelta(hours=2, minutes=5)
    times = case_times([second, first], submitted_at=submitted)
    assert times == CaseTimes(wall_seconds=7500.0, active_seconds=54.0, editing_seconds=3.0, sessions=2)


def test_case_times_use_the_trial_cutoffs():
    session = SessionEvents(OPENED, at(0, 20, 50, kind="edit"))
    times = case_times([session], idle_cutoff_s=25, burst_gap_s=20)
    assert (times.active_seconds, times.editing_seconds) == (20.0, 20.0)


def test_wall_time_is_none_until_submitted():
    times = case_times([SessionEvents(OPENED, at(0, 1))])
    assert times.wall_seconds is None and times.active_seconds == 1.0 and times.sessions == 1
    assert case_times([]) == CaseTimes(wall_seconds=None, active_seconds=0.0, editing_seconds=0.0, sessions=0)


def test_wall_time_from_a_session_submission():
    sessions = [
        SessionEvents(OPENED + timedelta(minutes=1), at(0)),
        SessionEvents(OPENED, at(0), submitted_at=OPENED + timedelta(minutes=30)),
    ]
    assert case_times(sessions).wall_seconds == pytest.approx(1800.0)
