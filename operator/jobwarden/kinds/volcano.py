"""The decision core for Volcano's batch Job (`batch.volcano.sh/v1alpha1`, kind `Job`).

jobwarden runs Volcano jobs without Volcano installed, and cooperates with Volcano's scheduler when it
is (`Settings.volcano_scheduler_installed`). A plan follows upstream's job controller (volcano-job
spec §4, §5), made level-triggered: upstream reacts to a stream of pod events, a plan sees the pods as
they are now, so it derives the events from their state.

A plan, by the job's phase (an empty or unknown phase starts as Pending):
1. Pending, Inqueue, Running: the first policy that matches a derived event and is due fires its
   action (below). Otherwise the job syncs: pods of an older job version and pods above `replicas`
   (highest index first) are deleted; while the gate is open, the missing `<job>-<task>-<i>` pods are
   created (a task's pods only once its `dependsOn` tasks are ready); plugin children and the PodGroup
   are created or updated; then the phase follows the counts (§5.3 in Running).
2. Restarting: pods of the old version (and the targets of a pod/task restart) are deleted; the job
   goes back to Pending once enough of them are gone, or fails when `retryCount` reached `maxRetry`.
3. Aborting, Completing, Terminating: pods that are not Succeeded or Failed are deleted, and the
   job moves to Aborted, Completed, Terminated once no pod is pending, running or terminating.
4. Aborted, Completed, Failed, Terminated: the same clean-up; after `ttlSecondsAfterFinished`
   (counted from `status.state.lastTransitionTime`, not for Aborted) the job is deleted.
The whole-job actions (RestartJob, AbortJob, CompleteJob, TerminateJob) bump `status.version`; pods
carry the version in `volcano.sh/job-version`, so pods of an older version never trigger a policy.
Those actions, and reaching a finished phase, delete the PodGroup and the plugins' children and drop
their `plugin-*` keys, as upstream; Pending makes them again after a restart (a new ssh key).

Events derived from state (only pods of the current version that are not terminating):
`PodFailed` (a Failed pod; exit code of the first container), `PodEvicted` (a Failed pod with reason
`Evicted` or a `DisruptionTarget` condition; it is also a PodFailed), `PodPending` (matches only a
policy with a timeout), `TaskCompleted` (every replica Succeeded), `TaskFailed` (container restarts of
the task's pending and running pods reached the task's `maxRetry`), `Unknown` (the PodGroup's phase).
A policy with `timeout` fires at the event's own time (the pod's termination or creation time) plus
the timeout; until then `wake_at` is that instant, and the delayed action is dropped if the state that
caused it goes away. The action is what records that an event was handled: every action leaves the
phases where policies apply, or bumps the version, or deletes the pods that caused it; Restarting waits
until a restarted pod is gone, so the cache showing it once more does not restart it again.

Scheduling (§4.3 step 4: pods only once the PodGroup is admitted):
- Volcano installed: the PodGroup `<job>-<uid>` is created, and pods only once its phase is set and not
  Pending. The job is Pending until then (a Warning `PodGroupPending` when the PodGroup is unschedulable),
  Inqueue after, Running once `minAvailable` pods run or finished.
- Not installed, fallback on (default): the job is admitted at once (Pending → Inqueue → Running) and
  pods asking for the `volcano` scheduler (explicitly or by default) get `default-scheduler`; a pod
  template naming another scheduler keeps it. One Warning `SchedulerFallback` on the first admission.
- Not installed, fallback off: the job stays Pending, no pods, a Warning `VolcanoNotInstalled`.

Status: upstream's fields with Go's omitempty (zero counters and empty maps are left out). Counters
are the observed pods (pods this plan deletes count as terminating, pods it creates as pending).

Differences from upstream, on purpose:
- `Inqueue` is a job phase (the seeds show it; upstream dropped it): Pending with the gate open.
- `lastTransitionTime` moves only when the phase changes (upstream: on any status change), so the
  TTL clock and re-plans are stable. `state.reason`/`state.message` (never written upstream) say why:
  the action and the event behind it, or why the job is Pending.
- Counters are never reset by a kill (upstream zeroes them); a finished phase does not bump the version
  on every sync; `runningDuration` is not written.
- Delayed actions: no `Execute action <A> after <d>` event (scheduling is implicit in `wake_at`).
- Policies are consulted in Pending, Inqueue and Running only (plus pod and task restarts while
  Restarting): elsewhere upstream's actions only repeat the kill already under way. Restarting creates
  no pods; Pending does, on the next plan.
- Commands (`bus.volcano.sh`: vcctl suspend/resume) are not watched, so ResumeJob never runs; the
  `mpi`, `pytorch`, `tensorflow`, `ray` and `hcclrank` plugins are not implemented (a Warning
  `PluginError` on the first plan says so); PVCs are not created (`volumes[].volumeClaim` gives a
  Warning `PVCError`; a `volumeClaimName` is mounted into every container as upstream).
- Job-level defaults of Volcano's mutating webhook are applied when reading (never written back):
  queue `default`, scheduler `volcano`, `maxRetry` 0 → 3, task `minAvailable` = replicas (or
  minPartitions * partitionSize), job `minAvailable` 0 → the tasks' sum. As nothing stores them, a
  scale moves the defaulted minimums with the replicas.
- PodGroup `minResources`: the summed requests (limits where a request is missing) of the first
  `minAvailable` pods in task order (upstream orders tasks by PriorityClass value, which a pure plan
  cannot read); `subGroupPolicy` for partitioned tasks is not written.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from jobwarden.core import faults
from jobwarden.core.children import child_metadata, manifest
from jobwarden.core.fielderrors import FieldError
from jobwarden.core.plan import WATCHED_CHILD_KINDS, Body, ChildRef, Event, Manifest, Observed, Plan
from jobwarden.core.pods import in_place_restarts, is_terminating, pod_phase
from jobwarden.core.quantity import parse_quantity, quantities_equal
from jobwarden.core.timefmt import from_rfc3339, to_rfc3339
from jobwarden.core.timers import earliest, is_due, ttl_due
from jobwarden.kinds.base import Resource
from jobwarden.kinds.volcano_validation import VOLCANO_UPDATABLE, check_volcano_update, validate_volcano
from jobwarden.plugins.base import JOB_NAME_LABEL, JOB_NAMESPACE_LABEL, DesiredChild, JobContext, pod_name
from jobwarden.plugins.registry import PluginSet, build_plugins

RESOURCE = Resource(group="batch.volcano.sh", version="v1alpha1", plural="jobs", kind="Job")
PODGROUP_API_VERSION = "scheduling.volcano.sh/v1beta1"
VOLCANO_SCHEDULER = "volcano"
DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_QUEUE = "default"
DEFAULT_MAX_RETRY = 3

# Pod labels and annotations (upstream `createJobPod`, spec §4.4).
TASK_INDEX_KEY = "volcano.sh/task-index"
TASK_SPEC_KEY = "volcano.sh/task-spec"
QUEUE_NAME_KEY = "volcano.sh/queue-name"
JOB_VERSION_KEY = "volcano.sh/job-version"
TEMPLATE_UID_KEY = "volcano.sh/template-uid"
JOB_RETRY_COUNT_KEY = "volcano.sh/job-retry-count"
GROUP_NAME_KEY = "scheduling.k8s.io/group-name"
TOPOLOGY_POLICY_KEY = "volcano.sh/numa-topology-policy"
PARTITION_ID_KEY = "volcano.sh/partition-id"
COPIED_JOB_LABELS = ("volcano.sh/preemptable", "volcano.sh/cooldown-time")
COPIED_JOB_ANNOTATIONS = ("volcano.sh/preemptable", "volcano.sh/cooldown-time", "volcano.sh/revocable-zone")
DISRUPTION_BUDGET_ANNOTATIONS = ("volcano.sh/jdb-min-available", "volcano.sh/jdb-max-unavailable")

# Job phases.
PENDING, INQUEUE, RUNNING, RESTARTING = "Pending", "Inqueue", "Running", "Restarting"
ABORTING, ABORTED, COMPLETING, COMPLETED = "Aborting", "Aborted", "Completing", "Completed"
TERMINATING, TERMINATED, FAILED = "Terminating", "Terminated", "Failed"
ACTIVE_PHASES = frozenset({PENDING, INQUEUE, RUNNING})
WINDING_DOWN = {ABORTING: ABORTED, COMPLETING: COMPLETED, TERMINATING: TERMINATED}
FINISHED_PHASES = frozenset({ABORTED, COMPLETED, FAILED, TERMINATED})
TTL_PHASES = frozenset({COMPLETED, FAILED, TERMINATED})
KNOWN_PHASES = ACTIVE_PHASES | {RESTARTING} | WINDING_DOWN.keys() | FINISHED_PHASES

# Pod phases.
POD_PENDING, POD_RUNNING, POD_SUCCEEDED, POD_FAILED = "Pending", "Running", "Succeeded", "Failed"
POD_UNKNOWN = "Unknown"
FINISHED_POD_PHASES = frozenset({POD_SUCCEEDED, POD_FAILED})

# Policy events and actions (bus/v1alpha1).
ANY_EVENT = "*"
POD_FAILED_EVENT, POD_EVICTED, POD_PENDING_EVENT = "PodFailed", "PodEvicted", "PodPending"
TASK_COMPLETED, TASK_FAILED, UNKNOWN_EVENT = "TaskCompleted", "TaskFailed", "Unknown"
RESTART_JOB, RESTART_TASK, RESTART_POD = "RestartJob", "RestartTask", "RestartPod"
RESTART_PARTITION = "RestartPartition"
PARTIAL_RESTARTS = frozenset({RESTART_TASK, RESTART_POD, RESTART_PARTITION})
ENDING_ACTIONS = {"AbortJob": ABORTING, "CompleteJob": COMPLETING, "TerminateJob": TERMINATING}
# ResumeJob only acts in Aborting/Aborted, where policies are not consulted: it never runs here.
EXECUTABLE_ACTIONS = frozenset({RESTART_JOB, *PARTIAL_RESTARTS, *ENDING_ACTIONS})

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# The job in its defaulted view (Volcano's mutating-webhook defaults, applied in memory).


@dataclass(frozen=True)
class Policy:
    events: frozenset[str]
    action: str
    exit_code: int | None
    timeout: timedelta | None

    def matches(self, event: str, exit_code: int | None) -> bool:
        if self.exit_code is not None:
            return event == POD_FAILED_EVENT and exit_code == self.exit_code
        if event == POD_PENDING_EVENT and self.timeout is None:
            return False  # upstream: a pending pod is an event only to a policy that waits
        return event in self.events or ANY_EVENT in self.events


@dataclass(frozen=True)
class Task:
    name: str
    replicas: int
    min_available: int
    template: Mapping[str, Any]
    policies: tuple[Policy, ...]
    max_retry: int
    depends_on: tuple[str, ...]
    depends_on_any: bool
    partition_size: int | None
    topology_policy: str


@dataclass(frozen=True)
class VolcanoJob:
    body: Body
    tasks: tuple[Task, ...]
    min_available: int
    min_success: int | None
    max_retry: int
    queue: str
    scheduler_name: str
    priority_class_name: str
    policies: tuple[Policy, ...]
    ttl_seconds_after_finished: int | None
    claims: tuple[tuple[str, str], ...]  # (volumeClaimName, mountPath)
    plugins: PluginSet
    context: JobContext

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def podgroup_name(self) -> str:
        return f"{self.name}-{self.body['metadata']['uid']}"

    @property
    def total_replicas(self) -> int:
        return sum(t.replicas for t in self.tasks)

    def task(self, name: str) -> Task | None:
        return next((t for t in self.tasks if t.name == name), None)


_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> timedelta | None:
    """Go's `time.ParseDuration` (`90s`, `1h30m`, `1.5h`, `0`); None when malformed."""
    body = text.strip().lstrip("+")
    if body == "0":
        return timedelta(0)
    if not _DURATION.fullmatch(body):
        return None
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(body)))


def read_policies(raw: Any) -> tuple[Policy, ...]:
    policies = []
    for item in raw or []:
        events = frozenset([*(item.get("events") or []), *([item["event"]] if item.get("event") else [])])
        exit_code = item.get("exitCode")
        timeout = parse_duration(str(item["timeout"])) if item.get("timeout") else None
        code = int(exit_code) if exit_code is not None else None
        policies.append(Policy(events, str(item.get("action") or ""), code, timeout))
    return tuple(policies)


def read_task(raw: Mapping[str, Any], position: int) -> Task:
    replicas = int(raw.get("replicas") or 0)
    partition = raw.get("partitionPolicy") or {}
    partition_size = int(partition.get("partitionSize") or 0) or None
    min_available = raw.get("minAvailable")
    if min_available is None:
        min_partitions = int(partition.get("minPartitions") or 0)
        min_available = min_partitions * partition_size if min_partitions and partition_size else replicas
    depends = raw.get("dependsOn") or {}
    return Task(
        name=str(raw.get("name") or f"default{position}"),
        replicas=replicas,
        min_available=int(min_available),
        template=raw.get("template") or {},
        policies=read_policies(raw.get("policies")),
        max_retry=int(raw.get("maxRetry") or 0) or DEFAULT_MAX_RETRY,
        depends_on=tuple(depends.get("name") or ()),
        depends_on_any=depends.get("iteration") == "any",
        partition_size=partition_size,
        topology_policy=str(raw.get("topologyPolicy") or ""),
    )


def read_job(body: Body) -> VolcanoJob:
    spec = body.get("spec") or {}
    tasks = tuple(read_task(raw, i) for i, raw in enumerate(spec.get("tasks") or []))
    min_success = spec.get("minSuccess")
    ttl = spec.get("ttlSecondsAfterFinished")
    claims = tuple(
        (str(v["volumeClaimName"]), str(v.get("mountPath") or ""))
        for v in spec.get("volumes") or []
        if v.get("volumeClaimName")
    )
    return VolcanoJob(
        body=body,
        tasks=tasks,
        min_available=int(spec.get("minAvailable") or 0) or sum(t.min_available for t in tasks),
        min_success=int(min_success) if min_success is not None else None,
        max_retry=int(spec.get("maxRetry") or 0) or DEFAULT_MAX_RETRY,
        queue=str(spec.get("queue") or DEFAULT_QUEUE),
        scheduler_name=str(spec.get("schedulerName") or VOLCANO_SCHEDULER),
        priority_class_name=str(spec.get("priorityClassName") or ""),
        policies=read_policies(spec.get("policies")),
        ttl_seconds_after_finished=int(ttl) if ttl is not None else None,
        claims=claims,
        plugins=build_plugins(spec.get("plugins") or {}),
        context=JobContext.of(body),
    )


# ---------------------------------------------------------------------------------------------
# Observed pods.


@dataclass(frozen=True)
class PodView:
    name: str
    body: Body
    task: Task | None  # the task whose expected pod this is; None above replicas or for an unknown task
    index: int

    @property
    def phase(self) -> str:
        return pod_phase(self.body)

    @property
    def terminating(self) -> bool:
        return is_terminating(self.body)

    @property
    def annotations(self) -> Mapping[str, str]:
        return (self.body.get("metadata") or {}).get("annotations") or {}

    @property
    def task_name(self) -> str:
        return self.task.name if self.task else str(self.annotations.get(TASK_SPEC_KEY) or "")

    @property
    def version(self) -> int:
        try:
            return int(self.annotations.get(JOB_VERSION_KEY) or 0)
        except ValueError:
            return 0

    @property
    def partition(self) -> str | None:
        return ((self.body.get("metadata") or {}).get("labels") or {}).get(PARTITION_ID_KEY)

    @property
    def created_at(self) -> datetime:
        return from_rfc3339((self.body.get("metadata") or {}).get("creationTimestamp")) or EPOCH

    @property
    def exit_code(self) -> int | None:
        """Upstream reads the first container only ("only one container pod is supported")."""
        statuses = (self.body.get("status") or {}).get("containerStatuses") or []
        terminated = ((statuses[0].get("state") or {}).get("terminated") or {}) if statuses else {}
        code = terminated.get("exitCode")
        return int(code) if code is not None else None

    @property
    def evicted(self) -> bool:
        status = self.body.get("status") or {}
        disrupted = any(
            c.get("type") == "DisruptionTarget" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        return status.get("reason") == "Evicted" or disrupted

    @property
    def last_termination(self) -> datetime:
        """When a container last terminated (now or before a restart), else the pod's creation."""
        status = self.body.get("status") or {}
        moments = [
            from_rfc3339(((s.get(key) or {}).get("terminated") or {}).get("finishedAt"))
            for s in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
            for key in ("state", "lastState")
        ]
        return max((m for m in moments if m is not None), default=self.created_at)

    @property
    def ready(self) -> bool:
        statuses = (self.body.get("status") or {}).get("containerStatuses") or []
        return self.phase == POD_RUNNING and bool(statuses) and all(s.get("ready") for s in statuses)


def _task_index(pod: Body) -> int:
    """The index of a pod that matches no expected name (annotation, else the name's last part)."""
    meta = pod.get("metadata") or {}
    name_suffix = str(meta.get("name", "")).rsplit("-", 1)[-1]
    text = str((meta.get("annotations") or {}).get(TASK_INDEX_KEY) or name_suffix)
    return int(text) if text.isdigit() else -1


def read_pods(job: VolcanoJob, pods: Mapping[str, Body]) -> list[PodView]:
    """The observed pods, in task order then index order."""
    slots = {pod_name(job.name, t.name, i): (t, i) for t in job.tasks for i in range(t.replicas)}
    views = [
        PodView(name, body, *slots[name]) if name in slots else PodView(name, body, None, _task_index(body))
        for name, body in pods.items()
    ]
    order = {t.name: position for position, t in enumerate(job.tasks)}
    return sorted(views, key=lambda p: (order.get(p.task_name, len(order)), p.index, p.name))


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


# ---------------------------------------------------------------------------------------------
# Events derived from state, and the policies they trigger.


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


# ---------------------------------------------------------------------------------------------
# Quantities for the PodGroup's minResources.


def pod_requests(template: Mapping[str, Any]) -> dict[str, Fraction]:
    """Requests summed over the containers; a resource with a limit but no request counts its limit
    (what Kubernetes defaults the request to)."""
    total: dict[str, Fraction] = {}
    for container in (template.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        for name, value in {**(resources.get("limits") or {}), **(resources.get("requests") or {})}.items():
            try:
                total[name] = total.get(name, Fraction(0)) + parse_quantity(value)
            except ValueError:
                continue
    return total


_BINARY_SUFFIXES = (("Ei", 1024**6), ("Pi", 1024**5), ("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2))


def format_quantity(value: Fraction) -> str:
    """A short exact quantity: `3`, `750m`, `3Gi` (binary suffixes from Mi up), else plain bytes."""
    if value.denominator == 1:
        number = value.numerator
        for suffix, unit in _BINARY_SUFFIXES:
            if number and number % unit == 0:
                return f"{number // unit}{suffix}"
        return str(number)
    millis = value * 1000
    if millis.denominator == 1:
        return f"{millis.numerator}m"
    return f"{millis.numerator * 1_000_000 // millis.denominator}n"  # finer than 1m: nanos, rounded down


def same_resources(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Equal by value, so the apiserver's canonical form (`1024Mi` → `1Gi`, `1000m` → `1`) is no change."""
    return live.keys() == desired.keys() and all(quantities_equal(live[k], desired[k]) for k in desired)


# ---------------------------------------------------------------------------------------------
# The kind.


class VolcanoKind:
    """The Volcano Job kind; see the module docstring for what it decides and how."""

    resource: Resource = RESOURCE
    job_name_label: str = JOB_NAME_LABEL

    def validate(self, job: Body) -> list[FieldError]:
        return validate_volcano(job)

    def check_update(self, old: Body, new: Body) -> list[FieldError]:
        return check_volcano_update(old, new)

    def updatable_fields(self) -> list[str]:
        return list(VOLCANO_UPDATABLE)

    def phase(self, status: Mapping[str, Any] | None) -> str:
        """The STATUS printer column: `status.state.phase`."""
        return str(((status or {}).get("state") or {}).get("phase", ""))

    def plan(self, observed: Observed) -> Plan:
        if (observed.job.get("metadata") or {}).get("deletionTimestamp"):
            return Plan()  # being deleted: the garbage collector removes the children
        return _Pass(observed).run()


KIND = VolcanoKind()


@dataclass(frozen=True)
class Gate:
    """Whether pods may be created (§4.3 step 4), and if not, why (for `state.reason`/`message`)."""

    open: bool
    reason: str = ""
    message: str = ""


class _Pass:
    """Plans one job from one observation; `run()` fills and returns `self.plan`."""

    def __init__(self, observed: Observed) -> None:
        self.observed = observed
        self.now = observed.now
        self.job = read_job(observed.job)
        self.pods = read_pods(self.job, observed.pods)
        self.before: Mapping[str, Any] = observed.job.get("status") or {}
        state = self.before.get("state") or {}
        self.phase = str(state.get("phase") or "")
        if self.phase not in KNOWN_PHASES:
            self.phase = ""  # upstream treats an unknown phase as Pending; "" makes the plan say so
        self.reason = str(state.get("reason") or "")
        self.message = str(state.get("message") or "")
        if self.reason in faults.FAULT_REASONS:  # shown while a child write was refused; recomputed below
            self.reason = self.message = ""
        self.version = int(self.before.get("version") or 0)
        self.retry_count = int(self.before.get("retryCount") or 0)
        self.controlled: dict[str, str] = dict(self.before.get("controlledResources") or {})
        self.passed: list[str] = []  # phases entered by this plan, in order
        self.deleted: set[str] = set()  # pods this plan deletes
        self.created: list[tuple[Task, int]] = []  # pods this plan creates
        self.wakes: list[datetime] = []
        self.plan = Plan()

    def run(self) -> Plan:
        if not self.phase:
            self._report_unsupported()
            self._move(PENDING)
        if self.phase in ACTIVE_PHASES:
            self._active()
        elif self.phase == RESTARTING:
            self._restarting()
        else:
            self._wind_down()
        status = self._status()
        self.plan.status = status if status != self.before else None
        self._set_timers(status)
        return self.plan

    # -- Pending, Inqueue, Running ------------------------------------------------------------

    def _active(self) -> None:
        trigger = next((t for t in self._due_triggers() if t.action in EXECUTABLE_ACTIONS), None)
        if trigger is not None:
            self._execute(trigger)
        else:
            self._sync()

    def _execute(self, trigger: Trigger) -> None:
        action, description = trigger.action, trigger.occurrence.description
        self.plan.events.append(Event("Normal", "ExecuteAction", f"Start to execute action {action} "))
        if action == RESTART_JOB:
            self.retry_count += 1
            self.version += 1
            self._move(RESTARTING, action, description)
            self._restart_kill()
        elif action in PARTIAL_RESTARTS:
            self.retry_count += 1
            self._move(RESTARTING, action, description)
            self._delete_pods(self._restart_targets(trigger))
        else:
            self.version += 1
            self._move(ENDING_ACTIONS[action], action, description)
            self._wind_down_kill()

    def _sync(self) -> None:
        gate = self._gate()
        self._delete_pods(p for p in self.pods if p.version < self.version)
        self._delete_pods(sorted((p for p in self.pods if p.task is None), key=lambda p: -p.index))
        missing = self._missing_pods() if gate.open else []
        phase = self._next_active_phase(self._tally(missing), gate)
        if phase in FINISHED_PHASES:
            self._move(phase)
            self._wind_down_kill()
            return
        self._ensure_plugin_children()
        self._ensure_podgroup()
        for task, index in missing:
            self.plan.create.append(self._pod_manifest(task, index))
        self.created = missing
        self._announce(phase, gate)
        # Only Pending has a reason to give; admitted phases clear the last one.
        self._move(phase, *((gate.reason, gate.message) if phase == PENDING else ("", "")))

    def _next_active_phase(self, tally: Tally, gate: Gate) -> str:
        if self.phase == RUNNING:
            verdict = self._running_verdict(tally)
            if verdict != PENDING:
                return verdict
        elif gate.open and self.job.min_available <= sum(
            tally.count(p) for p in (POD_RUNNING, *FINISHED_POD_PHASES)
        ):
            return RUNNING
        return INQUEUE if gate.open else PENDING

    def _running_verdict(self, tally: Tally) -> str:
        """Upstream's Running-phase rules (§5.3): Running, Completed, Failed, or Pending."""
        job, total = self.job, self.job.total_replicas
        succeeded, failed = tally.count(POD_SUCCEEDED), tally.count(POD_FAILED)
        if total == 0:
            return RUNNING
        if job.min_success is not None and succeeded >= job.min_success:
            return COMPLETED
        if succeeded + failed == total:
            if job.min_available >= sum(t.min_available for t in job.tasks) and any(
                t.name in tally.tasks and tally.tasks[t.name][POD_SUCCEEDED] < t.min_available
                for t in job.tasks
            ):
                return FAILED
            if job.min_success is not None and succeeded < job.min_success:
                return FAILED
            return COMPLETED if succeeded >= job.min_available else FAILED
        if tally.count(POD_PENDING) > total - job.min_available:
            return PENDING
        return RUNNING

    def _missing_pods(self) -> list[tuple[Task, int]]:
        taken = {p.name for p in self.pods}
        return [
            (task, index)
            for task in self.job.tasks
            if self._dependencies_ready(task)
            for index in range(task.replicas)
            if pod_name(self.job.name, task.name, index) not in taken
        ]

    def _dependencies_ready(self, task: Task) -> bool:
        ready = [self._task_ready(name) for name in task.depends_on]
        return any(ready) if task.depends_on_any and len(ready) > 1 else all(ready)

    def _task_ready(self, name: str) -> bool:
        """Running pods with every container ready, plus Succeeded pods, reach the task's minAvailable."""
        task = self.job.task(name)
        if task is None:
            return True
        live = [p for p in self._live() if p.task_name == name]
        return sum(p.ready or p.phase == POD_SUCCEEDED for p in live) >= task.min_available

    # -- the gate and the events it explains --------------------------------------------------

    def _gate(self) -> Gate:
        settings = self.observed.settings
        if settings.volcano_scheduler_installed:
            return self._podgroup_gate()
        if settings.volcano_fallback_to_default_scheduler:
            return Gate(True)
        message = (
            "Volcano's PodGroup CRD (scheduling.volcano.sh/v1beta1) is not installed and falling back to "
            "the default scheduler is disabled: the job stays Pending and no pods are created"
        )
        return Gate(False, "VolcanoNotInstalled", message)

    def _podgroup_gate(self) -> Gate:
        group = self.observed.of_kind("PodGroup").get(self.job.podgroup_name)
        if group is None:
            return Gate(False)
        status = group.get("status") or {}
        if status.get("phase") not in (None, "", "Pending"):
            return Gate(True)
        held = [c for c in status.get("conditions") or [] if c.get("status") == "True"]
        newest = max(held, key=lambda c: str(c.get("lastTransitionTime") or ""), default=None)
        if newest is None or newest.get("type") == "Scheduled":
            return Gate(False)
        what = str(newest.get("type") or "").lower()
        message = (
            f"PodGroup {self.job.namespace}:{self.job.name} {what}, reason: {newest.get('message') or ''}"
        )
        return Gate(False, "PodGroupPending", message)

    def _announce(self, phase: str, gate: Gate) -> None:
        """Warnings on transitions only: a new reason to stay Pending, or the first fallback admission."""
        if phase == PENDING and gate.reason and (gate.reason, gate.message) != (self.reason, self.message):
            self.plan.events.append(Event("Warning", gate.reason, gate.message))
        admitted_before = any(
            c.get("status") in (INQUEUE, RUNNING) for c in self.before.get("conditions") or []
        )
        if phase in (INQUEUE, RUNNING) and not admitted_before and self._falls_back():
            message = (
                f"Volcano's PodGroup CRD (scheduling.volcano.sh/v1beta1) is not installed: pods requesting "
                f'scheduler "{VOLCANO_SCHEDULER}" are created with "{DEFAULT_SCHEDULER}", without gang '
                f"scheduling (minAvailable {self.job.min_available} is not enforced when pods are placed)"
            )
            self.plan.events.append(Event("Warning", "SchedulerFallback", message))

    def _falls_back(self) -> bool:
        settings = self.observed.settings
        if settings.volcano_scheduler_installed or not settings.volcano_fallback_to_default_scheduler:
            return False
        return any(self._requested_scheduler(t) == VOLCANO_SCHEDULER for t in self.job.tasks)

    def _requested_scheduler(self, task: Task) -> str:
        return str((task.template.get("spec") or {}).get("schedulerName") or self.job.scheduler_name)

    # -- policies -----------------------------------------------------------------------------

    def _live(self) -> list[PodView]:
        """Pods that can raise events: expected, current version, not terminating, not being deleted."""
        return [
            p
            for p in self.pods
            if p.task is not None
            and not p.terminating
            and p.name not in self.deleted
            and p.version >= self.version
        ]

    def _occurrences(self) -> Iterator[Occurrence]:
        yield from self._podgroup_occurrences()
        live = self._live()
        for task in self.job.tasks:
            pods = [p for p in live if p.task_name == task.name]
            for pod in pods:
                yield from pod_occurrences(task, pod)
            yield from task_occurrences(task, pods)

    def _podgroup_occurrences(self) -> Iterator[Occurrence]:
        group = self.observed.of_kind("PodGroup").get(self.job.podgroup_name)
        if group is not None and (group.get("status") or {}).get("phase") == UNKNOWN_EVENT:
            created = from_rfc3339((group.get("metadata") or {}).get("creationTimestamp")) or EPOCH
            yield Occurrence(
                UNKNOWN_EVENT, None, None, None, created, f"PodGroup {self.job.podgroup_name} is Unknown"
            )

    def _due_triggers(self) -> list[Trigger]:
        """Every policy match that is due now; the others set a wake-up at their due time."""
        due = []
        for occurrence in self._occurrences():
            policy = first_match(occurrence, self.job)
            if policy is None:
                continue
            at = occurrence.since + policy.timeout if policy.timeout is not None else None
            if at is None or self.now >= at:
                due.append(Trigger(occurrence, policy.action))
            else:
                self.wakes.append(at)
        return due

    def _restart_targets(self, trigger: Trigger) -> list[PodView]:
        """RestartPod: the pod; RestartPartition: the pod's partition; RestartTask (or an event with no
        pod): the task's pods."""
        occurrence, live = trigger.occurrence, self._live()
        pod = occurrence.pod
        if pod is not None and trigger.action == RESTART_POD:
            return [pod]
        if pod is not None and trigger.action == RESTART_PARTITION and pod.partition is not None:
            return [p for p in live if p.task_name == pod.task_name and p.partition == pod.partition]
        return [p for p in live if occurrence.task is not None and p.task_name == occurrence.task.name]

    # -- Restarting ---------------------------------------------------------------------------

    def _restarting(self) -> None:
        if self.retry_count >= self.job.max_retry:
            message = (
                f"The job was restarted {self.retry_count} times, reaching maxRetry {self.job.max_retry}"
            )
            self._move(FAILED, "MaxRetryReached", message)
            self._wind_down_kill()
            return
        self._restart_kill()
        # A pod or task restart is finished only when the pods it restarts are gone from the cache:
        # until then they would raise the same event again in Pending.
        still_there = [
            pod
            for trigger in self._due_triggers()
            if trigger.action in PARTIAL_RESTARTS
            for pod in self._restart_targets(trigger)
        ]
        self._delete_pods(still_there)
        if (
            not still_there
            and self.job.total_replicas - self._tally([]).terminating >= self.job.min_available
        ):
            self._move(PENDING)

    def _restart_kill(self) -> None:
        """Delete the pods of older versions. The last allowed restart keeps finished pods (upstream's
        retain override), since the job is about to fail. A whole-job restart also removes the job's
        children, which Pending makes again."""
        last_try = self.retry_count >= self.job.max_retry
        self._delete_pods(
            p
            for p in self.pods
            if p.version < self.version and not (last_try and p.phase in FINISHED_POD_PHASES)
        )
        if self.reason == RESTART_JOB:
            self._remove_job_children()

    # -- Aborting, Completing, Terminating and the finished phases -----------------------------

    def _wind_down(self) -> None:
        self._wind_down_kill()
        tally = self._tally([])
        done = WINDING_DOWN.get(self.phase)
        if done and tally.count(POD_PENDING) == tally.count(POD_RUNNING) == tally.terminating == 0:
            self._move(done, self.reason, self.message)

    def _wind_down_kill(self) -> None:
        """Upstream's KillJob with retain Soft: everything but Succeeded and Failed pods goes."""
        self._delete_pods(p for p in self.pods if p.phase not in FINISHED_POD_PHASES)
        self._remove_job_children()

    # -- children -----------------------------------------------------------------------------

    def _delete_pods(self, pods: Iterable[PodView]) -> None:
        for pod in pods:
            if not pod.terminating and pod.name not in self.deleted:
                self.deleted.add(pod.name)
                self.plan.delete.append(ChildRef("Pod", pod.name))

    def _ensure_plugin_children(self) -> None:
        for plugin in self.job.plugins.plugins:
            recorded = plugin.controlled_key in self.controlled
            for child in plugin.resources(self.job.context):
                if child.kind in WATCHED_CHILD_KINDS:
                    self._ensure_watched(child)
                elif not recorded:
                    self.plan.create.append(child.build())
            self.controlled[plugin.controlled_key] = plugin.name

    def _ensure_watched(self, child: DesiredChild) -> None:
        live = self.observed.of_kind(child.kind).get(child.name)
        if live is None:
            self.plan.create.append(child.build())
            return
        if not child.synced_fields:
            return
        desired = child.build()
        if any(live.get(f) != desired.get(f) for f in child.synced_fields):
            replacement = copy.deepcopy(dict(live))  # keeps resourceVersion: a racing writer gets a 409
            replacement.update({f: desired.get(f) for f in child.synced_fields})
            self.plan.replace.append(replacement)

    def _remove_job_children(self) -> None:
        """Upstream's plugin `OnJobDelete` plus the PodGroup deletion of a whole-job kill."""
        for plugin in self.job.plugins.plugins:
            recorded = plugin.controlled_key in self.controlled
            for ref in plugin.on_job_delete(self.job.context):
                exists = (
                    ref.name in self.observed.of_kind(ref.kind)
                    if ref.kind in WATCHED_CHILD_KINDS
                    else recorded
                )
                if exists:
                    self.plan.delete.append(ref)
            self.controlled.pop(plugin.controlled_key, None)
        if self.job.podgroup_name in self.observed.of_kind("PodGroup"):
            self.plan.delete.append(ChildRef("PodGroup", self.job.podgroup_name))

    def _ensure_podgroup(self) -> None:
        if not self.observed.settings.volcano_scheduler_installed:
            return
        desired = self._podgroup_spec()
        live = self.observed.of_kind("PodGroup").get(self.job.podgroup_name)
        if live is None:
            meta = self.job.body.get("metadata") or {}
            metadata = child_metadata(
                self.job.body, self.job.podgroup_name, meta.get("labels"), meta.get("annotations")
            )
            self.plan.create.append(manifest(PODGROUP_API_VERSION, "PodGroup", metadata, spec=desired))
        elif not _same_podgroup_spec(live.get("spec") or {}, desired):
            replacement = copy.deepcopy(dict(live))
            replacement["spec"] = {**(live.get("spec") or {}), **desired}
            self.plan.replace.append(replacement)

    def _podgroup_spec(self) -> dict[str, Any]:
        job = self.job
        spec: dict[str, Any] = {
            "minMember": job.min_available,
            "minTaskMember": {t.name: t.min_available for t in job.tasks},
            "queue": job.queue,
            "minResources": self._min_resources(),
        }
        if job.priority_class_name:
            spec["priorityClassName"] = job.priority_class_name
        topology = (job.body.get("spec") or {}).get("networkTopology")
        if topology:
            spec["networkTopology"] = copy.deepcopy(topology)
        return spec

    def _min_resources(self) -> dict[str, str]:
        total: dict[str, Fraction] = {}
        for task, count in self._gang():
            for name, value in pod_requests(task.template).items():
                total[name] = total.get(name, Fraction(0)) + value * count
        return {name: format_quantity(value) for name, value in sorted(total.items())}

    def _gang(self) -> list[tuple[Task, int]]:
        """How many pods of each task make the first `minAvailable` (upstream's order, §4.5)."""
        tasks, left = self.job.tasks, self.job.min_available
        counts = [0] * len(tasks)
        if left >= sum(t.min_available for t in tasks):
            for i, task in enumerate(tasks):  # every task's own minimum first
                counts[i] = min(task.min_available, left)
                left -= counts[i]
        for i, task in enumerate(tasks):  # then fill up from what the tasks have beyond that
            extra = min(task.replicas - counts[i], left)
            counts[i] += extra
            left -= extra
        return list(zip(tasks, counts, strict=True))

    # -- the pod ------------------------------------------------------------------------------

    def _pod_manifest(self, task: Task, index: int) -> Manifest:
        job = self.job
        template = copy.deepcopy(dict(task.template))
        template_meta = template.get("metadata") or {}
        spec = template.setdefault("spec", {})
        spec["schedulerName"] = self._scheduler_for(task)
        if not spec.get("priorityClassName") and job.priority_class_name:
            spec["priorityClassName"] = job.priority_class_name
        self._mount_claims(spec)
        name = pod_name(job.name, task.name, index)
        labels = {**(template_meta.get("labels") or {}), **self._pod_labels(task, index)}
        annotations = {**(template_meta.get("annotations") or {}), **self._pod_annotations(task, index)}
        pod = manifest("v1", "Pod", child_metadata(job.body, name, labels, annotations), spec=spec)
        for plugin in job.plugins.plugins:
            plugin.on_pod_create(pod, job.context, task.name, index)
        return pod

    def _scheduler_for(self, task: Task) -> str:
        requested = self._requested_scheduler(task)
        return DEFAULT_SCHEDULER if requested == VOLCANO_SCHEDULER and self._falls_back() else requested

    def _mount_claims(self, spec: dict[str, Any]) -> None:
        """Each `spec.volumes[].volumeClaimName` into every container (not init containers), as upstream."""
        for i, (claim, mount_path) in enumerate(self.job.claims):
            volume_name = f"volcano-pvc-{i}"  # upstream: `<job>-<random>`; a plan must be deterministic
            spec["volumes"] = [
                *(spec.get("volumes") or []),
                {"name": volume_name, "persistentVolumeClaim": {"claimName": claim}},
            ]
            for container in spec.get("containers") or []:
                mounts = container.get("volumeMounts") or []
                container["volumeMounts"] = [*mounts, {"name": volume_name, "mountPath": mount_path}]

    def _pod_labels(self, task: Task, index: int) -> dict[str, str]:
        job = self.job
        labels = {
            TASK_INDEX_KEY: str(index),
            JOB_NAME_LABEL: job.name,
            TASK_SPEC_KEY: task.name,
            JOB_NAMESPACE_LABEL: job.namespace,
            QUEUE_NAME_KEY: job.queue,
        }
        job_labels = (job.body.get("metadata") or {}).get("labels") or {}
        labels.update({key: job_labels[key] for key in COPIED_JOB_LABELS if key in job_labels})
        if task.partition_size:
            labels[PARTITION_ID_KEY] = str(index // task.partition_size)
        return labels

    def _pod_annotations(self, task: Task, index: int) -> dict[str, str]:
        job = self.job
        annotations = {
            TASK_INDEX_KEY: str(index),
            TASK_SPEC_KEY: task.name,
            GROUP_NAME_KEY: job.podgroup_name,
            JOB_NAME_LABEL: job.name,
            QUEUE_NAME_KEY: job.queue,
            JOB_VERSION_KEY: str(self.version),
            TEMPLATE_UID_KEY: f"{job.name}-{task.name}",
            JOB_RETRY_COUNT_KEY: str(self.retry_count),
        }
        if task.topology_policy:
            annotations[TOPOLOGY_POLICY_KEY] = task.topology_policy
        job_annotations = (job.body.get("metadata") or {}).get("annotations") or {}
        annotations.update(
            {key: job_annotations[key] for key in COPIED_JOB_ANNOTATIONS if key in job_annotations}
        )
        budget = next((key for key in DISRUPTION_BUDGET_ANNOTATIONS if key in job_annotations), None)
        if budget is not None:
            annotations[budget] = job_annotations[budget]
        return annotations

    # -- status, events, timers ---------------------------------------------------------------

    def _move(self, phase: str, reason: str = "", message: str = "") -> None:
        if phase != self.phase:
            self.passed.append(phase)
        self.phase, self.reason, self.message = phase, reason, message

    def _report_unsupported(self) -> None:
        """Once, on the job's first plan: what jobwarden ignores in this spec."""
        for problem in self.job.plugins.problems:
            self.plan.events.append(Event("Warning", "PluginError", problem))
        for volume in (self.job.body.get("spec") or {}).get("volumes") or []:
            if not volume.get("volumeClaimName"):
                message = (
                    f"creating PVCs is not supported: the volume at {volume.get('mountPath')} is not mounted"
                )
                self.plan.events.append(Event("Warning", "PVCError", message))

    def _tally(self, to_create: Sequence[tuple[Task, int]]) -> Tally:
        tally = Tally()
        for pod in self.pods:
            if pod.terminating or pod.name in self.deleted:
                tally.terminating += 1
            else:
                tally.add(pod.task_name, pod.phase)
        for task, _ in to_create:
            tally.add(task.name, POD_PENDING)
        return tally

    def _status(self) -> dict[str, Any]:
        tally = self._tally(self.created)
        previous = (self.before.get("state") or {}).get("lastTransitionTime")
        stamp = to_rfc3339(self.now) if self.passed or not previous else str(previous)
        state = {"phase": self.phase, "lastTransitionTime": stamp}
        state.update({k: v for k, v in (("reason", self.reason), ("message", self.message)) if v})
        # A refused child write says why the job is stuck (core/faults.py), unless the phase has a
        # reason of its own (a policy's action, a gate): that one is the job's history.
        refused = faults.summary(self.observed.faults) if self.phase not in FINISHED_PHASES else None
        if refused is not None and not self.reason:
            state["reason"], state["message"] = refused
        conditions = [dict(c) for c in self.before.get("conditions") or []]
        for phase in self.passed:  # one entry per phase, the latest at the end (upstream)
            conditions = [c for c in conditions if c.get("status") != phase]
            conditions.append({"status": phase, "lastTransitionTime": stamp})
        numbers = {
            "minAvailable": self.job.min_available,
            "pending": tally.count(POD_PENDING),
            "running": tally.count(POD_RUNNING),
            "succeeded": tally.count(POD_SUCCEEDED),
            "failed": tally.count(POD_FAILED),
            "terminating": tally.terminating,
            "unknown": tally.count(POD_UNKNOWN),
            "version": self.version,
            "retryCount": self.retry_count,
        }
        maps = {
            "controlledResources": dict(sorted(self.controlled.items())),
            "conditions": conditions,
            "taskStatusCount": {task: {"phase": dict(counts)} for task, counts in tally.tasks.items()},
        }
        # Go's omitempty: zero numbers and empty maps are left out.
        return {
            "state": state,
            **{k: v for k, v in numbers.items() if v},
            **{k: v for k, v in maps.items() if v},
        }

    def _set_timers(self, status: Mapping[str, Any]) -> None:
        wake = earliest(*self.wakes)
        if self.phase in TTL_PHASES:
            finished_at = from_rfc3339(status["state"]["lastTransitionTime"])
            expiry = ttl_due(finished_at, self.job.ttl_seconds_after_finished)
            if is_due(expiry, self.now):
                self.plan.delete_job = True
                return
            wake = earliest(wake, expiry)
        self.plan.wake_at = wake


def _same_podgroup_spec(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Upstream updates the PodGroup when one of these differs."""
    for key in ("minMember", "minTaskMember", "priorityClassName", "queue"):
        if (live.get(key) or None) != (desired.get(key) or None):
            return False
    return same_resources(live.get("minResources") or {}, desired.get("minResources") or {})
