"""Builders for the Volcano plan tests: the seed MPI job, small jobs, pods in a phase, and an in-memory
cluster that executes plans the way the shell does (create, replace, delete, write status), so a test
can walk a job through its life one reconcile at a time."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobwarden.core.plan import Event, Observed, Plan, Settings
from jobwarden.core.timefmt import to_rfc3339
from jobwarden.kinds.volcano import KIND

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

FALLBACK = Settings()  # Volcano not installed, fall back to the default scheduler (the default)
NO_FALLBACK = Settings(volcano_fallback_to_default_scheduler=False)
VOLCANO = Settings(volcano_scheduler_installed=True)

SEED_JOB = "openmpi-hello-2-com"


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def seed_body(which: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SEEDS / f"volcanojob-put.{which}.json").read_text())
    return body


def seed_job(worker_replicas: int = 1) -> dict[str, Any]:
    """The seed's MPI job as first created (before the PUT that scales mpiworker to 2): the response
    body's identity and spec, no status."""
    body = seed_body("response")
    body.pop("status")
    body["spec"]["tasks"][1]["replicas"] = worker_replicas
    return body


def task(name: str, replicas: int = 1, **extra: Any) -> dict[str, Any]:
    container = {"name": name, "image": "registry.example/app:1"}
    return {"name": name, "replicas": replicas, "template": {"spec": {"containers": [container]}}, **extra}


def vcjob(*tasks: dict[str, Any], name: str = "job", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch.volcano.sh/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "ns", "uid": "uid-1", "creationTimestamp": to_rfc3339(NOW)},
        "spec": {"tasks": list(tasks), **spec},
    }


def in_phase(
    pod: Mapping[str, Any],
    phase: str,
    *,
    exit_code: int | None = None,
    restarts: int = 0,
    ready: bool = True,
    reason: str | None = None,
    finished_at: datetime | None = None,
) -> dict[str, Any]:
    """A copy of a pod as kubelet reports it: phase, and the first container's status."""
    body = copy.deepcopy(dict(pod))
    state: dict[str, Any] = {}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "finishedAt": to_rfc3339(finished_at or NOW)}}
    container = {
        "name": body["spec"]["containers"][0]["name"],
        "restartCount": restarts,
        "ready": ready and phase == "Running",
        "state": state,
    }
    body["status"] = {
        "phase": phase,
        "containerStatuses": [container],
        **({"reason": reason} if reason else {}),
    }
    return body


def secret_text(secret: Mapping[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def created(plan: Plan, kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in plan.create if m["kind"] == kind}


def deleted(plan: Plan, kind: str) -> list[str]:
    return [ref.name for ref in plan.delete if ref.kind == kind]


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def merge_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386 JSON merge patch, in place, as the apiserver applies `application/merge-patch+json`."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeCluster:
    """One job and its children. `step()` plans, then applies the plan like the shell (materializing
    each created manifest, and reporting the Secrets it created in `Observed.children`). With `graceful`,
    a deleted pod first shows a deletionTimestamp and goes away only at `finish_deletions()`."""

    def __init__(
        self, job: Mapping[str, Any], settings: Settings = FALLBACK, *, graceful: bool = False
    ) -> None:
        self.job = copy.deepcopy(dict(job))
        self.settings = settings
        self.graceful = graceful
        self.children: dict[str, dict[str, dict[str, Any]]] = {
            "Pod": {},
            "Service": {},
            "ConfigMap": {},
            "PodGroup": {},
            "Secret": {},
            "NetworkPolicy": {},
            "PersistentVolumeClaim": {},
        }
        self.events: list[Event] = []
        self.commands: list[dict[str, Any]] = []  # Volcano Commands aimed at the job, oldest first
        self._serial = 0

    # -- what the shell sees and does ------------------------------------------------------------

    def observe(self, now: datetime = NOW) -> Observed:
        # Secrets are never watched: the shell reports the ones it created (or found existing).
        watched = ["Pod", "Service", "ConfigMap", "Secret", "NetworkPolicy", "PersistentVolumeClaim"] + (
            ["PodGroup"] if self.settings.volcano_scheduler_installed else []
        )
        children = {kind: copy.deepcopy(self.children[kind]) for kind in watched}
        return Observed(
            copy.deepcopy(self.job),
            children,
            now,
            self.settings,
            commands=tuple(copy.deepcopy(self.commands)),
        )

    def plan(self, now: datetime = NOW) -> Plan:
        return KIND.plan(self.observe(now))

    def step(self, now: datetime = NOW) -> Plan:
        plan = self.plan(now)
        self.apply(plan, now)
        return plan

    def settle(self, now: datetime = NOW, limit: int = 10) -> list[Plan]:
        """Step until a plan does nothing (graceful deletions are finished in between)."""
        plans = []
        for _ in range(limit):
            plan = self.step(now)
            plans.append(plan)
            if plan.is_noop:
                return plans
            self.finish_deletions()
        raise AssertionError(f"no fixed point after {limit} plans: {plans[-1]}")

    def apply(self, plan: Plan, now: datetime = NOW) -> None:
        for manifest in plan.create:
            store = self.children[manifest["kind"]]
            if manifest["metadata"]["name"] not in store:  # AlreadyExists is fine
                store[manifest["metadata"]["name"]] = self._admitted(KIND.materialize(manifest), now)
        for manifest in plan.replace:
            self._serial += 1
            replacement = copy.deepcopy(manifest)
            replacement["metadata"]["resourceVersion"] = str(self._serial)
            self.children[manifest["kind"]][manifest["metadata"]["name"]] = replacement
        for patch in plan.patch:
            self._serial += 1
            live = self.children[patch["kind"]][patch["metadata"]["name"]]
            merge_patch(live, {k: v for k, v in patch.items() if k not in ("apiVersion", "kind", "metadata")})
            live["metadata"]["resourceVersion"] = str(self._serial)
        for ref in plan.delete:
            store = self.children[ref.kind]
            if ref.name in store and self.graceful and ref.kind == "Pod":
                store[ref.name]["metadata"]["deletionTimestamp"] = to_rfc3339(now)
            else:
                store.pop(ref.name, None)
        if plan.status is not None:
            self.job["status"] = copy.deepcopy(plan.status)
        self.commands = [c for c in self.commands if c["metadata"]["name"] not in plan.consumed_commands]
        self.events += plan.events

    def _admitted(self, manifest: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        self._serial += 1
        body = copy.deepcopy(dict(manifest))
        meta = body["metadata"]
        meta.update(
            uid=f"uid-{meta['name']}", resourceVersion=str(self._serial), creationTimestamp=to_rfc3339(now)
        )
        if body["kind"] == "Pod":
            body["status"] = {"phase": "Pending"}
        return body

    def finish_deletions(self) -> None:
        pods = self.children["Pod"]
        for name in [n for n, p in pods.items() if p["metadata"].get("deletionTimestamp")]:
            del pods[name]

    def command(self, action: str, name: str = "") -> None:
        """A Command aimed at the job, as `jobwarden job` or vcctl makes it."""
        name = name or f"{self.job['metadata']['name']}-{action.lower()}-{len(self.commands)}"
        meta = self.job["metadata"]
        target = {
            "apiVersion": self.job["apiVersion"],
            "kind": "Job",
            "name": meta["name"],
            "uid": meta["uid"],
        }
        self.commands.append(
            {"metadata": {"name": name, "uid": f"uid-{name}"}, "action": action, "target": target}
        )

    # -- kubelet and scheduler -------------------------------------------------------------------

    @property
    def pods(self) -> dict[str, dict[str, Any]]:
        return self.children["Pod"]

    def set_phase(self, name: str, phase: str, **status: Any) -> None:
        self.pods[name] = in_phase(self.pods[name], phase, **status)

    def run_all(self) -> None:
        for name, pod in self.pods.items():
            if not pod["metadata"].get("deletionTimestamp"):
                self.set_phase(name, "Running")

    def set_podgroup_phase(self, phase: str, conditions: list[dict[str, Any]] | None = None) -> None:
        for group in self.children["PodGroup"].values():
            group["status"] = {"phase": phase, **({"conditions": conditions} if conditions else {})}

    # -- reading the job -------------------------------------------------------------------------

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.job.get("status") or {})

    @property
    def phase(self) -> str:
        return str(self.status["state"]["phase"])

    def phases_seen(self) -> list[str]:
        return [c["status"] for c in self.status.get("conditions") or []]

    def event_reasons(self) -> list[str]:
        return [e.reason for e in self.events]


def running(job: Mapping[str, Any], settings: Settings = FALLBACK, **options: Any) -> FakeCluster:
    """A job whose pods were created and are all Running."""
    cluster = FakeCluster(job, settings, **options)
    cluster.settle()
    cluster.run_all()
    cluster.settle(later(5))
    return cluster
