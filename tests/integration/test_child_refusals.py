"""A child the apiserver refuses shows in the job's status, `kubectl get -o wide` and `describe`, and
clears once the child is created (issue 10, faults surface in status). Real refusals: a ResourceQuota
(403, the apiserver's quota admission with KCM's quota controller) and a name held by an object the
job does not own (409 AlreadyExists of a foreign Service)."""

from __future__ import annotations

from typing import Any

from devcluster.cluster import Cluster
from devcluster.operator import LocalOperator
from kubernetes import client

from testlib import load_seed, small_pytorchjob, wait_for

GROUP, VERSION = "kubeflow.org", "v1"
FAILURE = "ReplicaFailure"


def pytorchjob(namespace: str, name: str, workers: int) -> dict[str, Any]:
    return small_pytorchjob(namespace, name, workers)


def quota(core: client.CoreV1Api, namespace: str, pods: int) -> None:
    body = {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": str(pods)}}}
    try:
        core.replace_namespaced_resource_quota("pods", namespace, body)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_resource_quota(namespace, body)
    # Quota admission needs the controller to have computed the usage first.
    wait_for(
        lambda: (
            (core.read_namespaced_resource_quota("pods", namespace).status.hard or {}).get("pods")
            == str(pods)
        ),
        30,
        what="the quota controller to publish the quota",
    )


def failure_condition(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any] | None:
    job: Any = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "pytorchjobs", name)
    conditions = (job.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == FAILURE), None)


def pod_count(core: client.CoreV1Api, namespace: str, job: str) -> int:
    selector = f"training.kubeflow.org/job-name={job}"
    return len(core.list_namespaced_pod(namespace, label_selector=selector).items)


def test_a_quota_refusal_shows_in_status_and_kubectl_and_clears_when_lifted(
    cluster: Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    operator: LocalOperator,
) -> None:
    quota(core, namespace, pods=1)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "pytorchjobs", pytorchjob(namespace, "q", 3)
    )
    shown = wait_for(
        lambda: failure_condition(custom, namespace, "q"), 30, what="the ReplicaFailure condition"
    )
    assert shown["status"] == "True" and shown["reason"] == "FailedCreatePod"
    assert "exceeded quota" in shown["message"] and "403" in shown["message"]
    assert pod_count(core, namespace, "q") == 1
    wide = cluster.kubectl("get", "pytorchjob", "q", "-n", namespace, "-o", "wide").stdout
    assert "PROBLEM" in wide.splitlines()[0] and "exceeded quota" in wide
    state = cluster.kubectl("get", "pytorchjob", "q", "-n", namespace).stdout.split()
    assert state[:3] == ["NAME", "STATE", "AGE"] and state[4] in ("Created", "Running")  # lifecycle, still
    described = cluster.kubectl("describe", "pytorchjob", "q", "-n", namespace).stdout
    assert "FailedCreatePod" in described and "exceeded quota" in described

    quota(core, namespace, pods=10)
    wait_for(lambda: pod_count(core, namespace, "q") == 4, 40, what="the retries to create the other pods")
    wait_for(lambda: failure_condition(custom, namespace, "q") is None, 30, what="the condition to clear")


def test_a_name_held_by_a_foreign_object_is_named_in_status_and_clears_when_it_is_gone(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, operator: LocalOperator
) -> None:
    foreign = {
        "metadata": {"name": "f-master-0"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "other"}},
    }
    core.create_namespaced_service(namespace, foreign)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "pytorchjobs", pytorchjob(namespace, "f", 1)
    )
    shown = wait_for(
        lambda: failure_condition(custom, namespace, "f"), 30, what="the ReplicaFailure condition"
    )
    assert shown["reason"] == "FailedCreateService"
    assert "Service f-master-0 exists and is not controlled by PyTorchJob f" in shown["message"]

    core.delete_namespaced_service("f-master-0", namespace)
    wait_for(lambda: failure_condition(custom, namespace, "f") is None, 40, what="the condition to clear")
    service: Any = core.read_namespaced_service("f-master-0", namespace)
    assert service.metadata.owner_references[0].name == "f"


def test_a_volcano_job_refused_by_quota_says_so_in_its_state(
    cluster: Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    operator: LocalOperator,
) -> None:
    quota(core, namespace, pods=1)
    body = load_seed("volcanojob-put.request.json")
    body = {**body, "metadata": {"name": "vq", "namespace": namespace}}
    body.pop("status", None)
    custom.create_namespaced_custom_object("batch.volcano.sh", "v1alpha1", namespace, "jobs", body)

    def refused() -> dict[str, Any] | None:
        job: Any = custom.get_namespaced_custom_object(
            "batch.volcano.sh", "v1alpha1", namespace, "jobs", "vq"
        )
        state = (job.get("status") or {}).get("state") or {}
        return state if state.get("reason") == "FailedCreatePod" else None

    state = wait_for(refused, 30, what="state.reason FailedCreatePod")
    assert "exceeded quota" in state["message"]
    wide = cluster.kubectl("get", "vcjob", "vq", "-n", namespace, "-o", "wide").stdout
    assert "REASON" in wide.splitlines()[0] and "FailedCreatePod" in wide
