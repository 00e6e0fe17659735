"""The explicit inputs and outputs of one Volcano plan.

`Situation` is what one observation shows (never changed); `Decision` is what the plan has decided so
far. Every step of the state machine is a function `(Situation, Decision) -> Decision`: it reads what
earlier steps decided (the pods they delete, the phases entered, the job's version…) from its input
and returns a new Decision, so what a step depends on and what it changes is in its signature."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobwarden.core import faults
from jobwarden.core.plan import ChildRef, Event, Manifest, Observed
from jobwarden.kinds.volcano.pods import PodView, read_pods
from jobwarden.kinds.volcano.spec import KNOWN_PHASES, Task, VolcanoJob, read_job


@dataclass(frozen=True)
class Situation:
    """One observation of the job, read once."""

    observed: Observed
    job: VolcanoJob
    pods: tuple[PodView, ...]  # in task order then index order
    before: Mapping[str, Any]  # the job's status as observed

    @classmethod
    def of(cls, observed: Observed) -> Situation:
        job = read_job(observed.job)
        return cls(observed, job, tuple(read_pods(job, observed.pods)), observed.job.get("status") or {})

    @property
    def now(self) -> datetime:
        return self.observed.now


@dataclass(frozen=True)
class Decision:
    """The job's new state and what the plan does about it, as decided so far."""

    phase: str
    reason: str
    message: str
    version: int
    retry_count: int
    controlled: Mapping[str, str]  # status.controlledResources
    passed: tuple[str, ...] = ()  # phases entered by this plan, in order
    deleted: frozenset[str] = frozenset()  # pods this plan deletes
    created: tuple[tuple[Task, int], ...] = ()  # pods this plan creates
    wakes: tuple[datetime, ...] = ()  # instants to look again at (delayed policy actions)
    # The pods were synced with the gate open: upstream's syncJob then builds the status afresh
    # (without `runningDuration`, status.py).
    synced: bool = False
    create: tuple[Manifest, ...] = ()
    replace: tuple[Manifest, ...] = ()
    patch: tuple[Manifest, ...] = ()
    delete: tuple[ChildRef, ...] = ()
    events: tuple[Event, ...] = ()

    @classmethod
    def start(cls, situation: Situation) -> Decision:
        """The state the status records; an unknown phase is "" (upstream treats it as Pending, and
        the plan says so)."""
        before = situation.before
        state = before.get("state") or {}
        phase = str(state.get("phase") or "")
        reason, message = str(state.get("reason") or ""), str(state.get("message") or "")
        if reason in faults.FAULT_REASONS:  # shown while a child write was refused; recomputed by status
            reason = message = ""
        return cls(
            phase=phase if phase in KNOWN_PHASES else "",
            reason=reason,
            message=message,
            version=int(before.get("version") or 0),
            retry_count=int(before.get("retryCount") or 0),
            controlled=dict(before.get("controlledResources") or {}),
        )

    def move(self, phase: str, reason: str = "", message: str = "") -> Decision:
        passed = self.passed if phase == self.phase else (*self.passed, phase)
        return dataclasses.replace(self, phase=phase, reason=reason, message=message, passed=passed)

    def changed(self, **fields: Any) -> Decision:
        return dataclasses.replace(self, **fields)

    def adding(
        self,
        *,
        create: Iterable[Manifest] = (),
        replace: Iterable[Manifest] = (),
        patch: Iterable[Manifest] = (),
        delete: Iterable[ChildRef] = (),
        events: Iterable[Event] = (),
        wakes: Iterable[datetime] = (),
    ) -> Decision:
        return dataclasses.replace(
            self,
            create=(*self.create, *create),
            replace=(*self.replace, *replace),
            patch=(*self.patch, *patch),
            delete=(*self.delete, *delete),
            events=(*self.events, *events),
            wakes=(*self.wakes, *wakes),
        )

    def deleting_pods(self, pods: Iterable[PodView]) -> Decision:
        """Delete these pods, unless already terminating or deleted by this plan."""
        deleted, refs = set(self.deleted), []
        for pod in pods:
            if not pod.terminating and pod.name not in deleted:
                deleted.add(pod.name)
                refs.append(ChildRef("Pod", pod.name))
        return dataclasses.replace(self, deleted=frozenset(deleted), delete=(*self.delete, *refs))


def live_pods(situation: Situation, decision: Decision) -> list[PodView]:
    """Pods that can raise events: expected, current version, not terminating, not being deleted."""
    return [
        p
        for p in situation.pods
        if p.task is not None
        and not p.terminating
        and p.name not in decision.deleted
        and p.version >= decision.version
    ]
