"""The real node runs real pods: a pod reaches Running, `kubectl logs` shows its output, and two pods
talk TCP through a headless Service name CoreDNS resolves (`<pod>.<svc>` via the pods' search list).
The image is the tier's own netcheck (devcluster/images/netcheck), imported at cluster start."""

from __future__ import annotations

import time

from devcluster import cluster as devcluster
from devcluster import realnode
from kubernetes import client

from testlib import wait_for


def phase(core: client.CoreV1Api, namespace: str, name: str) -> str:
    return str(core.read_namespaced_pod(name, namespace).status.phase)


def test_pods_run_log_and_talk_through_a_headless_service(
    cluster: devcluster.Cluster, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "peers"},
            "spec": {"clusterIP": "None", "selector": {"app": "netcheck"}, "ports": [{"port": 7000}]},
        },
    )
    created = time.monotonic()
    core.create_namespaced_pod(
        namespace, realnode.netcheck_pod("server", ["serve", "7000"], {"app": "netcheck"})
    )
    wait_for(lambda: phase(core, namespace, "server") == "Running", 60, what="the server pod Running")
    print(f"server pod Running {time.monotonic() - created:.1f}s after create")
    server = core.read_namespaced_pod("server", namespace)
    assert server.spec.node_name == realnode.NODE
    server_ip = server.status.pod_ip
    assert server_ip.startswith("10.244.0."), server_ip

    logs = wait_for(
        lambda: "serving on" in (out := cluster.kubectl("logs", "-n", namespace, "server").stdout) and out,
        30,
        what="the server's log through kubectl logs",
    )
    assert "serving on [::]:7000" in logs

    core.create_namespaced_pod(namespace, realnode.netcheck_pod("client", ["dial", "server.peers:7000"]))
    wait_for(
        lambda: phase(core, namespace, "client") in ("Succeeded", "Failed"),
        90,
        what="the client pod to finish",
    )
    client_log = cluster.kubectl("logs", "-n", namespace, "client").stdout
    assert phase(core, namespace, "client") == "Succeeded", client_log
    assert f"resolved server.peers to [{server_ip}]" in client_log
    assert "answer: hello from server" in client_log
    client_ip = core.read_namespaced_pod("client", namespace).status.pod_ip
    server_log = cluster.kubectl("logs", "-n", namespace, "server").stdout
    assert f"connection from {client_ip}:" in server_log
