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
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from clusters import local_cluster
from devcluster import cluster as devcluster
from devcluster.operator import LocalOperator
from kubernetes import client, config
from volcano_steps import Body, NewJob, VolcanoJob, create

from testlib import wait_for


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def cluster() -> Iterator[devcluster.Cluster]:
    with local_cluster() as c:
        yield c


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


# The test fixture is the shared local runner (tests, demo and benchmarks start the operator alike).
Operator = LocalOperator


@pytest.fixture(scope="session")
def operator(cluster: devcluster.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    op = Operator(cluster, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    yield op
    op.stop()
    errors = [line for line in op.logs().splitlines() if "Traceback" in line]
    if errors:
        print(f"operator log had {len(errors)} tracebacks; see {op.log_path}", file=sys.stderr)


@pytest.fixture(autouse=True)
def no_operator_tracebacks(request: pytest.FixtureRequest) -> Iterator[None]:
    """A traceback in the session operator's log while a test ran fails that test: an exception the
    operator swallowed (and retried) is still a bug the test's own assertions may not see."""
    if "operator" not in request.fixturenames:
        yield
        return
    op: LocalOperator = request.getfixturevalue("operator")
    offset = op.log_path.stat().st_size if op.log_path.exists() else 0
    yield
    with open(op.log_path, "rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    if found:
        excerpt = "\n".join(lines[max(0, found[0] - 3) : found[0] + 30])
        pytest.fail(
            f"the operator logged {len(found)} traceback(s) during this test ({op.log_path}):\n{excerpt}"
        )


@pytest.fixture
def new_vcjob(
    cluster: devcluster.Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator: LocalOperator,
) -> NewJob:
    """`kubectl create`s a Volcano job (through the webhook); the handle carries the operator log."""

    def make(body: Body) -> VolcanoJob:
        return create(cluster, core, custom, operator.logs, body)

    return make


@pytest.fixture
def operator_log_hint(operator: LocalOperator) -> Iterator[None]:
    """Prints where the operator's log is; pytest shows captured output only for failing tests."""
    print(f"operator log: {operator.log_path}")
    yield


def get_job(
    custom: client.CustomObjectsApi, group: str, plural: str, namespace: str, name: str
) -> dict[str, Any]:
    version = "v1alpha1" if group == "batch.volcano.sh" else "v1"
    return dict(custom.get_namespaced_custom_object(group, version, namespace, plural, name))


def kubectl_json(cluster: devcluster.Cluster, *args: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl(*args, "-o", "json").stdout))
