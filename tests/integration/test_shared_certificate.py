"""Two replicas starting at once in the self-signed mode end up serving one CA and certificate: the
first creates Secret jobwarden-webhook-tls, the other reads it (the apiserver settles the race)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from devcluster.cluster import Cluster
from kubernetes import client

from jobwarden.shell import sharedcert
from jobwarden.shell.kubeclient import KubeClient


async def _start_two(kubeconfig: Path, namespace: str, tmp: Path) -> list[tuple[Path, Path, Path]]:
    clients = [KubeClient.connect(str(kubeconfig)) for _ in range(2)]  # as two processes would
    try:
        return list(
            await asyncio.gather(
                *(
                    sharedcert.shared_files(
                        api,
                        "jobwarden-webhook-tls",
                        namespace,
                        "svc.ns.svc",
                        ["localhost"],
                        tmp / f"replica-{i}",
                    )
                    for i, api in enumerate(clients)
                )
            )
        )
    finally:
        for api in clients:
            await api.close()


def test_replicas_starting_together_serve_one_certificate(
    cluster: Cluster, core: client.CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    first, second = asyncio.run(_start_two(cluster.kubeconfig, namespace, tmp_path))
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between the replicas"
    secret = core.read_namespaced_secret("jobwarden-webhook-tls", namespace)
    assert secret.type == "kubernetes.io/tls" and set(secret.data) == {"tls.crt", "tls.key", "ca.crt"}
    assert oct(first[1].stat().st_mode & 0o777) == "0o600"
    # A restart (a third start) keeps it: nothing is regenerated while the Secret exists.
    again = asyncio.run(_start_two(cluster.kubeconfig, namespace, tmp_path / "restart"))
    assert again[0][2].read_bytes() == first[2].read_bytes()
