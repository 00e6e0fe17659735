"""The Volcano job's status: upstream's fields with Go's omitempty (zero counters and empty maps are
left out), and the timers (TTL) read from it.

Counters are the observed pods (pods this plan deletes count as terminating, pods it creates as
pending). `lastTransitionTime` moves only when the phase changes, so the TTL clock and re-plans are
stable; `conditions` keeps one entry per phase entered, the latest at the end (upstream)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobwarden.core import faults
from jobwarden.core.timefmt import from_rfc3339, to_rfc3339
from jobwarden.core.timers import earliest, is_due, ttl_due
from jobwarden.kinds.volcano.decision import Decision, Situation
from jobwarden.kinds.volcano.pods import POD_FAILED, POD_PENDING, POD_RUNNING, POD_SUCCEEDED, POD_UNKNOWN
from jobwarden.kinds.volcano.spec import FINISHED_PHASES, RESTARTING, TTL_PHASES, WINDING_DOWN, Task

# The phases upstream reaches through KillJob, which writes `runningDuration`.
KILLED_PHASES = FINISHED_PHASES | WINDING_DOWN.keys() | {RESTARTING}


@dataclass
class Tally:
    phases: Counter[str] = field(default_factory=Counter)
    terminating: int = 0
    tasks: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, task: str, phase: str) -> None:
        self.phases[phase] += 1
        self.tasks.setdefault(task, Counter())[phase] += 1

    def count(self, phase: str) -> int:
        return self.phases[phase]


def tally(situation: Situation, deleted: frozenset[str], to_create: Iterable[tuple[Task, int]] = ()) -> Tally:
    """The pods by phase and task: deleted ones as terminating, ones to create as pending."""
    counted = Tally()
    for pod in situation.pods:
        if pod.terminating or pod.name in deleted:
            counted.terminating += 1
        else:
            counted.add(pod.task_name, pod.phase)
    for task, _ in to_create:
        counted.add(task.name, POD_PENDING)
    return counted


def new_status(situation: Situation, decision: Decision) -> dict[str, Any]:
    counted = tally(situation, decision.deleted, decision.created)
    before = situation.before
    previous = (before.get("state") or {}).get("lastTransitionTime")
    stamp = to_rfc3339(situation.now) if decision.passed or not previous else str(previous)
    state = {"phase": decision.phase, "lastTransitionTime": stamp}
    state.update({k: v for k, v in (("reason", decision.reason), ("message", decision.message)) if v})
    # A refused child write says why the job is stuck (core/faults.py), unless the phase has a
    # reason of its own (a policy's action, a gate): that one is the job's history.
    observed = situation.observed
    refused = faults.summary(observed.faults) if decision.phase not in FINISHED_PHASES else None
    if refused is not None and not decision.reason:
        state["reason"], state["message"] = refused
    conditions = [dict(c) for c in before.get("conditions") or []]
    for phase in decision.passed:  # one entry per phase, the latest at the end (upstream)
        conditions = [c for c in conditions if c.get("status") != phase]
        conditions.append({"status": phase, "lastTransitionTime": stamp})
    numbers: dict[str, int | str | None] = {
        "minAvailable": situation.job.min_available,
        "pending": counted.count(POD_PENDING),
        "running": counted.count(POD_RUNNING),
        "succeeded": counted.count(POD_SUCCEEDED),
        "failed": counted.count(POD_FAILED),
        "terminating": counted.terminating,
        "unknown": counted.count(POD_UNKNOWN),
        "version": decision.version,
        "retryCount": decision.retry_count,
    }
    numbers["runningDuration"] = _running_duration(situation, decision, stamp)
    maps = {
        "controlledResources": dict(sorted(decision.controlled.items())),
        "conditions": conditions,
        "taskStatusCount": {task: {"phase": dict(counts)} for task, counts in counted.tasks.items()},
    }
    # Go's omitempty: zero numbers and empty maps are left out.
    return {
        "state": state,
        **{k: v for k, v in numbers.items() if v},
        **{k: v for k, v in maps.items() if v},
    }


def _running_duration(situation: Situation, decision: Decision, stamp: str) -> str | None:
    """Upstream's `status.runningDuration` (volcano `pkg/controllers/job/job_controller_actions.go`):
    - every kill (killPods: the passes of Restarting, Aborting, Aborted, Completing, Terminating, the
      finished phases, and the actions that lead there) writes it: from the job's creation to the
      state's lastTransitionTime;
    - syncJob, once the PodGroup is admitted, writes a status built afresh without it, so a job that
      runs again after a resume or a restart has none until its next kill;
    - syncJob while the PodGroup waits only moves the phase and keeps it.
    Here: written by a plan that starts in or reaches a phase a kill leads to, dropped by a sync with
    the gate open, kept otherwise."""
    started = str((situation.before.get("state") or {}).get("phase") or "")
    if started not in KILLED_PHASES and decision.phase not in KILLED_PHASES:
        return None if decision.synced else situation.before.get("runningDuration")
    created = from_rfc3339((situation.job.body.get("metadata") or {}).get("creationTimestamp"))
    moved = from_rfc3339(stamp)
    if created is None or moved is None:
        return situation.before.get("runningDuration")
    return go_duration(max(0, int((moved - created).total_seconds())))


def go_duration(seconds: int) -> str:
    """Go's `time.Duration.String` for whole seconds (what metav1.Duration marshals): `0s`, `45s`,
    `1m30s`, `2h0m5s`."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def timers(
    situation: Situation, decision: Decision, status: Mapping[str, Any]
) -> tuple[bool, datetime | None]:
    """(delete the job now, when to look again): the earliest delayed action, and the TTL (counted from
    `status.state.lastTransitionTime`) in Completed, Failed and Terminated."""
    wake = earliest(*decision.wakes)
    if decision.phase in TTL_PHASES:
        finished_at = from_rfc3339(status["state"]["lastTransitionTime"])
        expiry = ttl_due(finished_at, situation.job.ttl_seconds_after_finished)
        if is_due(expiry, situation.now):
            return True, None
        wake = earliest(wake, expiry)
    return False, wake
