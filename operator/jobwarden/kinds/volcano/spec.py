"""The Volcano Job as the plan reads it: the API's vocabulary (job phases, policy events and actions)
and the job in its defaulted view (Volcano's mutating-webhook defaults, applied in memory; see
`defaults.py`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jobwarden.core.plan import Body, NamedJob
from jobwarden.kinds.base import Resource
from jobwarden.kinds.volcano import defaults
from jobwarden.plugins.base import JobContext
from jobwarden.plugins.registry import PluginSet, build_plugins

RESOURCE = Resource(group="batch.volcano.sh", version="v1alpha1", plural="jobs", kind="Job")

# Job phases.
PENDING, INQUEUE, RUNNING, RESTARTING = "Pending", "Inqueue", "Running", "Restarting"
ABORTING, ABORTED, COMPLETING, COMPLETED = "Aborting", "Aborted", "Completing", "Completed"
TERMINATING, TERMINATED, FAILED = "Terminating", "Terminated", "Failed"
ACTIVE_PHASES = frozenset({PENDING, INQUEUE, RUNNING})
WINDING_DOWN = {ABORTING: ABORTED, COMPLETING: COMPLETED, TERMINATING: TERMINATED}
FINISHED_PHASES = frozenset({ABORTED, COMPLETED, FAILED, TERMINATED})
TTL_PHASES = frozenset({COMPLETED, FAILED, TERMINATED})
KNOWN_PHASES = ACTIVE_PHASES | {RESTARTING} | WINDING_DOWN.keys() | FINISHED_PHASES

# Policy events and actions (bus/v1alpha1).
ANY_EVENT = "*"
POD_FAILED_EVENT, POD_EVICTED, POD_PENDING_EVENT = "PodFailed", "PodEvicted", "PodPending"
TASK_COMPLETED, TASK_FAILED, UNKNOWN_EVENT = "TaskCompleted", "TaskFailed", "Unknown"
RESTART_JOB, RESTART_TASK, RESTART_POD = "RestartJob", "RestartTask", "RestartPod"
RESTART_PARTITION = "RestartPartition"
PARTIAL_RESTARTS = frozenset({RESTART_TASK, RESTART_POD, RESTART_PARTITION})
ENDING_ACTIONS = {"AbortJob": ABORTING, "CompleteJob": COMPLETING, "TerminateJob": TERMINATING}
# ResumeJob only acts in Aborting/Aborted, where policies are not consulted: only a Command runs it.
EXECUTABLE_ACTIONS = frozenset({RESTART_JOB, *PARTIAL_RESTARTS, *ENDING_ACTIONS})


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
    min_available_given: bool  # False: Volcano's default, fixed at creation upstream (replicas then)
    template: Mapping[str, Any]
    policies: tuple[Policy, ...]
    max_retry: int
    depends_on: tuple[str, ...]
    depends_on_any: bool
    partition_size: int | None
    topology_policy: str


@dataclass(frozen=True)
class Claim:
    """A PersistentVolumeClaim mounted into every container: named by the user (`volumeClaimName`),
    or made by the job from `volumeClaim` (`spec` is then the claim's spec)."""

    name: str
    mount_path: str
    spec: Mapping[str, Any] | None


@dataclass(frozen=True)
class VolcanoJob(NamedJob):
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
    claims: tuple[Claim, ...]
    plugins: PluginSet
    context: JobContext

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
    depends = raw.get("dependsOn") or {}
    return Task(
        name=str(raw.get("name") or f"default{position}"),
        replicas=replicas,
        min_available=int(defaults.task_min_available(raw, replicas)),
        min_available_given=raw.get("minAvailable") is not None,
        template=raw.get("template") or {},
        policies=read_policies(raw.get("policies")),
        max_retry=int(defaults.max_retry(raw.get("maxRetry"))),
        depends_on=tuple(depends.get("name") or ()),
        depends_on_any=depends.get("iteration") == "any",
        partition_size=partition_size,
        topology_policy=str(raw.get("topologyPolicy") or ""),
    )


def generated_claim_name(body: Body, index: int) -> str:
    """Upstream's `<job>-pvc-<12 random [0-9a-z]>` (helpers.GenPVCName), written back into the job's
    spec there. A plan writes only status, so the 12 characters come from the job's uid and the
    volume's index instead: the same name on every plan and after a restart, a new one per job."""
    digest = int(hashlib.sha256(f"{body['metadata']['uid']}/{index}".encode()).hexdigest(), 16)
    alphabet, suffix = "0123456789abcdefghijklmnopqrstuvwxyz", ""
    for _ in range(12):
        digest, position = divmod(digest, 36)
        suffix += alphabet[position]
    return f"{body['metadata']['name']}-pvc-{suffix}"


def read_claims(body: Body) -> tuple[Claim, ...]:
    claims = []
    for index, volume in enumerate((body.get("spec") or {}).get("volumes") or []):
        mount_path = str(volume.get("mountPath") or "")
        if volume.get("volumeClaimName"):
            claims.append(Claim(str(volume["volumeClaimName"]), mount_path, None))
        elif volume.get("volumeClaim") is not None:
            claims.append(Claim(generated_claim_name(body, index), mount_path, volume["volumeClaim"]))
    return tuple(claims)


def _with_implied_plugins(raw: Any) -> dict[str, Any]:
    plugins = dict(raw) if isinstance(raw, Mapping) else {}
    defaults.default_plugins(plugins)
    return plugins


def read_job(body: Body) -> VolcanoJob:
    spec = body.get("spec") or {}
    tasks = tuple(read_task(raw, i) for i, raw in enumerate(spec.get("tasks") or []))
    min_success = spec.get("minSuccess")
    ttl = spec.get("ttlSecondsAfterFinished")
    claims = read_claims(body)
    return VolcanoJob(
        body=body,
        tasks=tasks,
        min_available=int(
            defaults.job_min_available(spec.get("minAvailable"), sum(t.min_available for t in tasks))
        ),
        min_success=int(min_success) if min_success is not None else None,
        max_retry=int(defaults.max_retry(spec.get("maxRetry"))),
        queue=str(defaults.queue(spec.get("queue"))),
        scheduler_name=str(defaults.scheduler_name(spec.get("schedulerName"))),
        priority_class_name=str(spec.get("priorityClassName") or ""),
        policies=read_policies(spec.get("policies")),
        ttl_seconds_after_finished=int(ttl) if ttl is not None else None,
        claims=claims,
        plugins=build_plugins(_with_implied_plugins(spec.get("plugins"))),
        context=JobContext.of(body),
    )
