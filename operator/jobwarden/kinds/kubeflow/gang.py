"""Gang scheduling of TFJob, PyTorchJob and MXJob by Volcano, as training-operator release-1.9 does it
when started with `--gang-scheduler-name=volcano` (`pkg/controller.v1/common/job.go` ReconcileJobs,
`common/util.go` CalcPGMinResources, `common/pod.go`, `control/podgroup_control.go` VolcanoControl).

On when the operator runs with `--gang-scheduler=volcano` and Volcano's PodGroup CRD is installed:
- one PodGroup (`scheduling.volcano.sh/v1beta1`) named after the job, owned by it, with the job's
  annotations: `minMember` = `runPolicy.schedulingPolicy.minAvailable`, else every replica; `queue` =
  `schedulingPolicy.queue`, else `default`; `priorityClassName` = `schedulingPolicy.priorityClass`;
  `minResources` = `schedulingPolicy.minResources`, else the sum over the first `minMember` pods, each
  container counting its requests, or its limits when it has no requests;
- pods ask for `schedulerName: volcano` unless their template names a scheduler (kept, with a Warning
  `SetPodTemplateSchedulerName`), and carry `scheduling.k8s.io/group-name: <job>` and
  `volcano.sh/task-spec: <replica type, lower case>`;
- pods and services are created only once Volcano admitted the PodGroup (its phase is set and not
  `Pending`);
- the PodGroup is deleted when the job finishes or is suspended (and made again on resume).

Where jobwarden differs: upstream counts `minResources` over the replica types ordered by the value of
their pods' PriorityClass; jobwarden does not read PriorityClasses (least privilege) and takes the
kind's replica-type order. `schedulingPolicy.scheduleTimeoutSeconds` belongs to scheduler-plugins'
PodGroup; upstream leaves it out of Volcano's, and so does jobwarden. Upstream rewrites the PodGroup's
spec when it differs; every field it derives from is immutable under the update contract, so
jobwarden only creates it.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Final

from jobwarden.core.children import child_metadata, manifest
from jobwarden.core.plan import CHILD_KINDS_BY_NAME, Manifest, Observed, Settings
from jobwarden.core.quantity import format_quantity, parse_quantity
from jobwarden.kinds.kubeflow.job import KubeflowJob

VOLCANO: Final = "volcano"  # the scheduler's name, and the one value of `--gang-scheduler`
GANG_SCHEDULERS: Final = (VOLCANO,)
PODGROUP_API_VERSION: Final = CHILD_KINDS_BY_NAME["PodGroup"].api_version
GROUP_NAME_ANNOTATION: Final = "scheduling.k8s.io/group-name"
TASK_SPEC_ANNOTATION: Final = "volcano.sh/task-spec"
DEFAULT_QUEUE: Final = "default"
CUSTOM_SCHEDULER_REASON: Final = "SetPodTemplateSchedulerName"
CUSTOM_SCHEDULER_MESSAGE: Final = (
    "Another scheduler is specified when gang-scheduling is enabled and it will not be overwritten"
)


def gang_scheduled(settings: Settings) -> bool:
    return settings.gang_scheduler == VOLCANO and settings.volcano_scheduler_installed


def scheduling_policy(job: KubeflowJob) -> Mapping[str, Any]:
    return (job.spec.get("runPolicy") or {}).get("schedulingPolicy") or {}


def podgroup_manifest(job: KubeflowJob) -> Manifest:
    policy = scheduling_policy(job)
    min_member = policy.get("minAvailable")
    min_member = job.total_replicas if min_member is None else int(min_member)
    spec: dict[str, Any] = {"minMember": min_member, "queue": policy.get("queue") or DEFAULT_QUEUE}
    if policy.get("priorityClass"):
        spec["priorityClassName"] = policy["priorityClass"]
    resources = policy.get("minResources")
    resources = dict(resources) if resources is not None else min_resources(job, min_member)
    if resources:
        spec["minResources"] = resources
    annotations = (job.body.get("metadata") or {}).get("annotations")
    metadata = child_metadata(job.body, job.name, annotations=annotations)
    return manifest(PODGROUP_API_VERSION, "PodGroup", metadata, spec=spec)


def min_resources(job: KubeflowJob, min_member: int) -> dict[str, str]:
    """What the first `min_member` pods ask for, summed by resource name."""
    total: dict[str, Fraction] = {}
    counted = 0
    for replica in job.replicas.values():
        for _ in range(replica.count):
            if counted >= min_member:
                break
            counted += 1
            for container in (replica.template.get("spec") or {}).get("containers") or []:
                _add(total, _container_ask(container))
    return {name: format_quantity(value) for name, value in sorted(total.items())}


def _container_ask(container: Mapping[str, Any]) -> Mapping[str, Any]:
    # Kubernetes defaults a container's requests to its limits only when it has no requests at all.
    resources = container.get("resources") or {}
    requests = resources.get("requests")
    return requests if requests is not None else resources.get("limits") or {}


def _add(total: dict[str, Fraction], ask: Mapping[str, Any]) -> None:
    for name, value in ask.items():
        try:
            total[name] = total.get(name, Fraction(0)) + parse_quantity(value)
        except ValueError:
            continue  # admission refuses such a job; a stored one is counted without it


def podgroup_admitted(observed: Observed, job: KubeflowJob) -> bool:
    """Volcano's scheduler moved the PodGroup past Pending (upstream's DelayPodCreationDueToPodGroup)."""
    group = observed.of_kind("PodGroup").get(job.name)
    phase = ((group or {}).get("status") or {}).get("phase")
    return group is not None and phase not in (None, "", "Pending")


def decorate_pod(pod: Manifest, replica_type: str, job: KubeflowJob) -> None:
    """Scheduler name and the PodGroup annotations on a pod manifest (in place)."""
    spec = pod["spec"]
    spec["schedulerName"] = spec.get("schedulerName") or VOLCANO
    annotations = pod["metadata"].setdefault("annotations", {})
    annotations[GROUP_NAME_ANNOTATION] = job.name
    annotations[TASK_SPEC_ANNOTATION] = replica_type.lower()


def names_another_scheduler(job: KubeflowJob) -> bool:
    return any(
        (r.template.get("spec") or {}).get("schedulerName") not in (None, "", VOLCANO)
        for r in job.replicas.values()
    )
