"""Fixtures for tests against the real local control plane (devcluster): a kube-apiserver backed by
etcd, with controller-manager, scheduler and kwok. Never a mock of the API.

- `cluster` (session): `devcluster.up($JOBWARDEN_TEST_CLUSTER or "test")` with `crds/` installed.
  A cluster this session started is stopped at the end; one that was already running is reused and
  left alone.
- `namespace`: a fresh namespace per test (deleted afterwards, without waiting).
- `operator` (session): `jobwarden run` as a subprocess against the cluster, webhook registered at
  https://127.0.0.1:<free port>; `.restart()` kills it with SIGKILL and starts it again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devcluster import cluster as devcluster
from kubernetes import client, config

from testlib import ROOT, wait_for


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def cluster() -> Iterator[devcluster.Cluster]:
    name = os.environ.get("JOBWARDEN_TEST_CLUSTER", "test")
    existing = devcluster.Cluster.load(name)
    reused = bool(existing and existing.alive())
    c = devcluster.up(name, crds=ROOT / "crds")
    devcluster.install_crds(c, ROOT / "crds")  # a reused cluster may hold older versions
    yield c
    if not reused and not os.environ.get("JOBWARDEN_KEEP_CLUSTER"):
        devcluster.down(name)


@pytest.fixture(scope="session")
def api_client(cluster: devcluster.Cluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture(scope="session")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def namespace(cluster: devcluster.Cluster, core: client.CoreV1Api) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"jobwarden.dev/test": "true"}}})
    # The ServiceAccount admission plugin refuses pods until the controller made `default`.
    wait_for(lambda: core.list_namespaced_service_account(name).items, 30, what=f"default SA in {name}")
    yield name
    core.delete_namespace(name, propagation_policy="Background")


class Operator:
    """`jobwarden run` in a subprocess, as a user (or the Deployment) would run it."""

    def __init__(
        self,
        cluster: devcluster.Cluster,
        log_path: Path,
        extra_args: list[str] | None = None,
        kubeconfig: Path | None = None,
        register_webhook: bool = True,
    ) -> None:
        self.cluster = cluster
        self.log_path = log_path
        self.extra_args = extra_args or []
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.register_webhook = register_webhook  # False: the configuration exists, only patch its caBundle
        self.webhook_port = free_port()
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "jobwarden.cli",
            "run",
            "--all-namespaces",
            f"--kubeconfig={self.kubeconfig}",
            f"--webhook-url=https://127.0.0.1:{self.webhook_port}"
            if self.register_webhook
            else "--webhook-self-signed",
            "--webhook-bind=127.0.0.1",
            f"--webhook-port={self.webhook_port}",
            f"--webhook-work-dir={self.log_path.parent / 'webhook'}",
            f"--metrics-port={self.metrics_port}",
            f"--health-port={self.health_port}",
            *self.extra_args,
        ]

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_for(self.healthy, 60, what="the operator's /healthz and webhook registration")

    def healthy(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"operator exited:\n{self.logs()[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.health_port), timeout=1):
                pass
            with socket.create_connection(("127.0.0.1", self.webhook_port), timeout=1):
                pass
        except OSError:
            return False
        return "jobwarden started" in self.logs()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def operator(cluster: devcluster.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    op = Operator(cluster, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    yield op
    op.stop()
    errors = [line for line in op.logs().splitlines() if "Traceback" in line]
    if errors:
        print(f"operator log had {len(errors)} tracebacks; see {op.log_path}", file=sys.stderr)


def get_job(
    custom: client.CustomObjectsApi, group: str, plural: str, namespace: str, name: str
) -> dict[str, Any]:
    version = "v1alpha1" if group == "batch.volcano.sh" else "v1"
    return dict(custom.get_namespaced_custom_object(group, version, namespace, plural, name))


def kubectl_json(cluster: devcluster.Cluster, *args: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl(*args, "-o", "json").stdout))
