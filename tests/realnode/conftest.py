"""Fixtures for the real-node tier: a devcluster whose node is a real kubelet + containerd + runc,
with CNI bridge networking and CoreDNS, all in a network namespace of its own
(devcluster/realnode.py). Pods really run; images come from OCI tars (no registry).

- `cluster` (session): `<JOBWARDEN_TEST_CLUSTER or "test">-realnode`, up with `crds/` installed.
  Reused (and left running) if it was already up; else stopped at the end unless
  JOBWARDEN_KEEP_CLUSTER is set.
- `core`, `custom`, `api_client`: Kubernetes clients on it (through the relay on the host).
- `namespace`: a fresh namespace per test.
- `operator` (session): `jobwarden run` INSIDE the cluster's network namespace, webhook registered
  at https://127.0.0.1:<port> there (the apiserver calls it from inside); `.restart()` works as in the
  integration tier.
- `import_image(tar)`: import an OCI image-layout tar into the node (see realnode.import_image for
  the naming rules: `jobwarden.local/<name>:1`, `imagePullPolicy: Never`).

Every test here is skipped, with the reason, only on a host that cannot run a real node (not root, no
cgroup filesystem, no util-linux/iproute2); anywhere else a failure to start the node is an error.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from devcluster import cluster as devcluster
from devcluster import realnode
from devcluster.operator import LocalOperator
from kubernetes import client, config
from realnode_lib import cluster_name

from testlib import ROOT, wait_for

UNAVAILABLE = realnode.unavailable_reason()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/realnode/" in str(item.path):
            item.add_marker(pytest.mark.realnode)
            if UNAVAILABLE:
                item.add_marker(pytest.mark.skip(reason=f"this host cannot run a real node: {UNAVAILABLE}"))


@pytest.fixture(scope="session")
def cluster() -> Iterator[devcluster.Cluster]:
    name = cluster_name()
    existing = devcluster.Cluster.load(name)
    reused = bool(existing and existing.netns and existing.alive())
    c = devcluster.up(name, crds=ROOT / "crds", real_node=True)
    if reused:
        devcluster.install_crds(c, ROOT / "crds")
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
    name = f"r-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"jobwarden.dev/test": "true"}}})
    wait_for(lambda: core.list_namespaced_service_account(name).items, 30, what=f"default SA in {name}")
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="session")
def operator(
    cluster: devcluster.Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalOperator]:
    op = LocalOperator(
        cluster,
        tmp_path_factory.mktemp("operator") / "operator.log",
        extra_args=list(realnode.OPERATOR_ARGS),  # e.g. the PyTorch init container's image
        netns=cluster.netns_path,
    )
    op.start()
    yield op
    op.stop()
    errors = [line for line in op.logs().splitlines() if "Traceback" in line]
    if errors:
        print(f"operator log had {len(errors)} tracebacks; see {op.log_path}", file=sys.stderr)


@pytest.fixture(scope="session")
def import_image(cluster: devcluster.Cluster) -> Callable[[Path], None]:
    def run(tar: Path) -> None:
        realnode.import_image(cluster, tar)

    return run
