"""Builders for the Kubeflow plan tests: seed jobs, pods in a phase, and a tiny in-memory cluster that
executes plans the way the shell does (create, delete, write status) so a test can walk a job through
its life one reconcile at a time."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobwarden.core.plan import Observed, Plan, Settings
from jobwarden.kinds.kubeflow.kind import JOB_ROLE_LABEL, KubeflowKind

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def seed(name: str) -> dict[str, Any]:
    """A seed request body, e.g. `seed("tfjob-put")`: a running job as the seeds show it."""
    body: dict[str, Any] = json.loads((SEEDS / f"{name}.request.json").read_text())
    return body


def fresh(job: Mapping[str, Any]) -> dict[str, Any]:
    """The job as just created: no status yet."""
    body = copy.deepcopy(dict(job))
    body.pop("status", None)
    return body


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def in_phase(
    pod: Mapping[str, Any],
    phase: str,
    *,
    exit_code: int | None = None,
    restart_count: int = 0,
    terminating: bool = False,
) -> dict[str, Any]:
    """A copy of a pod manifest as kubelet would report it: phase and the first container's status
    (terminated with `exit_code` when given)."""
    body = copy.deepcopy(dict(pod))
    container = body["spec"]["containers"][0]["name"]
    state: dict[str, Any] = {"terminated": {"exitCode": exit_code}} if exit_code is not None else {}
    body["status"] = {
        "phase": phase,
        "containerStatuses": [{"name": container, "restartCount": restart_count, "state": state}],
    }
    if terminating:
        body["metadata"]["deletionTimestamp"] = "2024-05-01T11:59:00Z"
    return body


def created(plan: Plan, kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in plan.create if m["kind"] == kind}


def deleted(plan: Plan, kind: str) -> set[str]:
    return {ref.name for ref in plan.delete if ref.kind == kind}


def masters(plan: Plan) -> set[str]:
    """The pods the plan creates with `training.kubeflow.org/job-role=master`."""
    pods = created(plan, "Pod")
    return {name for name, pod in pods.items() if pod["metadata"]["labels"].get(JOB_ROLE_LABEL) == "master"}


def env_of(container: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env") or []}


class FakeCluster:
    """One job and its children. `step()` plans and then applies the plan like the shell would."""

    def __init__(self, kind: KubeflowKind, job: Mapping[str, Any], settings: Settings | None = None) -> None:
        self.kind = kind
        self.job = copy.deepcopy(dict(job))
        self.settings = settings or Settings()
        self.pods: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.podgroups: dict[str, dict[str, Any]] = {}

    def observe(self, now: datetime = NOW) -> Observed:
        children = {
            "Pod": copy.deepcopy(self.pods),
            "Service": copy.deepcopy(self.services),
            "PodGroup": copy.deepcopy(self.podgroups),
        }
        return Observed(copy.deepcopy(self.job), children, now, self.settings)

    def step(self, now: datetime = NOW) -> Plan:
        plan = self.kind.plan(self.observe(now))
        for child in plan.create:
            self._store(child["kind"]).setdefault(child["metadata"]["name"], copy.deepcopy(child))
        for ref in plan.delete:
            self._store(ref.kind).pop(ref.name, None)
        if plan.status is not None:
            self.job["status"] = copy.deepcopy(plan.status)
        return plan

    def set_phase(self, name: str, phase: str, **status: Any) -> None:
        self.pods[name] = in_phase(self.pods[name], phase, **status)

    def run_all(self) -> None:
        for name in self.pods:
            self.set_phase(name, "Running")

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.job.get("status") or {})

    def condition(self, type_: str) -> dict[str, Any] | None:
        return next((c for c in self.status.get("conditions") or [] if c["type"] == type_), None)

    def _store(self, kind: str) -> dict[str, dict[str, Any]]:
        return {"Pod": self.pods, "Service": self.services, "PodGroup": self.podgroups}[kind]


def running(kind: KubeflowKind, job: Mapping[str, Any]) -> FakeCluster:
    """A job reconciled twice: its children created, then every pod Running (at NOW + 5s)."""
    cluster = FakeCluster(kind, job)
    cluster.step()
    cluster.run_all()
    cluster.step(later(5))
    return cluster


def kubeflow_job(
    kind: KubeflowKind,
    replicas: Mapping[str, int],
    *,
    restart_policy: str | None = None,
    name: str = "job",
    **spec: Any,
) -> dict[str, Any]:
    """A minimal job of `kind` with one framework container per replica type."""

    def replica_spec(count: int) -> dict[str, Any]:
        container = {"name": kind.shape.container_name, "image": "registry.example/train:1"}
        policy = {"restartPolicy": restart_policy} if restart_policy else {}
        return {"replicas": count, **policy, "template": {"spec": {"containers": [container]}}}

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": kind.resource.kind,
        "metadata": {"name": name, "namespace": "ns", "uid": "uid-1"},
        "spec": {kind.shape.replica_specs_field: {t: replica_spec(n) for t, n in replicas.items()}, **spec},
    }


def env_entries(container: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """A container's env in order, as (name, value) with a `valueFrom` kept as it is: upstream's
    tests pin the order, and Paddle's POD_IP_DUMMY has no plain value. A value is always a string."""

    def value(entry: Mapping[str, Any]) -> Any:
        if "value" in entry:
            assert isinstance(entry["value"], str), entry
            return entry["value"]
        return {"valueFrom": entry["valueFrom"]}

    return [(e["name"], value(e)) for e in container["env"]]


def conditions_without_times(status: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(type, status, reason, message) of each condition, in order (upstream's IgnoreJobConditionsTimes)."""
    return [(c["type"], c["status"], c["reason"], c["message"]) for c in status.get("conditions") or []]


def suspended(job: Mapping[str, Any], value: bool = True) -> dict[str, Any]:
    """A copy of the job with `spec.runPolicy.suspend` set to `value`."""
    body = copy.deepcopy(dict(job))
    body["spec"].setdefault("runPolicy", {})["suspend"] = value
    return body


def check_a_suspended_job_creates_nothing(kind: KubeflowKind, job: Mapping[str, Any]) -> None:
    """Upstream's `ShouldntCreateResourcesIfSuspended` (every kind's controller test): no child, no
    startTime, Created then Suspended."""
    title, name = kind.resource.kind, job["metadata"]["name"]
    cluster = FakeCluster(kind, suspended(job))
    assert cluster.step().create == []
    assert "startTime" not in cluster.status
    assert conditions_without_times(cluster.status) == [
        ("Created", "True", f"{title}Created", f"{title} {name} is created."),
        ("Suspended", "True", f"{title}Suspended", f"{title} {name} is suspended."),
    ]


def check_suspend_deletes_and_resume_restarts(
    kind: KubeflowKind, job: Mapping[str, Any], pods: set[str]
) -> None:
    """Upstream's `ShouldDeleteResourcesAfterSuspendAndResume` (every kind's controller test): a running
    job suspended loses its pods and Services but keeps its startTime; resumed, it gets `pods` (and
    their Services) back, runs again and has a new startTime."""
    title, name = kind.resource.kind, job["metadata"]["name"]
    created_row = ("Created", "True", f"{title}Created", f"{title} {name} is created.")
    cluster = FakeCluster(kind, job)
    cluster.step()
    assert set(cluster.pods) == set(cluster.services) == pods
    cluster.run_all()
    cluster.step(later(5))
    assert conditions_without_times(cluster.status) == [
        created_row,
        ("Running", "True", f"{title}Running", f"{title} {name} is running."),
    ]
    started = cluster.status["startTime"]
    cluster.job = suspended(cluster.job)
    cluster.step(later(10))
    assert cluster.pods == cluster.services == {}
    assert all("active" not in counts for counts in cluster.status["replicaStatuses"].values())
    assert cluster.status["startTime"] == started
    assert conditions_without_times(cluster.status) == [
        created_row,
        ("Running", "False", f"{title}Suspended", f"{title} {name} is suspended."),
        ("Suspended", "True", f"{title}Suspended", f"{title} {name} is suspended."),
    ]
    cluster.job = suspended(cluster.job, False)
    cluster.step(later(20))
    assert set(cluster.pods) == set(cluster.services) == pods
    cluster.run_all()
    cluster.step(later(25))
    assert conditions_without_times(cluster.status) == [
        created_row,
        ("Suspended", "False", f"{title}Resumed", f"{title} {name} is resumed."),
        ("Running", "True", f"{title}Running", f"{title} {name} is running."),
    ]
    assert cluster.status["startTime"] != started
