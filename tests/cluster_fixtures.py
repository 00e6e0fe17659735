"""The API fixtures every cluster tier shares (tests/integration, tests/realnode): each tier's conftest
defines its own session `cluster` and imports these, which pytest then registers as its fixtures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from devcluster import cluster as devcluster
from kubernetes import client, config

from testlib import wait_for


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
