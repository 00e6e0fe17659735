"""Leader election decisions (core/lease.py), as client-go's leaderelection makes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobwarden.core.lease import (
    LeaseTimings,
    Observation,
    Record,
    claimed,
    may_take,
    micro_time,
    observe,
    released,
)

WALL = datetime(2026, 11, 30, 20, 0, 0, 123456, tzinfo=UTC)
TIMINGS = LeaseTimings()


def test_defaults_are_controller_runtimes_and_bad_timings_are_refused() -> None:
    assert (TIMINGS.lease_duration, TIMINGS.renew_deadline, TIMINGS.retry_period) == (15, 10, 2)
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaseTimings(lease_duration=10, renew_deadline=10, retry_period=2)
    with pytest.raises(ValueError):
        LeaseTimings(lease_duration=15, renew_deadline=10, retry_period=0)


def test_the_first_candidate_creates_the_lease_as_its_holder() -> None:
    record = claimed(None, "a", TIMINGS, WALL)
    assert record == Record("a", 15, "2026-11-30T20:00:00.123456Z", "2026-11-30T20:00:00.123456Z", 0)
    assert record.to_spec()["holderIdentity"] == "a"


def test_a_renewal_keeps_the_acquire_time_and_the_transition_count() -> None:
    first = claimed(None, "a", TIMINGS, WALL)
    renewed = claimed(first, "a", TIMINGS, WALL + timedelta(seconds=2))
    assert renewed.acquire_time == first.acquire_time
    assert renewed.renew_time == micro_time(WALL + timedelta(seconds=2))
    assert renewed.transitions == 0


def test_a_takeover_counts_a_transition() -> None:
    held = Record("a", 15, "t0", "t1", 3)
    taken = claimed(held, "b", TIMINGS, WALL)
    assert (taken.holder, taken.transitions, taken.acquire_time) == ("b", 4, micro_time(WALL))


def test_a_held_lease_is_taken_only_after_its_duration_on_the_candidates_own_clock() -> None:
    held = Record("a", 15, "t0", "t1", 0)
    seen = observe(None, held, now=100.0)
    assert not may_take(seen, "b", now=100.0)
    assert not may_take(seen, "b", now=114.9)
    assert may_take(seen, "b", now=115.0)


def test_every_renewal_seen_restarts_the_candidates_clock() -> None:
    seen = observe(None, Record("a", 15, "t0", "t1", 0), now=100.0)
    assert observe(seen, Record("a", 15, "t0", "t1", 0), now=110.0) is seen  # unchanged: same clock
    renewed = observe(seen, Record("a", 15, "t0", "t2", 0), now=110.0)
    assert renewed == Observation(Record("a", 15, "t0", "t2", 0), 110.0)
    assert not may_take(renewed, "b", now=120.0)


def test_a_free_or_own_lease_may_be_taken_at_once() -> None:
    assert may_take(observe(None, Record(), now=1.0), "b", now=1.0)
    assert may_take(observe(None, Record("b", 15, "t0", "t1", 0), now=1.0), "b", now=1.0)


def test_a_released_lease_has_no_holder_and_a_one_second_duration() -> None:
    held = Record("a", 15, "t0", "t1", 2)
    gone = released(held, WALL)
    assert gone.holder == "" and gone.lease_duration_seconds == 1 and gone.transitions == 2
    assert "holderIdentity" not in gone.to_spec()
    assert may_take(observe(None, gone, now=5.0), "b", now=5.0)


def test_a_record_round_trips_through_the_lease_spec() -> None:
    record = Record("a", 15, "2026-11-30T20:00:00.000000Z", "2026-11-30T20:00:02.000000Z", 1)
    assert Record.from_spec(record.to_spec()) == record
    assert Record.from_spec(None) == Record()
