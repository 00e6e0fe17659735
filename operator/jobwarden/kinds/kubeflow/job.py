"""A Kubeflow job as the plan reads it: labels, the defaulted view of the replicas, pod slots, the
counts by replica type and the progress rules the frameworks choose from."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from jobwarden.core.plan import Body, NamedJob, Settings
from jobwarden.core.pods import (
    POD_FAILED,
    POD_RUNNING,
    POD_SUCCEEDED,
    pod_phase,
)
from jobwarden.kinds.kubeflow.validation import (
    KubeflowShape,
)

# training-operator v1.6+ labels.
OPERATOR_NAME_LABEL = "training.kubeflow.org/operator-name"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"
JOB_ROLE_LABEL = "training.kubeflow.org/job-role"

# runPolicy.managedBy (v1.9): a job naming another controller (MultiKueue) is left alone entirely.
KUBEFLOW_CONTROLLER = "kubeflow.org/training-operator"

# From 128 up the process was killed by a signal (OOM kill, preemption, SIGTERM): worth another try.
RETRYABLE_EXIT_CODE_MIN = 128
# What upstream assumes when the framework container never terminated, e.g. an evicted pod.
NO_EXIT_CODE = 0xBEEF
RESTARTABLE_POLICIES = frozenset({"OnFailure", "Always", "ExitCode"})


# ---------------------------------------------------------------------------------------------
# The job in its defaulted view (defaults applied in memory, never written back, as upstream).


@dataclass(frozen=True)
class Port:
    name: str
    number: int


@dataclass(frozen=True)
class Replica:
    """One replica spec: canonical type (`PS` even when the spec says `Ps`), count, pod template and
    the effective restart policy (the replica's, else the template's, else the kind's default)."""

    type: str
    count: int
    template: Mapping[str, Any]
    restart_policy: str
    spec: Mapping[str, Any]

    @property
    def slug(self) -> str:
        return self.type.lower()

    @property
    def pod_restart_policy(self) -> str:
        # ExitCode is decided by the operator, so kubelet must leave the failed pod alone.
        return "Never" if self.restart_policy == "ExitCode" else self.restart_policy

    @property
    def overrides_template_policy(self) -> bool:
        template_policy = (self.template.get("spec") or {}).get("restartPolicy")
        return bool(self.spec.get("restartPolicy")) and template_policy not in (None, self.pod_restart_policy)


@dataclass(frozen=True)
class KubeflowJob(NamedJob):
    body: Body
    shape: KubeflowShape
    default_port: Port
    replicas: Mapping[str, Replica]  # canonical type -> replica, in the shape's type order

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.body.get("spec") or {}

    def has(self, rtype: str) -> bool:
        return rtype in self.replicas

    def count(self, rtype: str) -> int:
        replica = self.replicas.get(rtype)
        return replica.count if replica else 0

    @property
    def total_replicas(self) -> int:
        return sum(r.count for r in self.replicas.values())

    def pod_name(self, rtype: str, index: int) -> str:
        return f"{self.name}-{rtype.lower()}-{index}".replace("/", "-")

    def ports(self, rtype: str) -> list[dict[str, Any]]:
        """The framework container's ports, plus the kind's default port unless one has its name."""
        container = framework_container(self.replicas[rtype].template, self.shape.container_name)
        declared = [dict(p) for p in (container or {}).get("ports") or []]
        if any(p.get("name") == self.default_port.name for p in declared):
            return declared
        return [*declared, {"name": self.default_port.name, "containerPort": self.default_port.number}]

    def port(self, rtype: str) -> int:
        """The number of the default-named port of this replica type (what peers connect to)."""
        named = next(p for p in self.ports(rtype) if p.get("name") == self.default_port.name)
        return int(named["containerPort"])

    def port_or_default(self, rtype: str) -> int:
        """`port(rtype)`, or the kind's default port number when the job has no such replica type
        (a job stored with the webhook bypassed still gets a plan)."""
        return self.port(rtype) if self.has(rtype) else self.default_port.number

    @property
    def cluster_replicas(self) -> list[Replica]:
        """The replica types with at least one replica, sorted by slug: the key order of the cluster
        maps the frameworks' env describes (Go's sorted map keys)."""
        return sorted((r for r in self.replicas.values() if r.count), key=lambda r: r.slug)

    def surplus_slot(self, child_name: str) -> bool:
        """Whether the name is `<job>-<type>-<index>` of a known type, with index >= its replicas."""
        slugs = "|".join(re.escape(t.lower()) for t in self.shape.replica_types)
        found = re.fullmatch(rf"{re.escape(self.name)}-({slugs})-(0|[1-9][0-9]*)", child_name)
        if found is None:
            return False
        rtype = next(t for t in self.shape.replica_types if t.lower() == found.group(1))
        return int(found.group(2)) >= self.count(rtype)


def managed_elsewhere(body: Body) -> bool:
    """`spec.runPolicy.managedBy` names another controller (upstream ManagedByExternalController):
    Kueue's MultiKueue runs the job on a worker cluster and mirrors its status here, so nothing of
    it is planned, not even its status."""
    run_policy = (body.get("spec") or {}).get("runPolicy")
    managed_by = run_policy.get("managedBy") if isinstance(run_policy, Mapping) else None
    return managed_by is not None and managed_by != KUBEFLOW_CONTROLLER


def framework_container(template: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The container named after the framework, else the first one (upstream's port rule)."""
    containers = (template.get("spec") or {}).get("containers") or []
    return next((c for c in containers if c.get("name") == name), containers[0] if containers else None)


@dataclass(frozen=True)
class PodSlot:
    """One pod (and its service) the job should have: replica type and index."""

    job: KubeflowJob
    replica: Replica
    index: int
    settings: Settings

    @property
    def name(self) -> str:
        return self.job.pod_name(self.replica.type, self.index)


def compact_json(value: Any) -> str:
    """JSON as the Go operators marshal it: no spaces (callers order map keys themselves)."""
    return json.dumps(value, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# Counting pods and the per-kind progress rules.


@dataclass
class ReplicaCounts:
    active: int = 0
    succeeded: int = 0
    failed: int = 0

    def as_status(self) -> dict[str, int]:
        """Upstream's omitempty: zero counts are left out, so an idle type is `{}`."""
        fields = {"active": self.active, "succeeded": self.succeeded, "failed": self.failed}
        return {key: value for key, value in fields.items() if value}


@dataclass(frozen=True)
class LivePod:
    """An observed pod at an expected name that is not terminating."""

    replica: Replica
    index: int
    name: str
    body: Body

    @property
    def phase(self) -> str:
        return pod_phase(self.body)


@dataclass(frozen=True)
class Tally:
    counts: Mapping[str, ReplicaCounts]
    phases: Mapping[tuple[str, int], str]

    def of(self, rtype: str) -> ReplicaCounts:
        return self.counts.get(rtype, ReplicaCounts())

    def phase(self, rtype: str, index: int) -> str | None:
        return self.phases.get((rtype, index))


def tally(job: KubeflowJob, pods: Iterable[LivePod]) -> Tally:
    counts = {rtype: ReplicaCounts() for rtype in job.replicas}
    phases: dict[tuple[str, int], str] = {}
    for pod in pods:
        phases[pod.replica.type, pod.index] = pod.phase
        entry = counts[pod.replica.type]
        if pod.phase == POD_RUNNING:
            entry.active += 1
        elif pod.phase == POD_SUCCEEDED:
            entry.succeeded += 1
        elif pod.phase == POD_FAILED:
            entry.failed += 1
    return Tally(counts, phases)


class Progress(Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"


ProgressRule = Callable[[KubeflowJob, Tally], Progress]
# An env var's value, or the rest of its EnvVar (`{"valueFrom": {"fieldRef": ...}}`, Paddle's POD_IP_DUMMY).
EnvValue = str | Mapping[str, Any]
EnvBuilder = Callable[[PodSlot], Mapping[str, EnvValue]]
InitContainers = Callable[[PodSlot], list[dict[str, Any]]]


def no_init_containers(slot: PodSlot) -> list[dict[str, Any]]:
    del slot
    return []


def leading_type(job: KubeflowJob, candidates: Iterable[str]) -> str | None:
    return next((t for t in candidates if job.has(t)), None)


def replica_progress(job: KubeflowJob, counted: Tally, rtype: str) -> Progress:
    """Succeeded when every replica of the type succeeded; Running while one of them runs."""
    counts = counted.of(rtype)
    if 0 < job.count(rtype) <= counts.succeeded:
        return Progress.SUCCEEDED
    return Progress.RUNNING if counts.active else Progress.PENDING


def led_by(*candidates: str) -> ProgressRule:
    """The rule where the first of `candidates` the job has decides for the whole job."""

    def rule(job: KubeflowJob, counted: Tally) -> Progress:
        leader = leading_type(job, candidates)
        return replica_progress(job, counted, leader) if leader else Progress.PENDING

    return rule


def exit_code(pod: Body, container_name: str) -> int:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if status.get("name") == container_name and terminated:
            return int(terminated.get("exitCode", NO_EXIT_CODE))
    return NO_EXIT_CODE


def describe_replicas(pods: Iterable[LivePod]) -> str:
    """`1 Worker`, `1 PS and 2 Worker`: the upstream messages' `<k> <Type>`."""
    by_type = Counter(p.replica.type for p in pods)
    return " and ".join(f"{n} {rtype}" for rtype, n in by_type.items())
