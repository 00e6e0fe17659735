"""Scheduling a Volcano job: the PodGroup (gang scheduling by Volcano's scheduler, spec §4.3, §4.5),
the gate that lets pods be created, and the default-scheduler fallback when Volcano is not installed.

- Volcano installed: the PodGroup `<job>-<uid>` is created, and pods only once its phase is set and not
  Pending (a Warning `PodGroupPending` when the PodGroup is unschedulable).
- Not installed, fallback on (default): the gate is open at once and pods asking for the `volcano`
  scheduler (explicitly or by default) get `default-scheduler`; a pod template naming another
  scheduler keeps it.
- Not installed, fallback off: the gate stays closed (`VolcanoNotInstalled`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from jobwarden.core.children import child_metadata, manifest
from jobwarden.core.plan import CHILD_KINDS_BY_NAME, Manifest, Observed
from jobwarden.core.quantity import format_quantity, parse_quantity, quantities_equal
from jobwarden.kinds.volcano.defaults import VOLCANO_SCHEDULER
from jobwarden.kinds.volcano.spec import Task, VolcanoJob

PODGROUP_API_VERSION = CHILD_KINDS_BY_NAME["PodGroup"].api_version
# Kubernetes' own scheduler: what pods asking for Volcano's get when Volcano is not installed.
KUBE_DEFAULT_SCHEDULER = "default-scheduler"


# ---------------------------------------------------------------------------------------------
# The gate (§4.3 step 4: pods only once the PodGroup is admitted) and the fallback.


@dataclass(frozen=True)
class Gate:
    """Whether pods may be created (§4.3 step 4), and if not, why (for `state.reason`/`message`)."""

    open: bool
    reason: str = ""
    message: str = ""


def gate(observed: Observed, job: VolcanoJob) -> Gate:
    settings = observed.settings
    if settings.volcano_scheduler_installed:
        return _podgroup_gate(observed, job)
    if settings.volcano_fallback_to_default_scheduler:
        return Gate(True)
    message = (
        "Volcano's PodGroup CRD (scheduling.volcano.sh/v1beta1) is not installed and falling back to "
        "the default scheduler is disabled: the job stays Pending and no pods are created"
    )
    return Gate(False, "VolcanoNotInstalled", message)


def _podgroup_gate(observed: Observed, job: VolcanoJob) -> Gate:
    group = observed.of_kind("PodGroup").get(job.podgroup_name)
    if group is None:
        return Gate(False)
    status = group.get("status") or {}
    if status.get("phase") not in (None, "", "Pending"):
        return Gate(True)
    queue_gate = _queue_gate(observed, job)
    if queue_gate is not None:
        return queue_gate
    held = [c for c in status.get("conditions") or [] if c.get("status") == "True"]
    newest = max(held, key=lambda c: str(c.get("lastTransitionTime") or ""), default=None)
    if newest is None or newest.get("type") == "Scheduled":
        return Gate(False)
    what = str(newest.get("type") or "").lower()
    message = f"PodGroup {job.namespace}:{job.name} {what}, reason: {newest.get('message') or ''}"
    return Gate(False, "PodGroupPending", message)


OPEN_QUEUE = "Open"


def _queue_gate(observed: Observed, job: VolcanoJob) -> Gate | None:
    """Volcano's scheduler admits nothing from a queue that is missing or not `Open` (only Volcano's
    queue controller opens a new one): name the queue and its state. None when the queue is open or
    Queues are not known (their CRD is absent)."""
    if observed.queues is None:
        return None
    queue = observed.queues.get(job.queue)
    waiting = f"PodGroup {job.podgroup_name} stays Pending"
    if queue is None:
        return Gate(
            False, "QueueNotFound", f"Queue {job.queue} does not exist: {waiting} until it is created"
        )
    state = str((queue.get("status") or {}).get("state") or "")
    if state == OPEN_QUEUE:
        return None
    shown = f"is {state}" if state else "has no state yet (not opened by Volcano's queue controller)"
    return Gate(False, "QueueNotOpen", f"Queue {job.queue} {shown}: {waiting} until it is Open")


def falls_back(observed: Observed, job: VolcanoJob) -> bool:
    settings = observed.settings
    if settings.volcano_scheduler_installed or not settings.volcano_fallback_to_default_scheduler:
        return False
    return any(requested_scheduler(job, t) == VOLCANO_SCHEDULER for t in job.tasks)


def fallback_message(job: VolcanoJob) -> str:
    return (
        f"Volcano's PodGroup CRD (scheduling.volcano.sh/v1beta1) is not installed: pods requesting "
        f'scheduler "{VOLCANO_SCHEDULER}" are created with "{KUBE_DEFAULT_SCHEDULER}", without gang '
        f"scheduling (minAvailable {job.min_available} is not enforced when pods are placed)"
    )


def requested_scheduler(job: VolcanoJob, task: Task) -> str:
    return str((task.template.get("spec") or {}).get("schedulerName") or job.scheduler_name)


def scheduler_for(observed: Observed, job: VolcanoJob, task: Task) -> str:
    requested = requested_scheduler(job, task)
    fallback = requested == VOLCANO_SCHEDULER and falls_back(observed, job)
    return KUBE_DEFAULT_SCHEDULER if fallback else requested


# ---------------------------------------------------------------------------------------------
# The PodGroup.


def podgroup_changes(observed: Observed, job: VolcanoJob) -> tuple[list[Manifest], list[Manifest]]:
    """(create, patch): the PodGroup when Volcano is installed and it is missing or out of date. An
    out-of-date one gets a merge patch of only the spec fields jobwarden writes: the scheduler writes
    the PodGroup's status (and other controllers may add fields), and a replace raced those writes."""
    if not observed.settings.volcano_scheduler_installed:
        return [], []
    live = observed.of_kind("PodGroup").get(job.podgroup_name)
    if live is None:
        meta = job.body.get("metadata") or {}
        metadata = child_metadata(job.body, job.podgroup_name, meta.get("labels"), meta.get("annotations"))
        return [manifest(PODGROUP_API_VERSION, "PodGroup", metadata, spec=podgroup_spec(job))], []
    live_spec = live.get("spec") or {}
    desired = podgroup_spec(job, live_spec.get("minTaskMember") or {})
    if _same_podgroup_spec(live_spec, desired):
        return [], []
    patch = {key: _merge_value(live_spec.get(key), value) for key, value in desired.items()}
    for key in ("priorityClassName", "networkTopology"):
        if key in live_spec and key not in desired:
            patch[key] = None  # a merge patch removes a key by setting it to null
    name = {"name": job.podgroup_name, "namespace": job.namespace}
    return [], [manifest(PODGROUP_API_VERSION, "PodGroup", name, spec=patch)]


def _merge_value(live: Any, desired: Any) -> Any:
    """A map in a merge patch merges key by key: keys only the live map has are set to null."""
    if isinstance(desired, dict) and isinstance(live, Mapping):
        return {**{key: None for key in live if key not in desired}, **desired}
    return desired


def podgroup_spec(job: VolcanoJob, created_task_members: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The spec jobwarden owns. `created_task_members` is the live PodGroup's `minTaskMember`: a task
    whose `minAvailable` Volcano's webhook defaulted keeps the value it had at creation (the replicas
    then), as upstream, where the default is stored in the job."""
    created = created_task_members or {}
    spec: dict[str, Any] = {
        "minMember": job.min_available,
        "minTaskMember": {
            t.name: t.min_available if t.min_available_given or t.name not in created else created[t.name]
            for t in job.tasks
        },
        "queue": job.queue,
        "minResources": _min_resources(job),
    }
    if job.priority_class_name:
        spec["priorityClassName"] = job.priority_class_name
    topology = (job.body.get("spec") or {}).get("networkTopology")
    if topology:
        spec["networkTopology"] = copy.deepcopy(topology)
    return spec


def _min_resources(job: VolcanoJob) -> dict[str, str]:
    total: dict[str, Fraction] = {}
    for task, count in gang(job):
        for name, value in pod_quota_usage(task.template).items():
            total[name] = total.get(name, Fraction(0)) + value * count
    return {name: format_quantity(value) for name, value in sorted(total.items())}


def gang(job: VolcanoJob) -> list[tuple[Task, int]]:
    """How many pods of each task make the first `minAvailable` (upstream's order, §4.5)."""
    tasks, left = job.tasks, job.min_available
    counts = [0] * len(tasks)
    if left >= sum(t.min_available for t in tasks):
        for i, task in enumerate(tasks):  # every task's own minimum first
            counts[i] = min(task.min_available, left)
            left -= counts[i]
    for i, task in enumerate(tasks):  # then fill up from what the tasks have beyond that
        extra = min(task.replicas - counts[i], left)
        counts[i] += extra
        left -= extra
    return list(zip(tasks, counts, strict=True))


def _same_podgroup_spec(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Upstream updates the PodGroup when one of these differs."""
    for key in ("minMember", "minTaskMember", "priorityClassName", "queue"):
        if (live.get(key) or None) != (desired.get(key) or None):
            return False
    return same_resources(live.get("minResources") or {}, desired.get("minResources") or {})


# ---------------------------------------------------------------------------------------------
# Quantities for the PodGroup's minResources.


_COMPUTE = ("cpu", "memory", "ephemeral-storage")


def pod_quota_usage(template: Mapping[str, Any]) -> dict[str, Fraction]:
    """What upstream sums per pod (volcano `pkg/controllers/util/util.go` GetPodQuotaUsage, on
    Kubernetes' quota `PodUsageFunc`): `count/pods` and `pods` 1; `cpu`, `memory`, `ephemeral-storage`
    and their `requests.*` from the requests, `limits.*` from the limits; `hugepages-*` and extended
    resources as `requests.<name>` (and, as upstream adds them, hugepages and extended resources also
    bare). Requests are the containers' sum, raised to any init container's, plus the pod overhead; a
    container with a limit but no request counts no request (the template is not defaulted)."""
    spec = template.get("spec") or {}
    requests = _pod_total(spec, "requests")
    limits = _pod_total(spec, "limits")
    usage: dict[str, Fraction] = {"count/pods": Fraction(1), "pods": Fraction(1)}
    for name in _COMPUTE:
        if name in requests:
            usage[name] = usage[f"requests.{name}"] = requests[name]
        if name in limits:
            usage[f"limits.{name}"] = limits[name]
    for name, value in requests.items():
        if name.startswith("hugepages-") or _extended(name):
            usage[f"requests.{name}"] = usage[name] = value
    return usage


def _extended(name: str) -> bool:
    """Kubernetes' IsExtendedResourceName: a domain-prefixed name outside kubernetes.io."""
    domain = name.partition("/")[0] if "/" in name else ""
    return bool(domain) and not domain.endswith("kubernetes.io")


def _pod_total(spec: Mapping[str, Any], kind: str) -> dict[str, Fraction]:
    total: dict[str, Fraction] = {}
    for container in spec.get("containers") or []:
        for name, value in _quantities((container.get("resources") or {}).get(kind)).items():
            total[name] = total.get(name, Fraction(0)) + value
    for container in spec.get("initContainers") or []:
        for name, value in _quantities((container.get("resources") or {}).get(kind)).items():
            total[name] = max(total.get(name, Fraction(0)), value)
    for name, value in _quantities(spec.get("overhead")).items():
        total[name] = total.get(name, Fraction(0)) + value
    return total


def _quantities(values: Any) -> dict[str, Fraction]:
    parsed: dict[str, Fraction] = {}
    for name, value in (values or {}).items():
        try:
            parsed[str(name)] = parse_quantity(value)
        except ValueError:
            continue
    return parsed


def same_resources(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Equal by value, so the apiserver's canonical form (`1024Mi` → `1Gi`, `1000m` → `1`) is no change."""
    return live.keys() == desired.keys() and all(quantities_equal(live[k], desired[k]) for k in desired)
