"""TFJob (`kubeflow.org/v1`, `tfjobs`): what is TensorFlow's own, on top of `kubeflow.KubeflowKind`.

- `TF_CONFIG` in the normal form of spec §4.1 (Evaluator included, as upstream since v1.0.1), only for
  a distributed job (more than one replica in all) and only into the first `tensorflow` container.
  With `enableDynamicWorker: true` the sparse form (training-operator `tensorflow.go`
  SparseTFConfig): `{"cluster":{"worker":{"<i>":"<own address>"},"ps":[every PS]},"task":…}` for a
  Worker, only its own address for a PS, an empty cluster for the other types; no `environment`.
- Success: with a Chief or Master, when all of its replicas succeeded; otherwise when Worker-0
  succeeded (or every worker did, under `successPolicy: AllWorkers`). Running likewise follows the
  Chief/Master, else the workers.
- Default cleanPodPolicy `Running`, as the 2019 tf-operator the seeds come from (v1.6+: `None`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from jobwarden.core.admission import enum_errors
from jobwarden.core.fielderrors import FieldError
from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow.kind import (
    KubeflowJob,
    KubeflowKind,
    PodSlot,
    Port,
    Progress,
    Tally,
    compact_json,
    leading_type,
    replica_progress,
)
from jobwarden.kinds.kubeflow.validation import KubeflowShape

TF_SUCCESS_POLICIES: Final = ("", "AllWorkers")


def tf_spec_errors(spec: Mapping[str, Any]) -> list[FieldError]:
    return enum_errors("spec.successPolicy", spec.get("successPolicy"), TF_SUCCESS_POLICIES)


TFJOB_SHAPE: Final = KubeflowShape(
    kind="TFJob",
    replica_specs_field="tfReplicaSpecs",
    replica_types=("PS", "Worker", "Chief", "Master", "Evaluator"),
    container_name="tensorflow",
    default_restart_policy="Never",
    single_master_types=("Chief", "Master"),
    spec_errors=tf_spec_errors,
)


def tf_config_env(slot: PodSlot) -> dict[str, str]:
    job = slot.job
    # A single process has no cluster to describe (upstream since v1.0.1).
    if job.total_replicas == 1:
        return {}
    replicas = job.cluster_replicas
    cluster = {r.slug: [_address(slot, r.type, index) for index in range(r.count)] for r in replicas}
    task = {"type": slot.replica.slug, "index": slot.index}
    if job.spec.get("enableDynamicWorker") is True:
        return {"TF_CONFIG": compact_json({"cluster": _sparse(cluster, slot), "task": task})}
    # Key order is the Go struct's (cluster, task, environment); the cluster map's keys are sorted.
    return {"TF_CONFIG": compact_json({"cluster": cluster, "task": task, "environment": "cloud"})}


def _sparse(cluster: Mapping[str, list[str]], slot: PodSlot) -> dict[str, Any]:
    """The sparse cluster a dynamic worker sees (upstream SparseClusterSpec): a PS knows only itself,
    a Worker itself (keyed by its index) and every PS, any other type nothing. Upstream writes
    `"ps": null` for a worker of a job without PS, which TensorFlow's ClusterSpec refuses; `[]` here."""
    workers: dict[str, str] = {}
    ps: list[str] = []
    if slot.replica.type == "PS":
        ps = [cluster["ps"][slot.index]]
    elif slot.replica.type == "Worker":
        ps = list(cluster.get("ps", []))
        workers = {str(slot.index): cluster["worker"][slot.index]}
    return {"worker": workers, "ps": ps}  # the Go struct's key order


def _address(slot: PodSlot, rtype: str, index: int) -> str:
    job = slot.job
    domain = slot.settings.cluster_domain
    host = f"{job.pod_name(rtype, index)}.{job.namespace}.svc" + (f".{domain}" if domain else "")
    return f"{host}:{job.port(rtype)}"


def tf_progress(job: KubeflowJob, counted: Tally) -> Progress:
    leader = leading_type(job, TFJOB_SHAPE.single_master_types)
    if leader is not None:
        return replica_progress(job, counted, leader)
    if job.spec.get("successPolicy") != "AllWorkers" and counted.phase("Worker", 0) == "Succeeded":
        return Progress.SUCCEEDED
    return replica_progress(job, counted, "Worker")


KIND = KubeflowKind(
    resource=Resource("kubeflow.org", "v1", "tfjobs", "TFJob"),
    shape=TFJOB_SHAPE,
    operator_name="tfjob-controller",
    default_port=Port("tfjob-port", 2222),
    status_key="replicaStatuses",
    default_clean_pod_policy="Running",
    progress=tf_progress,
    build_env=tf_config_env,
    env_in_every_container=False,
)
