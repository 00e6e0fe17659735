"""Kueue's updates to a Kubeflow job, as Kueue v0.17 writes them (issue 26), for the unit and the
integration tests. The tests do not build Kueue (a cold build takes minutes): these are its two writes,
replayed; the real Kueue runs against jobwarden in the opt-in `python -m benchmarks.kueue`.

- Admission (jobframework `startJob` -> `RunWithPodSetsInfo`, `podset.Merge`): ONE update that sets
  `runPolicy.suspend` false and, in every replica's pod template, merges the labels
  `kueue.x-k8s.io/podset` (the replica type, lower case; always), the queue labels, the annotation
  `kueue.x-k8s.io/workload`, and the ResourceFlavor's `nodeSelector` and `tolerations` (with
  topology-aware scheduling also a `schedulingGates` entry).
- Eviction (`stopJob`: `Suspend` then `RestorePodSetsInfo`, `podset.RestorePodSpec`): ONE update that
  sets `runPolicy.suspend` true and puts every template's labels, annotations, nodeSelector,
  tolerations and schedulingGates back as they were before the admission (absent when they were).
"""

from __future__ import annotations

import copy
from typing import Any

from jobwarden.core.quantity import format_quantity, is_quantity, parse_quantity

Body = dict[str, Any]

QUEUE_LABELS = {
    "kueue.x-k8s.io/local-queue-name": "team-a",
    "kueue.x-k8s.io/cluster-queue-name": "cluster-queue",
}
FLAVOR_NODE_LABELS = {"cloud.example.com/accelerator": "a100", "kubernetes.io/arch": "amd64"}
FLAVOR_TOLERATIONS = [
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoExecute"},
]
TOPOLOGY_GATE = {"name": "kueue.x-k8s.io/topology"}
DIRECTIVES = (("metadata", "labels"), ("metadata", "annotations"))
POD_DIRECTIVES = ("nodeSelector", "tolerations", "schedulingGates")


RUN_POLICY_FIELDS = ("cleanPodPolicy", "ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit")


def kueue_ready(body: Body, suspend: bool = True) -> Body:
    """A Kubeflow job as queued with Kueue (docs/install.md): created suspended, its run policy in
    `spec.runPolicy` and its quantities as Go writes them (Kueue writes the job back from its typed
    Go model, which has no top-level run-policy fields and re-serialises every quantity: a job in the
    seeds' legacy layout would lose those fields in Kueue's update, and `cpu: 2` or `"1000m"` would
    come back as `"2"` or `"1"`, a change to the admission policy, which compares quantities as
    written)."""
    job = as_go_writes_quantities(body)
    run_policy = job["spec"].setdefault("runPolicy", {})
    for field in RUN_POLICY_FIELDS:
        if field in job["spec"]:
            run_policy[field] = job["spec"].pop(field)
    run_policy["suspend"] = suspend
    return job


def as_go_writes_quantities(job: Body) -> Body:
    """Every container's requests and limits in resource.Quantity's canonical form (`2` -> `"2"`,
    `"1000m"` -> `"1"`, `"1024Mi"` -> `"1Gi"`)."""
    new = copy.deepcopy(job)
    for replica in replica_specs(new).values():
        pod = replica.get("template", {}).get("spec", {})
        for container in (*pod.get("initContainers", []), *pod.get("containers", [])):
            for section in container.get("resources", {}).values():
                for name, value in section.items() if isinstance(section, dict) else ():
                    if is_quantity(value):
                        section[name] = format_quantity(parse_quantity(value))
    return new


def as_go_writes_it(job: Body) -> Body:
    """What a typed Go client sends back for a job it read: quantities in canonical form, every pod
    template with `metadata.creationTimestamp: null` and every container with `resources: {}`
    (non-pointer structs are never left out; empty values the apiserver and jobwarden treat as
    absent)."""
    new = as_go_writes_quantities(job)
    for replica in replica_specs(new).values():
        template = replica.setdefault("template", {})
        template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        pod = template.setdefault("spec", {})
        for container in (*pod.get("initContainers", []), *pod.get("containers", [])):
            container.setdefault("resources", {})
    return new


def replica_specs(job: Body) -> dict[str, Any]:
    [field] = [key for key in job["spec"] if key.endswith("ReplicaSpecs")]
    specs: dict[str, Any] = job["spec"][field]
    return specs


def admitted(job: Body, workload: str = "pytorchjob-job-3c9f1", topology: bool = False) -> Body:
    """The update with which Kueue starts a suspended job it admitted."""
    new = as_go_writes_it(job)
    new["spec"].setdefault("runPolicy", {})["suspend"] = False
    for replica_type, replica in replica_specs(new).items():
        template = replica.setdefault("template", {})
        metadata = template.setdefault("metadata", {})
        labels = metadata.setdefault("labels", {})
        labels.update({"kueue.x-k8s.io/podset": replica_type.lower(), **QUEUE_LABELS})
        metadata.setdefault("annotations", {})["kueue.x-k8s.io/workload"] = workload
        pod = template.setdefault("spec", {})
        pod["nodeSelector"] = {**FLAVOR_NODE_LABELS, **pod.get("nodeSelector", {})}
        tolerations = pod.setdefault("tolerations", [])
        tolerations += [t for t in FLAVOR_TOLERATIONS if t not in tolerations]
        if topology:
            labels["kueue.x-k8s.io/tas"] = "true"
            pod.setdefault("schedulingGates", []).append(TOPOLOGY_GATE)
    return new


def evicted(running: Body, before_admission: Body) -> Body:
    """The update with which Kueue suspends an evicted job and restores its templates."""
    new = as_go_writes_it(running)
    new["spec"].setdefault("runPolicy", {})["suspend"] = True
    originals = replica_specs(before_admission)
    for replica_type, replica in replica_specs(new).items():
        original = originals[replica_type].get("template", {})
        template = replica["template"]
        for section, key in DIRECTIVES:
            _restore(template.setdefault(section, {}), original.get(section, {}), key)
        for key in POD_DIRECTIVES:
            _restore(template.setdefault("spec", {}), original.get("spec", {}), key)
    return new


def _restore(target: dict[str, Any], original: dict[str, Any], key: str) -> None:
    if key in original:
        target[key] = copy.deepcopy(original[key])
    else:
        target.pop(key, None)
