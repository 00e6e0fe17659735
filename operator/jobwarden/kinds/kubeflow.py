"""The decision core shared by TFJob, PyTorchJob and MXJob (`kubeflow.org/v1`).

`KubeflowKind` implements the `JobKind` protocol once. Each kind module (`tfjob`, `pytorchjob`,
`mxjob`) builds one from what differs between them: the API resource, the spec shape, the env its
framework reads, the rule saying when the job runs and succeeds, which pods carry the master role,
the default cleanPodPolicy and the status key of the replica counts.

A plan, like upstream's reconcile (training-operator `ReconcileJobs`, spec §5.3):
1. marks the job Created and sets `status.startTime` on the first pass;
2. a finished job (Succeeded or Failed) only gets its cleanPodPolicy applied and its TTL timed;
3. otherwise it counts the pods, then decides, first match wins: the kind's success rule says
   Succeeded; a pod failed for good (restartPolicy Never, or ExitCode with an exit code below 128);
   `activeDeadlineSeconds` passed; `backoffLimit` reached. Any of these finishes the job
   (completionTime, cleanPodPolicy). If none, failed pods that may retry are deleted (recreated
   under the same name on the next pass), missing pods and services are created, pods and services
   above `replicas` are deleted, and Running is set when the kind's rule says so;
4. `wake_at` is the deadline while running, the TTL expiry once finished.

Every decision reads only the observation and the timestamps in `status`, so planning the same
observation twice changes nothing the second time.

Choices where upstream differs between versions, or is wrong (spec §8), made on purpose:
- Default cleanPodPolicy: the 2019 operators' defaults the seeds come from, TFJob `Running`,
  PyTorchJob `None`, MXJob `All` (current upstream: `None` for all three).
- cleanPodPolicy is honoured on every way a job finishes, the backoff limit included (upstream
  v1.7+ deletes everything there, §8 item 3). A passed deadline also stops the Running and Pending
  pods whatever the policy: nothing of the job may run past its deadline.
- backoffLimit counts kubelet's in-place restarts of Running pods of restartable replicas (as
  upstream) plus the failed pods the operator deleted to recreate them, kept in `status.restarts`
  (omitted while 0). Upstream ignores re-creations, so retryable ExitCode failures looped forever
  (§8 item 4). The job fails on the failure that makes the total reach the limit (limit 0: the
  first), the same count of failures upstream tolerates from in-place restarts. If the pod cache
  lags the job's, a deleted pod may be seen failed once more and counted twice: the error is on
  the side of stopping early.
- Retryable exit codes: 128 and above (current upstream), including the sentinel 0xbeef used when
  the framework container never terminated (evicted pod).
- MXJob: a failed pod under OnFailure/Always is recreated like in the other kinds (upstream R17
  fails the job, §8 item 7); the master role goes to the Scheduler pod, not to every Server pod;
  without a Scheduler, the Workers (else the Tuners) decide success, so MXTune jobs can succeed.
- The success rule is checked before failures: a job whose deciding replicas finished is Succeeded
  even if, in the same pass, a pod being shut down around them failed.
- A terminating pod (with `metadata.deletionTimestamp`) counts neither active nor failed, and its
  name is not reused until it is gone.
- When the job finishes, `active` counts are retired: added to `succeeded` on success (upstream),
  dropped on failure.
- The replica-failure message is `<Kind> <name> has failed because <k> <Type> replica(s) failed.`
  for all three kinds; Running is `<Kind> <name> is running.` as in the seeds.
- Not supported: `runPolicy.suspend`, gang scheduling, PyTorch `elasticPolicy` env and the
  `init-pytorch` init container, TFJob `enableDynamicWorker`.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from jobwarden.core import conditions as cond
from jobwarden.core import faults
from jobwarden.core.children import child_metadata, manifest
from jobwarden.core.fielderrors import FieldError
from jobwarden.core.plan import Body, ChildRef, Event, Manifest, Observed, Plan, Settings
from jobwarden.core.pods import (
    POD_FAILED,
    POD_PENDING,
    POD_RUNNING,
    POD_SUCCEEDED,
    in_place_restarts,
    is_terminating,
    pod_phase,
)
from jobwarden.core.runpolicy import read_run_policy
from jobwarden.core.timefmt import from_rfc3339, to_rfc3339
from jobwarden.core.timers import deadline_due, is_due, ttl_due
from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow_validation import (
    KUBEFLOW_UPDATABLE,
    KubeflowShape,
    canonical_replica_type,
    check_kubeflow_update,
    validate_kubeflow,
)

# training-operator v1.6+ labels.
OPERATOR_NAME_LABEL = "training.kubeflow.org/operator-name"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"
JOB_ROLE_LABEL = "training.kubeflow.org/job-role"

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
class KubeflowJob:
    body: Body
    shape: KubeflowShape
    default_port: Port
    replicas: Mapping[str, Replica]  # canonical type -> replica, in the shape's type order

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

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

    def surplus_slot(self, child_name: str) -> bool:
        """Whether the name is `<job>-<type>-<index>` of a known type, with index >= its replicas."""
        slugs = "|".join(re.escape(t.lower()) for t in self.shape.replica_types)
        found = re.fullmatch(rf"{re.escape(self.name)}-({slugs})-(0|[1-9][0-9]*)", child_name)
        if found is None:
            return False
        rtype = next(t for t in self.shape.replica_types if t.lower() == found.group(1))
        return int(found.group(2)) >= self.count(rtype)


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
EnvBuilder = Callable[[PodSlot], Mapping[str, str]]


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


# ---------------------------------------------------------------------------------------------
# The kind.


@dataclass(eq=False)
class KubeflowKind:
    """A Kubeflow job kind; see the module docstring for what it decides and how."""

    resource: Resource
    shape: KubeflowShape
    operator_name: str  # value of training.kubeflow.org/operator-name, e.g. `tfjob-controller`
    default_port: Port
    status_key: str  # where replica counts go: `replicaStatuses`, or the old MXJob `mxReplicaStatuses`
    default_clean_pod_policy: str
    progress: ProgressRule
    build_env: EnvBuilder
    env_in_every_container: bool  # else only into the first container named after the framework
    job_name_label: str = JOB_NAME_LABEL

    def validate(self, job: Body) -> list[FieldError]:
        return validate_kubeflow(self.shape, job)

    def check_update(self, old: Body, new: Body) -> list[FieldError]:
        return check_kubeflow_update(self.shape, old, new)

    def updatable_fields(self) -> list[str]:
        return list(KUBEFLOW_UPDATABLE)

    def phase(self, status: Mapping[str, Any] | None) -> str:
        """The STATE printer column: the type of the last condition, if it holds."""
        conditions = (status or {}).get("conditions") or []
        last = conditions[-1] if conditions else {}
        return str(last.get("type", "")) if last.get("status") == "True" else ""

    def plan(self, observed: Observed) -> Plan:
        return _Pass(self, observed).run()

    # -- reading ------------------------------------------------------------------------------

    def read_job(self, body: Body) -> KubeflowJob:
        specs = (body.get("spec") or {}).get(self.shape.replica_specs_field) or {}
        found: dict[str, Replica] = {}
        for key, replica_spec in specs.items():
            rtype = canonical_replica_type(self.shape, key)
            if rtype is not None and rtype not in found:
                found[rtype] = self._replica(rtype, replica_spec)
        ordered = {rtype: found[rtype] for rtype in self.shape.replica_types if rtype in found}
        return KubeflowJob(body, self.shape, self.default_port, ordered)

    def _replica(self, rtype: str, spec: Mapping[str, Any]) -> Replica:
        template = spec.get("template") or {}
        count = spec.get("replicas")
        policy = (
            spec.get("restartPolicy")
            or (template.get("spec") or {}).get("restartPolicy")
            or self.shape.default_restart_policy
        )
        return Replica(rtype, 1 if count is None else int(count), template, str(policy), spec)

    # -- children -----------------------------------------------------------------------------

    def replica_labels(self, slot: PodSlot) -> dict[str, str]:
        """The labels a service selects its pod by (the pod's operator labels minus the role)."""
        return {
            OPERATOR_NAME_LABEL: self.operator_name,
            JOB_NAME_LABEL: slot.job.name,
            REPLICA_TYPE_LABEL: slot.replica.slug,
            REPLICA_INDEX_LABEL: str(slot.index),
        }

    def is_master(self, slot: PodSlot) -> bool:
        """The pods of the job's single-master type (TF Chief/Master, PyTorch Master, MX Scheduler),
        else Worker-0."""
        if leading_type(slot.job, self.shape.single_master_types) is not None:
            return slot.replica.type in self.shape.single_master_types
        return slot.replica.type == "Worker" and slot.index == 0

    def pod_labels(self, slot: PodSlot) -> dict[str, str]:
        role = {JOB_ROLE_LABEL: "master"} if self.is_master(slot) else {}
        return {**self.replica_labels(slot), **role}

    def pod_manifest(self, slot: PodSlot) -> Manifest:
        template = copy.deepcopy(dict(slot.replica.template))
        template_meta = template.get("metadata") or {}
        spec = template.get("spec") or {}
        container = framework_container(template, self.shape.container_name)
        if container is not None:
            container["ports"] = slot.job.ports(slot.replica.type)
        self._inject_env(slot, spec.get("containers") or [])
        spec["restartPolicy"] = slot.replica.pod_restart_policy
        labels = {**(template_meta.get("labels") or {}), **self.pod_labels(slot)}
        metadata = child_metadata(slot.job.body, slot.name, labels, template_meta.get("annotations"))
        if template_meta.get("finalizers"):
            metadata["finalizers"] = template_meta["finalizers"]
        return manifest("v1", "Pod", metadata, spec=spec)

    def service_manifest(self, slot: PodSlot) -> Manifest:
        labels = self.replica_labels(slot)
        ports = [
            {"name": p.get("name") or f"port-{p['containerPort']}", "port": p["containerPort"]}
            for p in slot.job.ports(slot.replica.type)
        ]
        spec = {"clusterIP": "None", "selector": labels, "ports": ports}
        return manifest("v1", "Service", child_metadata(slot.job.body, slot.name, labels), spec=spec)

    def _inject_env(self, slot: PodSlot, containers: list[dict[str, Any]]) -> None:
        env = self.build_env(slot)
        if not env:
            return
        targets = containers
        if not self.env_in_every_container:
            targets = [c for c in containers if c.get("name") == self.shape.container_name][:1]
        for container in targets:
            own = container.get("env") or []
            # The user's own value of a variable wins over ours.
            taken = {e.get("name") for e in own}
            container["env"] = [*own, *({"name": k, "value": v} for k, v in env.items() if k not in taken)]


# ---------------------------------------------------------------------------------------------
# One reconcile pass.


@dataclass(frozen=True)
class _Failure:
    message: str
    stops_active_pods: bool = False


class _Pass:
    """Plans one job from one observation; `run()` fills and returns `self.plan`."""

    def __init__(self, kind: KubeflowKind, observed: Observed) -> None:
        self.kind = kind
        self.observed = observed
        self.job = kind.read_job(observed.job)
        self.run_policy = read_run_policy(self.job.spec)
        self.before: dict[str, Any] = copy.deepcopy(dict(observed.job.get("status") or {}))
        self.status: dict[str, Any] = copy.deepcopy(self.before)
        self.plan = Plan()

    @property
    def title(self) -> str:
        """`TFJob tfjob-test`, the subject of every message."""
        return f"{self.kind.resource.kind} {self.job.name}"

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return list(self.status.get("conditions") or [])

    def run(self) -> Plan:
        self._transition(cond.CREATED, f"{self.title} is created.", "Normal")
        self.status.setdefault("startTime", to_rfc3339(self.observed.now))
        if cond.is_finished(self.conditions):
            self._clean_up(stop_active=self._finished_past_deadline())
        else:
            self._reconcile()
        self._set_timers()
        self._surface_faults()
        self.plan.status = self.status if self.status != self.before else None
        return self.plan

    def _surface_faults(self) -> None:
        """Refused child writes as a `ReplicaFailure` condition while the job runs (core/faults.py)."""
        refused = () if cond.is_finished(self.conditions) else self.observed.faults
        updated = faults.with_failure_condition(self.conditions, refused, self.observed.now)
        if updated != self.conditions:
            self.status["conditions"] = updated

    # -- a job still running ------------------------------------------------------------------

    def _reconcile(self) -> None:
        live = self._live_pods()
        retrying, given_up = self._failed_pods(live)
        # A pod about to be replaced is not counted: its successor will be.
        replaced = {p.name for p in retrying}
        counted = tally(self.job, [p for p in live if p.name not in replaced])
        self.status[self.kind.status_key] = {t: c.as_status() for t, c in counted.counts.items()}
        progress = self.kind.progress(self.job, counted)
        failure = self._failure(given_up, retrying, live)
        if progress is Progress.SUCCEEDED:
            self._finish(cond.SUCCEEDED, f"{self.title} is successfully completed.")
        elif failure is not None:
            self._finish(cond.FAILED, failure.message, failure.stops_active_pods)
        else:
            self._restart(retrying)
            self._create_missing()
            self._delete_surplus()
            if progress is Progress.RUNNING and not retrying:
                self._transition(cond.RUNNING, f"{self.title} is running.", "Normal")

    def _live_pods(self) -> list[LivePod]:
        pods = self.observed.pods
        return [
            LivePod(replica, index, name, pods[name])
            for replica in self.job.replicas.values()
            for index in range(replica.count)
            if (name := self.job.pod_name(replica.type, index)) in pods and not is_terminating(pods[name])
        ]

    def _failed_pods(self, live: list[LivePod]) -> tuple[list[LivePod], list[LivePod]]:
        """The failed pods, split into those to recreate and those failed for good."""
        retrying: list[LivePod] = []
        given_up: list[LivePod] = []
        for pod in live:
            if pod.phase == POD_FAILED:
                (retrying if self._may_retry(pod) else given_up).append(pod)
        return retrying, given_up

    def _may_retry(self, pod: LivePod) -> bool:
        policy = pod.replica.restart_policy
        if policy == "ExitCode":
            return exit_code(pod.body, self.kind.shape.container_name) >= RETRYABLE_EXIT_CODE_MIN
        return policy in RESTARTABLE_POLICIES

    def _failure(
        self, given_up: list[LivePod], retrying: list[LivePod], live: list[LivePod]
    ) -> _Failure | None:
        if given_up:
            failed = describe_replicas(given_up)
            return _Failure(f"{self.title} has failed because {failed} replica(s) failed.")
        if is_due(self._deadline(), self.observed.now):
            deadline = f"{self.title} has failed because it was active longer than specified deadline"
            return _Failure(deadline, stops_active_pods=True)
        if self._backoff_limit_reached(retrying, live):
            return _Failure(f"{self.title} has failed because it has reached the specified backoff limit")
        return None

    def _backoff_limit_reached(self, retrying: list[LivePod], live: list[LivePod]) -> bool:
        limit = self.run_policy.backoff_limit
        if limit is None:
            return False
        kubelet_restarts = sum(
            in_place_restarts(p.body)
            for p in live
            if p.phase == POD_RUNNING and p.replica.restart_policy in RESTARTABLE_POLICIES
        )
        spent = kubelet_restarts + int(self.status.get("restarts") or 0) + len(retrying)
        # Upstream: limit 0 fails on any restart, otherwise once the restarts reach the limit.
        return spent >= max(limit, 1)

    def _restart(self, retrying: list[LivePod]) -> None:
        if not retrying:
            return
        self.plan.delete.extend(ChildRef("Pod", p.name) for p in retrying)
        self.status["restarts"] = int(self.status.get("restarts") or 0) + len(retrying)
        message = f"{self.title} is restarting because {describe_replicas(retrying)} replica(s) failed."
        self._transition(cond.RESTARTING, message, event_type=None)
        # One event per restart (not per condition change): each is a new failure worth seeing.
        self.plan.events.append(Event("Warning", self._reason(cond.RESTARTING), message))

    def _create_missing(self) -> None:
        overridden = False
        for replica in self.job.replicas.values():
            for index in range(replica.count):
                slot = PodSlot(self.job, replica, index, self.observed.settings)
                if slot.name not in self.observed.pods:
                    self.plan.create.append(self.kind.pod_manifest(slot))
                    overridden |= replica.overrides_template_policy
                if slot.name not in self.observed.services:
                    self.plan.create.append(self.kind.service_manifest(slot))
        if overridden:
            message = "Restart policy in pod template will be overwritten by restart policy in replica spec"
            self.plan.events.append(Event("Warning", "SetPodTemplateRestartPolicy", message))

    def _delete_surplus(self) -> None:
        for child_kind, children in (("Pod", self.observed.pods), ("Service", self.observed.services)):
            self.plan.delete.extend(
                ChildRef(child_kind, name)
                for name, child in children.items()
                if self.job.surplus_slot(name) and not is_terminating(child)
            )

    # -- finishing ----------------------------------------------------------------------------

    def _finish(self, outcome: str, message: str, stop_active: bool = False) -> None:
        self.status["completionTime"] = to_rfc3339(self.observed.now)
        event_type = "Normal" if outcome == cond.SUCCEEDED else "Warning"
        self._transition(outcome, message, event_type)
        self._retire_active(as_succeeded=outcome == cond.SUCCEEDED)
        self._clean_up(stop_active)

    def _retire_active(self, as_succeeded: bool) -> None:
        for counts in self.status[self.kind.status_key].values():
            active = counts.pop("active", 0)
            if as_succeeded and active:
                counts["succeeded"] = counts.get("succeeded", 0) + active

    def _clean_up(self, stop_active: bool) -> None:
        policy = self.run_policy.clean_pod_policy or self.kind.default_clean_pod_policy
        doomed = [
            name
            for name, pod in self.observed.pods.items()
            if not is_terminating(pod) and _cleaned_by(policy, stop_active, pod)
        ]
        services = self.observed.services
        doomed_services = [
            name
            for name, service in services.items()
            if (policy == "All" or name in doomed) and not is_terminating(service)
        ]
        self.plan.delete.extend(ChildRef("Pod", name) for name in doomed)
        self.plan.delete.extend(ChildRef("Service", name) for name in doomed_services)

    def _finished_past_deadline(self) -> bool:
        """Failed at or after its deadline: nothing of it may keep running. A job that Succeeded is
        never stopped this way, even if its success was seen after the deadline instant."""
        if not cond.holds(self.conditions, cond.FAILED):
            return False
        deadline = self._deadline()
        finished = from_rfc3339(self.status.get("completionTime"))
        return deadline is not None and finished is not None and finished >= deadline

    # -- timers and conditions ----------------------------------------------------------------

    def _deadline(self) -> datetime | None:
        started = from_rfc3339(self.status.get("startTime"))
        return deadline_due(started, self.run_policy.active_deadline_seconds)

    def _set_timers(self) -> None:
        if not cond.is_finished(self.conditions):
            self.plan.wake_at = self._deadline()
            return
        finished = from_rfc3339(self.status.get("completionTime"))
        expiry = ttl_due(finished, self.run_policy.ttl_seconds_after_finished)
        if is_due(expiry, self.observed.now):
            self.plan.delete_job = True
        else:
            self.plan.wake_at = expiry

    def _reason(self, condition_type: str) -> str:
        return f"{self.kind.resource.kind}{condition_type}"

    def _transition(self, condition_type: str, message: str, event_type: str | None) -> None:
        reason = self._reason(condition_type)
        updated = cond.set_condition(self.conditions, condition_type, reason, message, self.observed.now)
        if updated == self.conditions:
            return
        self.status["conditions"] = updated
        if event_type is not None:
            self.plan.events.append(Event(event_type, reason, message))


def _cleaned_by(policy: str, stop_active: bool, pod: Body) -> bool:
    if policy == "All":
        return True
    return (policy == "Running" or stop_active) and pod_phase(pod) in (POD_RUNNING, POD_PENDING)
