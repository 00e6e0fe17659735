"""The pods of a Volcano job: the labels and annotations upstream puts on them (`createJobPod`, spec
§4.4), the observed pods as the plan reads them, and the manifest of a new pod."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobwarden.core.children import child_metadata, manifest
from jobwarden.core.plan import Body, Manifest
from jobwarden.core.pods import is_terminating, pod_phase
from jobwarden.core.timefmt import from_rfc3339
from jobwarden.kinds.volcano.spec import Task, VolcanoJob
from jobwarden.plugins.base import JOB_NAME_LABEL, JOB_NAMESPACE_LABEL, pod_name

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

# Pod phases.
POD_PENDING, POD_RUNNING, POD_SUCCEEDED, POD_FAILED = "Pending", "Running", "Succeeded", "Failed"
POD_UNKNOWN = "Unknown"
FINISHED_POD_PHASES = frozenset({POD_SUCCEEDED, POD_FAILED})

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


# ---------------------------------------------------------------------------------------------
# A new pod.


@dataclass(frozen=True)
class PodIdentity:
    """What a new pod's annotations say about the job it belongs to at this plan."""

    version: int
    retry_count: int
    scheduler: str


def pod_manifest(job: VolcanoJob, task: Task, index: int, identity: PodIdentity) -> Manifest:
    template = copy.deepcopy(dict(task.template))
    template_meta = template.get("metadata") or {}
    spec = template.setdefault("spec", {})
    spec["schedulerName"] = identity.scheduler
    if not spec.get("priorityClassName") and job.priority_class_name:
        spec["priorityClassName"] = job.priority_class_name
    _mount_claims(job, spec)
    name = pod_name(job.name, task.name, index)
    labels = {**(template_meta.get("labels") or {}), **pod_labels(job, task, index)}
    annotations = {**(template_meta.get("annotations") or {}), **pod_annotations(job, task, index, identity)}
    pod = manifest("v1", "Pod", child_metadata(job.body, name, labels, annotations), spec=spec)
    for plugin in job.plugins.plugins:
        plugin.on_pod_create(pod, job.context, task.name, index)
    return pod


def _mount_claims(job: VolcanoJob, spec: dict[str, Any]) -> None:
    """Each claim (`volumeClaimName`, or the one made from `volumeClaim`) into every container (not
    init containers), as upstream."""
    for i, claim in enumerate(job.claims):
        volume_name = f"volcano-pvc-{i}"  # upstream: `<job>-<random>`; a plan must be deterministic
        spec["volumes"] = [
            *(spec.get("volumes") or []),
            {"name": volume_name, "persistentVolumeClaim": {"claimName": claim.name}},
        ]
        for container in spec.get("containers") or []:
            mounts = container.get("volumeMounts") or []
            container["volumeMounts"] = [*mounts, {"name": volume_name, "mountPath": claim.mount_path}]


def pod_labels(job: VolcanoJob, task: Task, index: int) -> dict[str, str]:
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


def pod_annotations(job: VolcanoJob, task: Task, index: int, identity: PodIdentity) -> dict[str, str]:
    annotations = {
        TASK_INDEX_KEY: str(index),
        TASK_SPEC_KEY: task.name,
        GROUP_NAME_KEY: job.podgroup_name,
        JOB_NAME_LABEL: job.name,
        QUEUE_NAME_KEY: job.queue,
        JOB_VERSION_KEY: str(identity.version),
        TEMPLATE_UID_KEY: f"{job.name}-{task.name}",
        JOB_RETRY_COUNT_KEY: str(identity.retry_count),
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
