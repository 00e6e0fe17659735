"""MXJob (`kubeflow.org/v1`, `mxjobs`): what is MXNet's own, on top of `kubeflow.KubeflowKind`.

- Env in every container (spec §4.3): `MX_CONFIG` (cluster of `{url, port}` per replica type, labels,
  own task), the `DMLC_*` variables of the parameter-server launcher, `DMLC_WORKER_ID` on workers.
- Success and Running follow the Scheduler; without one (single-worker training, MXTune) the Workers,
  else the Tuners. Upstream R17 cannot finish an MXTune job and fails the job on any failed pod
  even under OnFailure; here the common restart rules apply (see `kubeflow`).
- Status counts under `status.mxReplicaStatuses`, as the seeds (mxnet-operator v1.0.0) show.
- Default cleanPodPolicy `All`, as mxnet-operator v1.0.0 (training-operator v1.6+: `None`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from jobwarden.core.admission import enum_errors
from jobwarden.core.fielderrors import FieldError
from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow.kind import KubeflowKind, PodSlot, Port, Replica, compact_json, led_by
from jobwarden.kinds.kubeflow.validation import KubeflowShape

MX_JOB_MODES: Final = ("MXTrain", "MXTune")


def mx_spec_errors(spec: Mapping[str, Any]) -> list[FieldError]:
    return enum_errors("spec.jobMode", spec.get("jobMode"), MX_JOB_MODES)


MXJOB_SHAPE: Final = KubeflowShape(
    kind="MXJob",
    replica_specs_field="mxReplicaSpecs",
    replica_types=("Scheduler", "Server", "Worker", "TunerTracker", "TunerServer", "Tuner"),
    container_name="mxnet",
    default_restart_policy="Never",
    single_master_types=("Scheduler",),
    spec_errors=mx_spec_errors,
)

# Old MX replica specs carried a `label`; training-operator reads this pod-template annotation instead.
TUNER_LABEL_ANNOTATION = "tuner-server-key"


def mx_env(slot: PodSlot) -> dict[str, str]:
    job = slot.job
    has_scheduler = job.has("Scheduler")
    env = {
        "MX_CONFIG": compact_json(_mx_config(slot)),
        "DMLC_PS_ROOT_PORT": str(job.port("Scheduler")) if has_scheduler else "0",
        "DMLC_PS_ROOT_URI": job.pod_name("Scheduler", 0) if has_scheduler else "",
        "DMLC_NUM_SERVER": str(job.count("Server")),
        "DMLC_NUM_WORKER": str(job.count("Worker")),
        "DMLC_ROLE": slot.replica.slug,
        "DMLC_USE_KUBERNETES": "1",
    }
    if slot.replica.type == "Worker":
        env["DMLC_WORKER_ID"] = str(slot.index)
    return env


def _mx_config(slot: PodSlot) -> dict[str, Any]:
    job = slot.job
    replicas = job.cluster_replicas
    cluster = {
        r.slug: [{"url": job.pod_name(r.type, index), "port": job.port(r.type)} for index in range(r.count)]
        for r in replicas
    }
    labels = {r.slug: _label(r) for r in replicas}
    return {"cluster": cluster, "labels": labels, "task": {"type": slot.replica.slug, "index": slot.index}}


def _label(replica: Replica) -> str:
    annotations = (replica.template.get("metadata") or {}).get("annotations") or {}
    return str(replica.spec.get("label") or annotations.get(TUNER_LABEL_ANNOTATION) or "")


KIND = KubeflowKind(
    resource=Resource("kubeflow.org", "v1", "mxjobs", "MXJob"),
    shape=MXJOB_SHAPE,
    operator_name="mxjob-controller",
    default_port=Port("mxjob-port", 9091),
    status_key="mxReplicaStatuses",
    default_clean_pod_policy="All",
    progress=led_by("Scheduler", "Worker", "Tuner"),
    build_env=mx_env,
    env_in_every_container=True,
)
