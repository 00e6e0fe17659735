"""One plan of a Kubeflow job (see `kind.py` for the rules it follows).

The plan sees the kind only through `PlannedKind`, so this module does not import `kind.py` (which
imports it to plan)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from jobwarden.core import conditions as cond
from jobwarden.core.plan import Body, ChildRef, Event, Manifest, Observed, Plan
from jobwarden.core.pods import (
    POD_FAILED,
    POD_PENDING,
    POD_RUNNING,
    in_place_restarts,
    is_terminating,
    pod_phase,
)
from jobwarden.core.runpolicy import read_run_policy
from jobwarden.core.statuspass import StatusPass
from jobwarden.core.timefmt import from_rfc3339, to_rfc3339
from jobwarden.core.timers import deadline_due, is_due, ttl_due
from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow import gang
from jobwarden.kinds.kubeflow.job import (
    RESTARTABLE_POLICIES,
    RETRYABLE_EXIT_CODE_MIN,
    KubeflowJob,
    LivePod,
    PodSlot,
    Progress,
    ProgressRule,
    describe_replicas,
    exit_code,
    tally,
)
from jobwarden.kinds.kubeflow.validation import KubeflowShape


class PlannedKind(Protocol):
    """What a plan reads of a Kubeflow kind (`kind.KubeflowKind` is one)."""

    @property
    def resource(self) -> Resource: ...
    @property
    def shape(self) -> KubeflowShape: ...
    @property
    def status_key(self) -> str: ...
    @property
    def default_clean_pod_policy(self) -> str: ...
    @property
    def progress(self) -> ProgressRule: ...

    def read_job(self, body: Body) -> KubeflowJob: ...
    def pod_manifest(self, slot: PodSlot) -> Manifest: ...
    def service_manifest(self, slot: PodSlot) -> Manifest: ...


# ---------------------------------------------------------------------------------------------
# One reconcile pass.


@dataclass(frozen=True)
class _Failure:
    message: str
    stops_active_pods: bool = False
    deadline_exceeded: bool = False


class _Pass(StatusPass):
    """Plans one job from one observation; `run()` fills and returns `self.plan`."""

    def __init__(self, kind: PlannedKind, observed: Observed) -> None:
        super().__init__(observed)
        self.kind = kind
        self.job = kind.read_job(observed.job)
        self.run_policy = read_run_policy(self.job.spec)

    @property
    def title(self) -> str:
        """`TFJob tfjob-test`, the subject of every message."""
        return f"{self.kind.resource.kind} {self.job.name}"

    def run(self) -> Plan:
        self._transition(cond.CREATED, f"{self.title} is created.", "Normal")
        if cond.is_finished(self.conditions):
            self._clean_up(stop_active=self._finished_past_deadline())
        elif self.run_policy.suspend:
            self._suspend()
        else:
            self._resume()
            self.status.setdefault("startTime", to_rfc3339(self.observed.now))
            self._reconcile()
        self._set_timers()
        self.surface_faults(idle=cond.is_finished(self.conditions) or self.run_policy.suspend)
        return self.finished_plan()

    # -- suspend and resume (training-operator v1.7+ `runPolicy.suspend`) ------------------------

    def _suspend(self) -> None:
        """Every pod and service goes whatever the cleanPodPolicy (the job is not finished), active
        counts drop to 0, Running (or Restarting) stops holding, and `Suspended` holds."""
        self.plan.delete.extend(
            ChildRef(child_kind, name)
            for child_kind, children in (("Pod", self.observed.pods), ("Service", self.observed.services))
            for name, child in children.items()
            if not is_terminating(child)
        )
        self._delete_podgroup()
        for counts in (self.status.get(self.kind.status_key) or {}).values():
            counts.pop("active", None)
        message = f"{self.title} is suspended."
        reason = self._reason(cond.SUSPENDED)
        if cond.holds(self.conditions, cond.RUNNING) or cond.holds(self.conditions, cond.RESTARTING):
            self.status["conditions"] = cond.set_condition(
                self.conditions, cond.RUNNING, reason, message, self.observed.now, status=cond.FALSE
            )
        if not cond.holds(self.conditions, cond.SUSPENDED):
            self._transition(cond.SUSPENDED, message, "Normal")

    def _resume(self) -> None:
        """A suspended job runs again as if it had just started: `startTime` (and so the active
        deadline) counts from now."""
        if not cond.holds(self.conditions, cond.SUSPENDED):
            return
        message = f"{self.title} is resumed."
        reason = self._reason("Resumed")
        self.status["conditions"] = cond.set_condition(
            self.conditions, cond.SUSPENDED, reason, message, self.observed.now, status=cond.FALSE
        )
        self.status["startTime"] = to_rfc3339(self.observed.now)
        self.plan.events.append(Event("Normal", reason, message))

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
            self.plan.deadline_exceeded = failure.deadline_exceeded
        else:
            self._restart(retrying)
            if self._gang_admitted():
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
            return _Failure(deadline, stops_active_pods=True, deadline_exceeded=True)
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

    def _gang_admitted(self) -> bool:
        """With gang scheduling, the PodGroup is made first and the pods only once Volcano admitted it."""
        if not gang.gang_scheduled(self.observed.settings):
            return True
        if self.job.name not in self.observed.of_kind("PodGroup"):
            self.plan.create.append(gang.podgroup_manifest(self.job))
        return gang.podgroup_admitted(self.observed, self.job)

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
        pods_made = any(m["kind"] == "Pod" for m in self.plan.create)
        if (
            pods_made
            and gang.gang_scheduled(self.observed.settings)
            and gang.names_another_scheduler(self.job)
        ):
            self.plan.events.append(
                Event("Warning", gang.CUSTOM_SCHEDULER_REASON, gang.CUSTOM_SCHEDULER_MESSAGE)
            )

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
        self._delete_podgroup()

    def _delete_podgroup(self) -> None:
        """A finished or suspended job holds no place in Volcano's queue (upstream CleanUpResources)."""
        self.plan.delete.extend(
            ChildRef("PodGroup", name)
            for name, group in self.observed.of_kind("PodGroup").items()
            if not is_terminating(group)
        )

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
            # A suspended job's clock stops: it restarts from the resume (upstream resets startTime).
            self.plan.wake_at = None if self.run_policy.suspend else self._deadline()
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


def plan_job(kind: PlannedKind, observed: Observed) -> Plan:
    return _Pass(kind, observed).run()
