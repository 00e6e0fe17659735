"""Helpers for the real-node tests (and the training-job tests built on them)."""

from __future__ import annotations

import os
from typing import Any

from devcluster import cluster as devcluster
from devcluster import realnode


def cluster_name(suffix: str = "realnode") -> str:
    """`<JOBWARDEN_TEST_CLUSTER or "test">-<suffix>`: each helper's/CI's clusters apart."""
    return f"{os.environ.get('JOBWARDEN_TEST_CLUSTER', 'test')}-{suffix}"


def netcheck_pod(name: str, args: list[str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod of the tier's own netcheck image (`serve PORT` / `dial NAME:PORT`), named `<name>.peers`
    in DNS when a headless Service `peers` selects it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "hostname": name,
            "subdomain": "peers",
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": realnode.NETCHECK_IMAGE,
                    "imagePullPolicy": "Never",
                    "args": args,
                    "ports": [{"containerPort": 7000}],
                }
            ],
        },
    }


def diagnose(cluster: devcluster.Cluster, namespace: str) -> str:
    """What a failing real-node test should show: the pods, their events and every container's log."""
    parts = [
        cluster.kubectl("get", "pods,svc,endpointslices", "-n", namespace, "-o", "wide", check=False).stdout,
        cluster.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False).stdout[
            -4000:
        ],
    ]
    names = cluster.kubectl("get", "pods", "-n", namespace, "-o", "name", check=False).stdout.split()
    for pod in names:
        out = cluster.kubectl("logs", "-n", namespace, pod, "--all-containers", "--tail=30", check=False)
        parts.append(f"--- {pod}\n{out.stdout}{out.stderr}")
    return "\n".join(parts)
