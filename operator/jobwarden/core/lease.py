"""Leader election on a `coordination.k8s.io/v1` Lease: the decisions, as client-go's leaderelection
makes them (pure; the shell reads and writes the Lease).

A candidate observes the Lease's record and remembers, on its own monotonic clock, when the record
last changed. It may take the Lease when nobody holds it, when it holds it itself (a renewal), or when
the holder has not renewed for `leaseDurationSeconds` of the candidate's own time (no clock skew
between replicas matters: only the candidate's clock is read). Every write is a replace fenced by the
Lease's resourceVersion, so two candidates never both win the same round."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class LeaseTimings:
    """controller-runtime's defaults: a 15 s lease, renewed within 10 s, retried every 2 s."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election timings need 0 < retry period < renew deadline < lease duration, "
                f"got {self.retry_period} / {self.renew_deadline} / {self.lease_duration}"
            )


@dataclass(frozen=True)
class Record:
    """The Lease's spec as leader election uses it."""

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> Record:
        spec = spec or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder or None,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }
        return {k: v for k, v in spec.items() if v is not None}


@dataclass(frozen=True)
class Observation:
    """The last record seen and when (monotonic seconds) it was first seen in that form."""

    record: Record
    since: float


def observe(previous: Observation | None, record: Record, now: float) -> Observation:
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


def may_take(observation: Observation, identity: str, now: float) -> bool:
    """Free, ours, or expired on our own clock."""
    record = observation.record
    if not record.holder or record.holder == identity:
        return True
    return now >= observation.since + max(record.lease_duration_seconds, 1)


def claimed(previous: Record | None, identity: str, timings: LeaseTimings, wall: datetime) -> Record:
    """The record to write to take or renew the Lease (`previous` None: the Lease does not exist)."""
    stamp = micro_time(wall)
    duration = max(1, round(timings.lease_duration))
    if previous is None:
        return Record(identity, duration, stamp, stamp, 0)
    if previous.holder == identity:
        return replace(previous, lease_duration_seconds=duration, renew_time=stamp)
    return Record(identity, duration, stamp, stamp, previous.transitions + 1)


def released(previous: Record, wall: datetime) -> Record:
    """What a leader writes on a graceful stop so that a standby takes over at its next retry
    (client-go's ReleaseOnCancel: no holder, a 1 s lease)."""
    stamp = micro_time(wall)
    return Record("", 1, stamp, stamp, previous.transitions)


def micro_time(wall: datetime) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    return wall.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
