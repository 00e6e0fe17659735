"""The operator under test runs inside the real node's network namespace: the apiserver there calls
its webhook (a malformed job is refused), and the pods it creates for a PyTorchJob really run and
reach each other at the `MASTER_ADDR`/`MASTER_PORT` it wires (a headless Service name CoreDNS
resolves). The training itself is the real-jobs tests' part; this is the fixture's own proof."""

from __future__ import annotations

import json
from typing import Any

from devcluster import cluster as devcluster
from devcluster import realnode
from devcluster.operator import LocalOperator
from kubernetes import client
from realnode_lib import diagnose

from testlib import wait_for


def netcheck_job(namespace: str, name: str) -> dict[str, Any]:
    def replica(args: list[str]) -> dict[str, Any]:
        container = {
            "name": "pytorch",
            "image": realnode.NETCHECK_IMAGE,
            "imagePullPolicy": "Never",
            "args": args,
            "ports": [{"name": "pytorchjob-port", "containerPort": 23456}],
        }
        spec = {"terminationGracePeriodSeconds": 1, "containers": [container]}
        return {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": spec}}

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": replica(["serve", "$(MASTER_PORT)"]),
                # Kubernetes expands $(VAR) in args from the container's env: the operator's wiring.
                "Worker": replica(["dial", "$(MASTER_ADDR):$(MASTER_PORT)"]),
            }
        },
    }


def pod_phase(core: client.CoreV1Api, namespace: str, name: str) -> str:
    try:
        return str(core.read_namespaced_pod(name, namespace).status.phase)
    except client.ApiException:
        return "absent"


def test_operator_pods_run_and_meet_at_master_addr_and_its_webhook_answers(
    cluster: devcluster.Cluster, core: client.CoreV1Api, operator: LocalOperator, namespace: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(netcheck_job(namespace, "meet")))
    try:
        wait_for(
            lambda: pod_phase(core, namespace, "meet-worker-0") in ("Succeeded", "Failed"),
            90,
            what="the worker to dial the master",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnose(cluster, namespace)}") from None
    worker_log = cluster.kubectl("logs", "-n", namespace, "meet-worker-0").stdout
    assert pod_phase(core, namespace, "meet-worker-0") == "Succeeded", worker_log
    assert "resolved meet-master-0 to [10.244.0." in worker_log
    assert "answer: hello from meet-master-0" in worker_log
    assert core.read_namespaced_pod("meet-master-0", namespace).spec.node_name == realnode.NODE

    # The apiserver inside the namespace calls the operator's webhook there (only the webhook
    # checks replica types: the admission policy knows updates only).
    malformed = netcheck_job(namespace, "boss")
    malformed["spec"]["pytorchReplicaSpecs"]["Boss"] = malformed["spec"]["pytorchReplicaSpecs"].pop("Worker")
    refused = cluster.kubectl("create", "-f", "-", input=json.dumps(malformed), check=False)
    assert refused.returncode != 0
    assert 'admission webhook "validate.jobwarden.dev" denied the request' in refused.stderr
    assert "spec.pytorchReplicaSpecs.Boss: Unsupported value" in refused.stderr
