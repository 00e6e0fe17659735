"""Drives XGBoostJob, PaddleJob and JAXJob through the Kubeflow Python SDK (`kubeflow-training` 1.9.x,
the `sdk` extra) as a user of training-operator v1.9 would. Runs under .venv-sdk's Python (the SDK pins
an older kubernetes client than the tests use), called by test_kubeflow_family.py:

    python kubeflow_sdk_client.py KUBECONFIG NAMESPACE create   # create, wait Running, read back
    python kubeflow_sdk_client.py KUBECONFIG NAMESPACE finish   # wait Succeeded, read back, delete

Prints one JSON object: per kind, what the SDK saw."""

from __future__ import annotations

import json
import sys
from typing import Any

from kubeflow.training import TrainingClient, models
from kubernetes.client import V1Container, V1ObjectMeta, V1PodSpec, V1PodTemplateSpec

NAMES = {"XGBoostJob": "sdk-xgboost", "PaddleJob": "sdk-paddle", "JAXJob": "sdk-jax"}


def replica(container: str, replicas: int, restart_policy: str) -> Any:
    image = f"registry.example/{container}:1"
    template = V1PodTemplateSpec(spec=V1PodSpec(containers=[V1Container(name=container, image=image)]))
    return models.KubeflowOrgV1ReplicaSpec(
        replicas=replicas, restart_policy=restart_policy, template=template
    )


def build(kind: str) -> Any:
    metadata = V1ObjectMeta(name=NAMES[kind])
    run_policy = models.KubeflowOrgV1RunPolicy(clean_pod_policy="None")
    if kind == "XGBoostJob":
        specs = {"Master": replica("xgboost", 1, "Never"), "Worker": replica("xgboost", 2, "Never")}
        spec = models.KubeflowOrgV1XGBoostJobSpec(run_policy=run_policy, xgb_replica_specs=specs)
        return models.KubeflowOrgV1XGBoostJob(
            api_version="kubeflow.org/v1", kind=kind, metadata=metadata, spec=spec
        )
    if kind == "PaddleJob":
        specs = {"Master": replica("paddle", 1, "OnFailure"), "Worker": replica("paddle", 2, "OnFailure")}
        spec = models.KubeflowOrgV1PaddleJobSpec(run_policy=run_policy, paddle_replica_specs=specs)
        return models.KubeflowOrgV1PaddleJob(
            api_version="kubeflow.org/v1", kind=kind, metadata=metadata, spec=spec
        )
    specs = {"Worker": replica("jax", 2, "Never")}
    spec = models.KubeflowOrgV1JAXJobSpec(run_policy=run_policy, jax_replica_specs=specs)
    return models.KubeflowOrgV1JAXJob(api_version="kubeflow.org/v1", kind=kind, metadata=metadata, spec=spec)


def seen(client: TrainingClient, kind: str, job: Any) -> dict[str, Any]:
    name = NAMES[kind]
    return {
        "kind": job.kind,
        "conditions": [c.type for c in client.get_job_conditions(name, job_kind=kind) if c.status == "True"],
        "replica_statuses": {t: s.to_dict() for t, s in (job.status.replica_statuses or {}).items()},
        "master_pods": sorted(client.get_job_pod_names(name, is_master=True)),
        "pods": sorted(client.get_job_pod_names(name)),
        "listed": sorted(j.metadata.name for j in client.list_jobs(job_kind=kind)),
    }


def main(kubeconfig: str, namespace: str, phase: str) -> None:
    report: dict[str, Any] = {}
    for kind in NAMES:
        client = TrainingClient(config_file=kubeconfig, namespace=namespace, job_kind=kind)
        if phase == "create":
            client.create_job(build(kind))
            job = client.wait_for_job_conditions(
                NAMES[kind], expected_conditions={"Running"}, wait_timeout=60, polling_interval=1
            )
            report[kind] = {**seen(client, kind, job), "running": client.is_job_running(NAMES[kind])}
        else:
            job = client.wait_for_job_conditions(NAMES[kind], wait_timeout=60, polling_interval=1)
            report[kind] = {**seen(client, kind, job), "succeeded": client.is_job_succeeded(NAMES[kind])}
            client.delete_job(NAMES[kind])
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:4])
