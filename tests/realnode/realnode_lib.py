"""Helpers for the real-node tests (and the training-job tests built on them)."""

from __future__ import annotations

import os

from devcluster import cluster as devcluster


def cluster_name(suffix: str = "realnode") -> str:
    """`<JOBWARDEN_TEST_CLUSTER or "test">-<suffix>`: each helper's/CI's clusters apart."""
    return f"{os.environ.get('JOBWARDEN_TEST_CLUSTER', 'test')}-{suffix}"


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
