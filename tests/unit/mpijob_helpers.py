"""Builders for the MPIJob tests: upstream's test jobs (`newMPIJob` of mpi_job_controller_test.go), a
launcher Job in a given state, and a tiny cluster that executes plans as the shell does."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from jobwarden.core.plan import Observed, Plan, Settings
from jobwarden.kinds.kubeflow import MPIJOB

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
STAMP = "2024-05-01T12:00:00Z"


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def mpijob(
    name: str = "test",
    workers: int | None = None,
    *,
    namespace: str = "default",
    clean_pod_policy: str | None = "All",
    **spec: Any,
) -> dict[str, Any]:
    """upstream newMPIJob: a Launcher with container foo/bar, `workers` Workers (none when 0 or None),
    runPolicy.cleanPodPolicy All."""
    container = {"name": "foo", "image": "bar"}
    replica_specs: dict[str, Any] = {"Launcher": {"template": {"spec": {"containers": [dict(container)]}}}}
    if workers:
        replica_specs["Worker"] = {
            "replicas": workers,
            "template": {"spec": {"containers": [dict(container)]}},
        }
    run_policy = {"cleanPodPolicy": clean_pod_policy} if clean_pod_policy else {}
    return {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "metadata": {"name": name, "namespace": namespace, "uid": "uid-1"},
        "spec": {"runPolicy": run_policy, "mpiReplicaSpecs": replica_specs, **spec},
    }


def with_status(job: Mapping[str, Any], **status: Any) -> dict[str, Any]:
    body = copy.deepcopy(dict(job))
    body["status"] = {**(body.get("status") or {}), **status}
    return body


def condition(type_: str, reason: str, message: str, status: str = "True") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": STAMP,
        "lastTransitionTime": STAMP,
    }


def observed_job(manifest: Mapping[str, Any], **status: Any) -> dict[str, Any]:
    """A created child as the watch shows it (a resourceVersion), with a status."""
    body = copy.deepcopy(dict(manifest))
    body["metadata"]["resourceVersion"] = "7"
    if status:
        body["status"] = status
    return body


def pod_in(pod: Mapping[str, Any], phase: str, *, ready: bool = False, reason: str = "") -> dict[str, Any]:
    body = copy.deepcopy(dict(pod))
    body["metadata"].setdefault("resourceVersion", "3")
    status: dict[str, Any] = {"phase": phase}
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True"}]
    if reason:
        status["reason"] = reason
    body["status"] = status
    return body


def conditions_without_times(status: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(c["type"], c["status"], c["reason"], c["message"]) for c in status.get("conditions") or []]


def created(plan: Plan, kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in plan.create if m["kind"] == kind}


def deleted(plan: Plan, kind: str) -> set[str]:
    return {ref.name for ref in plan.delete if ref.kind == kind}


def env_entries(container: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(e["name"], e.get("value")) for e in container.get("env") or []]


class MpiCluster:
    """One MPIJob and its children; `step()` plans and applies the plan like the shell would."""

    def __init__(self, job: Mapping[str, Any], settings: Settings | None = None) -> None:
        self.job = copy.deepcopy(dict(job))
        self.settings = settings or Settings()
        self.children: dict[str, dict[str, dict[str, Any]]] = {}

    def of(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.children.setdefault(kind, {})

    def observe(self, now: datetime = NOW) -> Observed:
        return Observed(copy.deepcopy(self.job), copy.deepcopy(self.children), now, self.settings)

    def step(self, now: datetime = NOW) -> Plan:
        plan = MPIJOB.plan(self.observe(now))
        for child in plan.create:
            body = copy.deepcopy(MPIJOB.materialize(child))
            body["metadata"]["resourceVersion"] = "1"
            self.of(child["kind"]).setdefault(child["metadata"]["name"], body)
        for child in plan.replace:
            self.of(child["kind"])[child["metadata"]["name"]] = copy.deepcopy(child)
        for patch in plan.patch:
            target = self.of(patch["kind"])[patch["metadata"]["name"]]
            for key, value in patch["spec"].items():
                if value is None:
                    target["spec"].pop(key, None)
                else:
                    target["spec"][key] = value
        for ref in plan.delete:
            self.of(ref.kind).pop(ref.name, None)
        if plan.status is not None:
            self.job["status"] = copy.deepcopy(plan.status)
        return plan

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.job.get("status") or {})

    @property
    def launcher(self) -> dict[str, Any]:
        return self.of("Job")[f"{self.job['metadata']['name']}-launcher"]

    def set_launcher_status(self, **status: Any) -> None:
        self.launcher["status"] = status

    def set_pod(self, name: str, phase: str, **kw: Any) -> None:
        self.of("Pod")[name] = pod_in(self.of("Pod")[name], phase, **kw)
