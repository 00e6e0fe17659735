"""One reconcile pass of an MPIJob, as mpi-operator v0.8's syncHandler and updateMPIJobStatus run it:

1. the first pass marks the job Created (`MPIJobCreated`, "MPIJob <ns>/<name> is created.");
2. a finished job (Succeeded or Failed, with `completionTime`) only has its cleanPodPolicy applied:
   `All` deletes the workers, `Running` the Running and Pending ones, `None` (the default) none; the
   Worker counts are reset and the PodGroup goes;
3. otherwise `startTime` is set (unless suspended) and, while the launcher Job has not finished: the
   Service, the ConfigMap (rewritten when the hostfile or discover_hosts.sh changes), the ssh Secret;
   unless suspended the PodGroup (gang scheduling) and the workers (surplus ones deleted, missing ones
   created; failed ones are not replaced, as upstream); then the launcher Job, at once
   (`AtStartup`) or once every worker is Ready (`WaitForWorkersReady`), suspended if the job is;
4. the launcher Job is suspended or resumed with the job; a suspended job's workers are deleted;
5. the status follows the launcher Job: Complete → `Succeeded` (`MPIJobSucceeded`, "MPIJob
   <ns>/<name> successfully completed.", the Job's completionTime); Failed → `Failed` with the Job's
   reason and message (`BackoffLimitExceeded`, `DeadlineExceeded`, else `MPIJobFailed`); an evicted
   worker → `Failed` (`MPIJobEvicted`, "<k>/<n> workers are evicted"); `Running` once the launcher has
   a running pod and every worker runs; `Suspended` True/False (`MPIJobSuspended`/`MPIJobResumed`),
   a resume resetting `startTime`. A job that finished without ever running gets `Running` False
   ("... is finished but Running condition was never set.") at its completion time.

Where jobwarden differs on purpose (docs/behaviour.md, "MPIJob"):
- The launcher's pods are seen through the shell (labelled managed-by=jobwarden by the Job's template,
  shown with the job's pods); one launcher made before that label is counted from its Job's `ready`.
  Past the backoff limit, the last failed launcher pod's reason and message are appended only when
  the pod has them (upstream appends `/` and `: ` even when empty).
- An evicted worker fails the job for good: `completionTime` is set, the cleanPodPolicy applies and the
  launcher Job, if it still runs, is suspended. Upstream sets Failed without completionTime and keeps
  reconciling, so a later launcher outcome flips it.
- Conditions are stored in an order that keeps the last one meaningful for the STATE column: a Running
  condition turned False by a suspend or a finish is placed before the Suspended/finish condition.
- On resume, the launcher Job's scheduling directives (template labels and annotations, merged;
  nodeSelector, tolerations, schedulingGates, replaced) are synced from the current template only
  when the Job never started (what Kubernetes accepts as is); upstream first clears a started Job's
  `status.startTime` through its status subresource, which jobwarden does not write.
- Allowed run-policy changes reach the launcher Job: `activeDeadlineSeconds` and
  `ttlSecondsAfterFinished` are patched onto it (upstream leaves the Job as it was created).
- Events are posted on transitions only (upstream re-posts Running and Succeeded on later syncs).
- A terminating launcher Job (Kubernetes' TTL controller deletes a finished one in the foreground)
  still gives the job its outcome, and no second launcher is created while it goes; upstream's lister
  shows it too. A launcher Job removed before its outcome was seen is made again, as upstream."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from jobwarden.core import conditions as cond
from jobwarden.core.children import is_controlled_by
from jobwarden.core.plan import Body, ChildRef, Event, Manifest, Observed, Plan
from jobwarden.core.pods import POD_FAILED, POD_PENDING, POD_RUNNING, POD_SUCCEEDED, is_terminating, pod_phase
from jobwarden.core.statuspass import StatusPass
from jobwarden.core.timefmt import to_rfc3339
from jobwarden.kinds.kubeflow import gang
from jobwarden.kinds.kubeflow.mpijob import children
from jobwarden.kinds.kubeflow.mpijob.spec import (
    KIND_NAME,
    LAUNCHER,
    WAIT_FOR_WORKERS_READY,
    WORKER,
    MpiJob,
    read_mpijob,
)
from jobwarden.kinds.kubeflow.mpijob.views import gang_view

CREATED_REASON: Final = "MPIJobCreated"
RUNNING_REASON: Final = "MPIJobRunning"
SUCCEEDED_REASON: Final = "MPIJobSucceeded"
FAILED_REASON: Final = "MPIJobFailed"
SUSPENDED_REASON: Final = "MPIJobSuspended"
RESUMED_REASON: Final = "MPIJobResumed"
EVICTED_REASON: Final = "MPIJobEvicted"
TEMPLATE_RESTART_POLICY_REASON: Final = "SetPodTemplateRestartPolicy"
EVENT_MESSAGE_LIMIT: Final = 1024


@dataclass(frozen=True)
class _Worker:
    index: int
    body: Body

    @property
    def phase(self) -> str:
        return pod_phase(self.body)

    @property
    def ready(self) -> bool:
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (self.body.get("status") or {}).get("conditions") or []
        )

    @property
    def evicted(self) -> bool:
        return self.phase == POD_FAILED and (self.body.get("status") or {}).get("reason") == "Evicted"


def job_condition(launcher: Body | None, condition_type: str) -> Mapping[str, Any] | None:
    for condition in ((launcher or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type and condition.get("status") == "True":
            return dict(condition)
    return None


def launcher_finished(launcher: Body | None) -> bool:
    return job_condition(launcher, "Complete") is not None or job_condition(launcher, "Failed") is not None


class _Pass(StatusPass):
    def __init__(self, observed: Observed) -> None:
        super().__init__(observed)
        self.job: MpiJob = read_mpijob(observed.job)
        # A terminating launcher still counts: Kubernetes' TTL controller deletes a finished Job in the
        # foreground, so its outcome shows while its pods go, and no second launcher may start then.
        self.launcher: Body | None = observed.of_kind("Job").get(self.job.launcher_name)

    @property
    def title(self) -> str:
        return f"MPIJob {self.job.namespace}/{self.job.name}"

    @property
    def suspended(self) -> bool:
        return self.job.run_policy.suspend

    def run(self) -> Plan:
        if not self.conditions:
            self._set(cond.CREATED, CREATED_REASON, f"{self.title} is created.", event="Normal")
        if cond.is_finished(self.conditions) and self.status.get("completionTime"):
            self._clean_up_finished()
        else:
            self._reconcile()
        self.surface_faults(idle=cond.is_finished(self.conditions) or self.suspended)
        return self.finished_plan()

    # -- a job not finished -----------------------------------------------------------------------

    def _reconcile(self) -> None:
        if self.status.get("startTime") is None and not self.suspended:
            self.status["startTime"] = to_rfc3339(self.observed.now)
        workers: list[_Worker] = []
        if not launcher_finished(self.launcher):
            self._ensure_shared_children()
            if not self.suspended:
                self._ensure_podgroup()
                workers = self._ensure_workers()
            if self.launcher is None and self._launcher_may_start(workers):
                self.launcher = self._create_launcher()
        if self.launcher is not None:
            self._sync_launcher()
        if self.suspended:
            self._clean_up_workers(self.job.run_policy.clean_pod_policy == "Running")
        self._update_status(workers)

    def _ensure_shared_children(self) -> None:
        job, observed = self.job, self.observed
        if job.name not in observed.services:
            self.plan.create.append(children.service(job))
        running = [
            name
            for name, pod in observed.pods.items()
            if job.worker_index(name) is not None and pod_phase(pod) == POD_RUNNING
        ]
        data = children.config_data(job, running, observed.settings.cluster_domain)
        existing = observed.configmaps.get(job.config_name)
        if existing is None:
            self.plan.create.append(children.config_map(job, data))
        elif dict(existing.get("data") or {}) != data and not is_terminating(existing):
            self.plan.replace.append({**copy.deepcopy(dict(existing)), "data": data})
        if job.secret_name not in observed.of_kind("Secret"):
            self.plan.create.append(children.requested_secret(job))

    def _ensure_podgroup(self) -> None:
        if gang.gang_scheduled(self.observed.settings) and self.job.name not in self.observed.of_kind(
            "PodGroup"
        ):
            self.plan.create.append(gang.podgroup_manifest(gang_view(self.job)))

    def _ensure_workers(self) -> list[_Worker]:
        """Surplus workers deleted, missing ones created; the workers as upstream lists them."""
        job, pods = self.job, self.observed.pods
        for name, pod in pods.items():
            index = job.worker_index(name)
            if index is not None and index >= job.worker_count and not is_terminating(pod):
                self.plan.delete.append(ChildRef("Pod", name))
        workers = []
        for index in range(job.worker_count):
            existing = pods.get(job.worker_name(index))
            if existing is None:
                created = self._worker_manifest(index)
                self.plan.create.append(created)
                existing = created
            workers.append(_Worker(index, existing))
        return workers

    def _worker_manifest(self, index: int) -> Manifest:
        pod = children.worker_pod(self.job, index, self.observed.settings)
        if gang.gang_scheduled(self.observed.settings):
            gang.decorate_pod(pod, WORKER, gang_view(self.job))
        return pod

    def _launcher_may_start(self, workers: list[_Worker]) -> bool:
        if self.job.launcher is None:
            return False  # admission refuses such a job; a stored one gets no launcher
        if self.job.launcher_creation_policy != WAIT_FOR_WORKERS_READY:
            return True
        return all(w.ready for w in workers)

    def _create_launcher(self) -> Manifest:
        launcher = children.launcher_job(self.job)
        launcher["spec"]["template"] = self._desired_template()
        self.plan.create.append(launcher)
        assert self.job.launcher is not None
        if (self.job.launcher.template.get("spec") or {}).get("restartPolicy"):
            message = "Restart policy in pod template overridden by restart policy in replica spec"
            self.plan.events.append(Event("Warning", TEMPLATE_RESTART_POLICY_REASON, message))
        return launcher

    def _sync_launcher(self) -> None:
        """The launcher Job follows the job's suspend and its (updatable) deadline and TTL."""
        assert self.launcher is not None
        meta = self.launcher.get("metadata") or {}
        if meta.get("resourceVersion") is None or is_terminating(self.launcher):
            return  # created in this pass, or on its way out
        spec = self.launcher.get("spec") or {}
        patch: dict[str, Any] = {}
        if bool(spec.get("suspend")) != self.suspended and not launcher_finished(self.launcher):
            patch["suspend"] = self.suspended
            if not self.suspended and not (self.launcher.get("status") or {}).get("startTime"):
                patch["template"] = self._scheduling_directives()
        policy = self.job.run_policy
        for field, value in (
            ("activeDeadlineSeconds", policy.active_deadline_seconds),
            ("ttlSecondsAfterFinished", policy.ttl_seconds_after_finished),
        ):
            if spec.get(field) != value:
                patch[field] = value
        if patch:
            self._patch_launcher(patch)

    def _scheduling_directives(self) -> dict[str, Any]:
        """What Kueue may have put into the launcher's template while the job was suspended (labels,
        annotations, nodeSelector, tolerations, schedulingGates: KEP-2926), from the current template,
        for the resume's patch. Kubernetes accepts them in a suspended Job that never started."""
        template = self._desired_template()
        meta, spec = template.get("metadata") or {}, template.get("spec") or {}
        return {
            "metadata": {key: meta[key] for key in ("labels", "annotations") if meta.get(key)},
            "spec": {key: spec.get(key) for key in ("nodeSelector", "tolerations", "schedulingGates")},
        }

    def _desired_template(self) -> dict[str, Any]:
        template = children.launcher_template(self.job)
        if gang.gang_scheduled(self.observed.settings):
            gang.decorate_pod(template, LAUNCHER, gang_view(self.job))
        return template

    def _patch_launcher(self, spec: dict[str, Any]) -> None:
        self.plan.patch.append(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": self.job.launcher_name},
                "spec": spec,
            }
        )

    # -- cleaning up ----------------------------------------------------------------------------

    def _clean_up_finished(self) -> None:
        policy = self.job.run_policy.clean_pod_policy
        if policy not in ("All", "Running"):
            return
        self._clean_up_workers(only_active=policy == "Running")

    def _clean_up_workers(self, only_active: bool) -> None:
        """Worker pods deleted (with `only_active`, only Running and Pending ones), the Worker counts
        reset and the PodGroup deleted (upstream cleanUpWorkerPods)."""
        for name, pod in self.observed.pods.items():
            if self.job.worker_index(name) is None or is_terminating(pod):
                continue
            if only_active and pod_phase(pod) not in (POD_RUNNING, POD_PENDING):
                continue
            self.plan.delete.append(ChildRef("Pod", name))
        statuses = dict(self.status.get("replicaStatuses") or {})
        statuses[WORKER] = {}
        self.status["replicaStatuses"] = statuses
        self.plan.delete.extend(
            ChildRef("PodGroup", name)
            for name, group in self.observed.of_kind("PodGroup").items()
            if not is_terminating(group)
        )

    # -- the status -------------------------------------------------------------------------------

    def _update_status(self, workers: list[_Worker]) -> None:
        self._suspension()
        statuses = dict(self.status.get("replicaStatuses") or {})
        if self.launcher is not None:
            statuses[LAUNCHER] = self._launcher_status()
        counts = {"active": 0, "succeeded": 0, "failed": 0}
        for worker in workers:
            key = {POD_RUNNING: "active", POD_SUCCEEDED: "succeeded", POD_FAILED: "failed"}.get(worker.phase)
            if key:
                counts[key] += 1
        statuses[WORKER] = {k: v for k, v in counts.items() if v}
        self.status["replicaStatuses"] = statuses
        evicted = sum(w.evicted for w in workers)
        if evicted and not cond.is_finished(self.conditions):
            self._fail(EVICTED_REASON, f"{evicted}/{len(workers)} workers are evicted")
            if self.launcher is not None and not (
                launcher_finished(self.launcher) or is_terminating(self.launcher)
            ):
                self._patch_launcher({"suspend": True})  # nothing of a failed job keeps running
            self._clean_up_finished()
        self._running(workers, counts["active"])

    def _suspension(self) -> None:
        if self.suspended:
            self._set_running_false(SUSPENDED_REASON, f"{self.title} is suspended.")
            self._set(cond.SUSPENDED, SUSPENDED_REASON, "MPIJob suspended", event="Normal")
        elif cond.find(self.conditions, cond.SUSPENDED) is not None and self._set(
            cond.SUSPENDED, RESUMED_REASON, "MPIJob resumed", event="Normal", status=cond.FALSE
        ):
            self.status["startTime"] = to_rfc3339(self.observed.now)

    def _launcher_status(self) -> dict[str, int]:
        launcher_status = (self.launcher or {}).get("status") or {}
        counts: dict[str, int] = {}
        if launcher_status.get("failed"):
            counts["failed"] = int(launcher_status["failed"])
        finished_already = cond.is_finished(self.conditions)
        failed = job_condition(self.launcher, "Failed")
        if job_condition(self.launcher, "Complete"):
            counts["succeeded"] = 1
            if not finished_already:
                self._succeed(launcher_status.get("completionTime"))
        elif failed:
            if not finished_already:
                self._fail(*self._launcher_failure(failed))
        elif self._launcher_running():
            counts["active"] = self._launcher_running()
        return counts

    def _launcher_pods(self) -> list[Body]:
        """The launcher Job's pods (the shell shows them with the job's own), terminating ones aside."""
        uid = ((self.launcher or {}).get("metadata") or {}).get("uid")
        return [
            pod
            for pod in self.observed.pods.values()
            if uid and not is_terminating(pod) and is_controlled_by(pod, str(uid))
        ]

    def _launcher_running(self) -> int:
        """The launcher's Running pods, as upstream counts them; the Job's `ready` count when none of
        its pods is seen (a launcher made before its pods carried jobwarden's label)."""
        pods = self._launcher_pods()
        if pods:
            return sum(pod_phase(p) == POD_RUNNING for p in pods)
        return int(((self.launcher or {}).get("status") or {}).get("ready") or 0)

    def _launcher_failure(self, failed: Mapping[str, Any]) -> tuple[str, str]:
        """upstream updateMPIJobFailedStatus: the Job's reason and message; past the backoff limit,
        the last failed launcher pod's reason and message appended (`BackoffLimitExceeded/Evicted`)."""
        reason = str(failed.get("reason") or FAILED_REASON)
        message = str(failed.get("message") or f"{self.title} has failed")
        if reason == "BackoffLimitExceeded":
            failed_pods = [p for p in self._launcher_pods() if pod_phase(p) == POD_FAILED]
            if failed_pods:
                last = max(failed_pods, key=lambda p: str(p["metadata"].get("creationTimestamp") or ""))
                pod_status = last.get("status") or {}
                if pod_status.get("reason"):
                    reason += f"/{pod_status['reason']}"
                if pod_status.get("message"):
                    message += f": {pod_status['message']}"
        if len(message) > EVENT_MESSAGE_LIMIT:
            message = message[: EVENT_MESSAGE_LIMIT - 3] + "..."
        return reason, message

    def _succeed(self, completion_time: str | None) -> None:
        self.status.setdefault("completionTime", completion_time or to_rfc3339(self.observed.now))
        self._finish(cond.SUCCEEDED, SUCCEEDED_REASON, f"{self.title} successfully completed.", "Normal")

    def _fail(self, reason: str, message: str) -> None:
        self.status.setdefault("completionTime", to_rfc3339(self.observed.now))
        self._finish(cond.FAILED, reason, message, "Warning")

    def _finish(self, outcome: str, reason: str, message: str, event_type: str) -> None:
        if cond.find(self.conditions, cond.RUNNING) is None:
            # Upstream adds it after the finish; before it, the STATE column shows the outcome.
            never = f"{self.title} is finished but Running condition was never set."
            self._set_running_false(RUNNING_REASON, never, at=self.status["completionTime"])
        self._set(outcome, reason, message, event=event_type)

    def _running(self, workers: list[_Worker], running_workers: int) -> None:
        if self.suspended or cond.is_finished(self.conditions) or self.launcher is None:
            return
        all_running = self._launcher_running() >= 1 and running_workers == len(workers)
        if all_running and self._set(cond.RUNNING, RUNNING_REASON, f"{self.title} is running."):
            self.plan.events.append(Event("Normal", RUNNING_REASON, f"{self.title} is running"))

    # -- conditions -----------------------------------------------------------------------------

    def _set(
        self,
        condition_type: str,
        reason: str,
        message: str,
        event: str | None = None,
        status: str = cond.TRUE,
    ) -> bool:
        updated = cond.set_condition(
            self.conditions, condition_type, reason, message, self.observed.now, status=status
        )
        if updated == self.conditions:
            return False
        self.status["conditions"] = updated
        if event is not None:
            self.plan.events.append(Event(event, reason, message))
        return True

    def _set_running_false(self, reason: str, message: str, at: str | None = None) -> None:
        updated = cond.set_condition(
            self.conditions, cond.RUNNING, reason, message, self.observed.now, status=cond.FALSE
        )
        if updated == self.conditions:
            return
        if at is not None:
            updated[-1] = {**updated[-1], "lastUpdateTime": at, "lastTransitionTime": at}
        self.status["conditions"] = updated


def plan_mpijob(observed: Observed) -> Plan:
    return _Pass(observed).run()


__all__ = ["KIND_NAME", "plan_mpijob"]
