"""Fixtures for the image tests: the image built by `make image` (on first use; seconds when up to
date), and, for the tests that need a cluster, the operator running inside it as the Deployment of
the default install runs it (devcluster/container.py), against a devcluster of its own.

The cluster fixtures of tests/integration/conftest.py are overridden for this package: the image's
operator gets its own control plane (`<JOBWARDEN_TEST_CLUSTER>-image`), so no other operator ever
reconciles its jobs and the manifests' webhook configuration and RBAC never meet the session's. Its
setup is the shipped install as far as it can go without Services routing to pods: the CRDs, the
namespace, the ServiceAccount and its RBAC applied from the rendered manifests, the webhook
configuration pointed at https://127.0.0.1:<port>/validate, a kubeconfig with the ServiceAccount's
token mounted read-only (instead of the in-cluster token mount). The operator registers its webhook
the way the default install does: it generates a CA and patches it into the configuration's caBundle.

Where podman cannot be had (`packaging/image.sh` says `unavailable: <reason>`), every test here is
skipped with that reason."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusters import local_cluster
from devcluster import cluster as devcluster
from devcluster.container import ContainerOperator, PodSpec
from install_steps import apply_prerequisites, register_webhook, render, service_account_kubeconfig
from kubernetes import client, config

from testlib import ROOT

# A cold `make image` (apt-get, debootstrap, build: ~3 min here) runs in the setup of the first image
# test, which the default per-test timeout (600 s, pyproject.toml) would also have to cover.
COLD_BUILD_TIMEOUT = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(COLD_BUILD_TIMEOUT))


@pytest.fixture(scope="session")
def image(request: pytest.FixtureRequest) -> str:
    """`make image`, its progress shown on the terminal (a cold build takes minutes); the image name."""
    capture: Any = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n[image tests] make image", file=sys.stderr, flush=True)
        proc = subprocess.run(
            ["make", "--no-print-directory", "image"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
    lines = proc.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    if last.startswith("unavailable: "):
        pytest.skip(f"cannot build the image here: {last.removeprefix('unavailable: ')}")
    assert proc.returncode == 0, f"make image failed ({proc.returncode}); its progress is above"
    return last


@pytest.fixture(scope="package")
def rendered() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="package")
def cluster(image: str) -> Iterator[devcluster.Cluster]:
    with local_cluster("image") as c:
        yield c


@pytest.fixture(scope="package")
def api_client(cluster: devcluster.Cluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture(scope="package")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="package")
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture(scope="package")
def pod_spec(rendered: list[dict[str, Any]]) -> PodSpec:
    return PodSpec.from_rendered(rendered)


@pytest.fixture(scope="package")
def operator(
    image: str,
    cluster: devcluster.Cluster,
    rendered: list[dict[str, Any]],
    pod_spec: PodSpec,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ContainerOperator]:
    apply_prerequisites(cluster, rendered)
    log = tmp_path_factory.mktemp("image-operator") / "operator.log"
    kubeconfig = service_account_kubeconfig(cluster, log.parent / "sa.kubeconfig")
    # The image just built (test_image_operator checks the manifests name that very image).
    op = ContainerOperator(cluster, log, dataclasses.replace(pod_spec, image=image), kubeconfig)
    webhook = register_webhook(cluster, rendered, op.webhook_port)
    op.start()
    print(f"[image tests] operator container {op.name} ready in {op.ready_seconds:.2f}s", file=sys.stderr)
    yield op
    op.stop()
    cluster.kubectl("delete", "validatingwebhookconfiguration", webhook, check=False)


@pytest.fixture(autouse=True)
def no_operator_tracebacks(request: pytest.FixtureRequest) -> Iterator[None]:
    """tests/integration/conftest.py's check, for the container's log: the Deployment's settings say
    `JOBWARDEN_LOG_FORMAT=json`, where a traceback is a JSON string (`exc_info`) inside one line."""
    if "operator" not in request.fixturenames:
        yield
        return
    op: ContainerOperator = request.getfixturevalue("operator")
    offset = op.log_path.stat().st_size if op.log_path.exists() else 0
    yield
    with open(op.log_path, "rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    found = [line for line in lines if "Traceback (most recent call last)" in line]
    if found:
        pytest.fail(
            f"the operator logged {len(found)} traceback(s) during this test ({op.log_path}):\n{found[0]}"
        )
