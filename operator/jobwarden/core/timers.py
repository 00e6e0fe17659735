"""Due times for the run-policy clocks, computed only from timestamps stored in `status`, so an
operator restart loses nothing: the next reconcile recomputes the same instants."""

from __future__ import annotations

from datetime import datetime, timedelta


def deadline_due(start_time: datetime | None, active_deadline_seconds: int | None) -> datetime | None:
    """When a running job exceeds `activeDeadlineSeconds` (counted from `status.startTime`)."""
    if start_time is None or active_deadline_seconds is None:
        return None
    return start_time + timedelta(seconds=active_deadline_seconds)


def ttl_due(finished_at: datetime | None, ttl_seconds_after_finished: int | None) -> datetime | None:
    """When a finished job is deleted (`finished_at`: completionTime, or Volcano's lastTransitionTime)."""
    if finished_at is None or ttl_seconds_after_finished is None:
        return None
    return finished_at + timedelta(seconds=ttl_seconds_after_finished)


def is_due(due: datetime | None, now: datetime) -> bool:
    return due is not None and now >= due


def earliest(*moments: datetime | None) -> datetime | None:
    """The first of several optional wake-up times (None when there is none)."""
    present = [m for m in moments if m is not None]
    return min(present) if present else None
