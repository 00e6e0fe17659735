"""Policies: events derived from the observed state, and the first policy each one triggers (event →
action).

Events (only pods of the current version that are not terminating): `PodFailed` (a Failed pod; exit
code of the first container), `PodEvicted` (a Failed pod with reason `Evicted` or a `DisruptionTarget`
condition; it is also a PodFailed), `PodPending` (matches only a policy with a timeout), `TaskCompleted`
(every replica Succeeded), `TaskFailed` (container restarts of the task's pending and running pods
reached the task's `maxRetry`), `Unknown` (the PodGroup's phase). A policy with `timeout` fires at the
event's own time (the pod's termination or creation time) plus the timeout; until then the plan wakes
at that instant, and the delayed action is dropped if the state that caused it goes away."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from jobwarden.core.pods import in_place_restarts
from jobwarden.core.timefmt import from_rfc3339
from jobwarden.kinds.volcano.decision import Decision, Situation, live_pods
from jobwarden.kinds.volcano.pods import EPOCH, POD_FAILED, POD_PENDING, POD_RUNNING, POD_SUCCEEDED, PodView
from jobwarden.kinds.volcano.spec import (
    POD_EVICTED,
    POD_FAILED_EVENT,
    POD_PENDING_EVENT,
    RESTART_PARTITION,
    RESTART_POD,
    TASK_COMPLETED,
    TASK_FAILED,
    UNKNOWN_EVENT,
    Policy,
    Task,
    VolcanoJob,
)


@dataclass(frozen=True)
class Occurrence:
    event: str
    task: Task | None
    pod: PodView | None
    exit_code: int | None
    since: datetime  # when it happened: a policy timeout counts from here
    description: str


@dataclass(frozen=True)
class Trigger:
    """An occurrence whose policy is due: its action runs now."""

    occurrence: Occurrence
    action: str


def pod_occurrences(task: Task, pod: PodView) -> Iterator[Occurrence]:
    if pod.phase == POD_FAILED:
        if pod.evicted:
            yield Occurrence(
                POD_EVICTED, task, pod, None, pod.last_termination, f"Pod {pod.name} was evicted"
            )
        code = pod.exit_code
        detail = f" with exit code {code}" if code is not None else ""
        yield Occurrence(
            POD_FAILED_EVENT, task, pod, code, pod.last_termination, f"Pod {pod.name} failed{detail}"
        )
    elif pod.phase == POD_PENDING:
        yield Occurrence(POD_PENDING_EVENT, task, pod, None, pod.created_at, f"Pod {pod.name} is pending")


def task_occurrences(task: Task, pods: Sequence[PodView]) -> Iterator[Occurrence]:
    """`pods`: the task's live pods of the current version."""
    succeeded = [p for p in pods if p.phase == POD_SUCCEEDED]
    if task.replicas and len(succeeded) == task.replicas:
        since = max(p.last_termination for p in succeeded)
        yield Occurrence(TASK_COMPLETED, task, None, None, since, f"Task {task.name} completed")
    active = [p for p in pods if p.phase in (POD_PENDING, POD_RUNNING)]
    restarts = sum(in_place_restarts(p.body) for p in active)
    if active and restarts >= task.max_retry:
        since = max(p.last_termination for p in active)
        message = f"Task {task.name} restarted containers {restarts} times (maxRetry {task.max_retry})"
        yield Occurrence(TASK_FAILED, task, None, None, since, message)


def first_match(occurrence: Occurrence, job: VolcanoJob) -> Policy | None:
    """Task policies first, then job policies; the first that matches wins (upstream `applyPolicies`)."""
    task_policies = occurrence.task.policies if occurrence.task else ()
    return next(
        (p for p in (*task_policies, *job.policies) if p.matches(occurrence.event, occurrence.exit_code)),
        None,
    )


def occurrences(situation: Situation, decision: Decision) -> Iterator[Occurrence]:
    yield from _podgroup_occurrences(situation)
    live = live_pods(situation, decision)
    for task in situation.job.tasks:
        pods = [p for p in live if p.task_name == task.name]
        for pod in pods:
            yield from pod_occurrences(task, pod)
        yield from task_occurrences(task, pods)


def _podgroup_occurrences(situation: Situation) -> Iterator[Occurrence]:
    name = situation.job.podgroup_name
    group = situation.observed.of_kind("PodGroup").get(name)
    if group is not None and (group.get("status") or {}).get("phase") == UNKNOWN_EVENT:
        created = from_rfc3339((group.get("metadata") or {}).get("creationTimestamp")) or EPOCH
        yield Occurrence(UNKNOWN_EVENT, None, None, None, created, f"PodGroup {name} is Unknown")


def due_triggers(situation: Situation, decision: Decision) -> tuple[list[Trigger], list[datetime]]:
    """Every policy match that is due now, and the due times of the others (to wake up at)."""
    due, wakes = [], []
    for occurrence in occurrences(situation, decision):
        policy = first_match(occurrence, situation.job)
        if policy is None:
            continue
        at = occurrence.since + policy.timeout if policy.timeout is not None else None
        if at is None or situation.now >= at:
            due.append(Trigger(occurrence, policy.action))
        else:
            wakes.append(at)
    return due, wakes


def restart_targets(situation: Situation, decision: Decision, trigger: Trigger) -> list[PodView]:
    """RestartPod: the pod; RestartPartition: the pod's partition; RestartTask (or an event with no
    pod): the task's pods."""
    occurrence, live = trigger.occurrence, live_pods(situation, decision)
    pod = occurrence.pod
    if pod is not None and trigger.action == RESTART_POD:
        return [pod]
    if pod is not None and trigger.action == RESTART_PARTITION and pod.partition is not None:
        return [p for p in live if p.task_name == pod.task_name and p.partition == pod.partition]
    return [p for p in live if occurrence.task is not None and p.task_name == occurrence.task.name]
