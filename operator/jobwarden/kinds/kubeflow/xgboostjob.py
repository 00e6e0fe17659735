"""XGBoostJob (`kubeflow.org/v1`, `xgboostjobs`): what is XGBoost's own, on top of `kind.KubeflowKind`
(training-operator v1.9.4 `pkg/controller.v1/xgboost`, `xgboost_defaults.go`, `webhooks/xgboost`).

- Types Master and Worker; container `xgboost`, port `xgboostjob-port` 9999; restartPolicy `Never`;
  cleanPodPolicy `None`.
- Env in every container, in upstream's order (`xgboost.go` SetPodEnv): `MASTER_PORT` (the Master's
  port), `MASTER_ADDR` (`<job>-master-0`), `WORLD_SIZE` (every replica), `RANK` (Workers count after
  the Masters), `PYTHONUNBUFFERED=1`; with more than one replica also `WORKER_PORT` (the Worker's
  port) and `WORKER_ADDRS` (`<job>-worker-0,…`, for LightGBM).
- Admission: a Master is required and has exactly one replica (an unset `replicas` is the default 1,
  where upstream's webhook demands it written out: the family's rule, docs/behaviour.md).
- Success and Running follow the Master; Master pods carry `job-role=master`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from jobwarden.core.admission import as_mapping, required
from jobwarden.core.fielderrors import FieldError
from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow.kind import KubeflowKind, PodSlot, Port, led_by
from jobwarden.kinds.kubeflow.validation import KubeflowShape, canonical_replica_type


def xgboost_spec_errors(spec: Mapping[str, Any]) -> list[FieldError]:
    """The Master is the tracker every worker connects to: it must be there (upstream webhook)."""
    shape = XGBOOSTJOB_SHAPE
    replica_specs = spec.get(shape.replica_specs_field)
    if not isinstance(replica_specs, Mapping) or not replica_specs:
        return []  # the shared checks say the replica specs are missing
    if any(canonical_replica_type(shape, str(key)) == "Master" for key in as_mapping(replica_specs)):
        return []
    return [required(f"spec.{shape.replica_specs_field}.Master", "must be present")]


XGBOOSTJOB_SHAPE: Final = KubeflowShape(
    kind="XGBoostJob",
    replica_specs_field="xgbReplicaSpecs",
    replica_types=("Master", "Worker"),
    container_name="xgboost",
    default_restart_policy="Never",
    single_master_types=("Master",),
    exactly_one_types=("Master",),
    spec_errors=xgboost_spec_errors,
)


def xgboost_env(slot: PodSlot) -> dict[str, str]:
    job = slot.job
    total = job.total_replicas
    rank = slot.index + (job.count("Master") if slot.replica.type == "Worker" else 0)
    # Admission requires the Master; a job stored without one (webhook bypassed) still gets a plan.
    master_port = job.port_or_default("Master")
    env = {
        "MASTER_PORT": str(master_port),
        "MASTER_ADDR": job.pod_name("Master", 0),
        "WORLD_SIZE": str(total),
        "RANK": str(rank),
        "PYTHONUNBUFFERED": "1",
    }
    if total > 1 and job.has("Worker"):
        # Upstream lists `total - 1` workers: with the one Master admission allows, every Worker.
        env["WORKER_PORT"] = str(job.port("Worker"))
        env["WORKER_ADDRS"] = ",".join(job.pod_name("Worker", i) for i in range(total - 1))
    return env


KIND = KubeflowKind(
    resource=Resource("kubeflow.org", "v1", "xgboostjobs", "XGBoostJob"),
    shape=XGBOOSTJOB_SHAPE,
    operator_name="xgboostjob-controller",
    default_port=Port("xgboostjob-port", 9999),
    status_key="replicaStatuses",
    default_clean_pod_policy="None",
    progress=led_by("Master"),
    build_env=xgboost_env,
    env_in_every_container=True,
)
