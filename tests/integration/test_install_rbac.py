"""The shipping issue against a real apiserver: `kubectl apply -k manifests/ --dry-run=server` is
accepted; the operator, run with the manifests' ServiceAccount token (not as admin) and only the RBAC
the manifests grant, runs the seed lifecycles and patches the webhook's caBundle itself (self-signed
mode); `kubectl auth can-i` proves the grants are no wider than needed.

These tests use a cluster of their own, so the manifests' ValidatingWebhookConfiguration and RBAC never
meet the session operator's."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from devcluster import cluster as devcluster
from devcluster import pods
from install_steps import SA_USER, apply_prerequisites, register_webhook, render, service_account_kubeconfig

from conftest import Operator
from testlib import ROOT, creatable, load_seed, wait_for


@pytest.fixture(scope="module")
def rbac_cluster() -> Iterator[devcluster.Cluster]:
    name = f"{os.environ.get('JOBWARDEN_TEST_CLUSTER', 'test')}-rbac"
    existing = devcluster.Cluster.load(name)
    reused = bool(existing and existing.alive())
    c = devcluster.up(name, crds=ROOT / "crds")
    yield c
    if not reused and not os.environ.get("JOBWARDEN_KEEP_CLUSTER"):
        devcluster.down(name)


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def installed(
    rbac_cluster: devcluster.Cluster, rendered: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """Apply what the operator's own permissions depend on (CRDs, namespace, ServiceAccount, RBAC) as
    the manifests ship it; register the manifests' webhook configuration with a URL instead of the
    in-cluster Service; start the operator with the ServiceAccount's token."""
    apply_prerequisites(rbac_cluster, rendered)
    log = tmp_path_factory.mktemp("sa-operator") / "operator.log"
    kubeconfig = service_account_kubeconfig(rbac_cluster, log.parent / "sa.kubeconfig")
    operator = Operator(
        rbac_cluster,
        log,
        kubeconfig=kubeconfig,
        register_webhook=False,
        lease="jobwarden-leader",
        lease_namespace="jobwarden-system",
    )
    webhook = register_webhook(rbac_cluster, rendered, operator.webhook_port)
    operator.start()
    yield operator
    operator.stop()
    rbac_cluster.kubectl("delete", "validatingwebhookconfiguration", webhook, check=False)


def _namespace(c: devcluster.Cluster, name: str) -> str:
    c.kubectl("create", "namespace", name)
    wait_for(
        lambda: c.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        30,
        what="default ServiceAccount",
    )
    return name


def test_apply_k_manifests_dry_run_server(rbac_cluster: devcluster.Cluster) -> None:
    # A server-side dry run cannot see a namespace that the same dry run would create, so the
    # namespace exists first (a real `apply -k` creates it before the objects inside it).
    rbac_cluster.kubectl("create", "namespace", "jobwarden-system", check=False)
    out = rbac_cluster.kubectl("apply", "-k", str(ROOT / "manifests"), "--dry-run=server", check=False)
    assert out.returncode == 0, out.stderr
    for expected in (
        "customresourcedefinition.apiextensions.k8s.io/tfjobs.kubeflow.org",
        "deployment.apps/jobwarden",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/jobwarden",
        "clusterrole.rbac.authorization.k8s.io/jobwarden",
    ):
        assert expected in out.stdout


def test_operator_as_service_account_patches_the_ca_bundle(installed: Operator) -> None:
    config = json.loads(
        installed.cluster.kubectl("get", "validatingwebhookconfiguration", "jobwarden", "-o", "json").stdout
    )
    bundle = base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"])
    assert bundle == (installed.log_path.parent / "webhook" / "ca.crt").read_bytes()


def test_seed_lifecycles_run_with_the_service_accounts_rights(installed: Operator) -> None:
    c = installed.cluster
    ns = _namespace(c, "rbac-lifecycle")
    pytorch = creatable(load_seed("pytorchjob-put.request.json"), ns)
    c.kubectl("apply", "-f", "-", input=json.dumps(pytorch))
    volcano = creatable(load_seed("volcanojob-put.request.json"), ns)
    volcano["spec"]["ttlSecondsAfterFinished"] = 2
    c.kubectl("apply", "-f", "-", input=json.dumps(volcano))
    for pod in ("pytorch-test-master-0", "pytorch-test-worker-0", "openmpi-hello-2-com-mpimaster-0"):
        pods.wait_running(c, ns, pod)
    # Children the ssh and svc plugins make (Secret create is granted, list/watch is not).
    c.kubectl("get", "secret", "openmpi-hello-2-com-ssh", "-n", ns)
    c.kubectl("get", "configmap", "openmpi-hello-2-com-svc", "-n", ns)
    # The webhook answers, with the CA the operator patched in.
    refused = c.kubectl(
        "patch",
        "pytorchjob",
        "pytorch-test",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"pytorchReplicaSpecs":{"Worker":{"replicas":4}}}}',
        check=False,
    )
    assert refused.returncode != 0 and "field is not updatable" in refused.stderr, refused.stderr
    pods.finish(c, ns, "pytorch-test-master-0", 0)
    pods.finish(c, ns, "openmpi-hello-2-com-mpimaster-0", 0)
    c.kubectl(
        "patch",
        "pytorchjob",
        "pytorch-test",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"ttlSecondsAfterFinished":1}}',
    )
    for resource in ("pytorchjob/pytorch-test", "vcjob/openmpi-hello-2-com"):
        wait_for(
            lambda r=resource: c.kubectl("get", r, "-n", ns, check=False).returncode != 0,
            60,
            what=f"{resource} deleted by its TTL",
        )
    events = c.kubectl("get", "events", "-n", ns, "-o", "jsonpath={.items[*].reason}").stdout.split()
    assert "PyTorchJobSucceeded" in events
    assert "Forbidden" not in installed.logs() and " 403" not in installed.logs(), installed.logs()[-3000:]


def test_an_mpijob_runs_with_the_service_accounts_rights(installed: Operator) -> None:
    """MPIJob's children: the ssh Secret (create, never list/watch), the launcher batch/v1 Job (create,
    watch, patch; the controller-manager makes its pod), worker pods, Service, ConfigMap."""
    c = installed.cluster
    ns = _namespace(c, "rbac-mpijob")
    container = {"name": "mpi", "image": "mpi-pi"}
    job = {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "metadata": {"name": "pi", "namespace": ns},
        "spec": {
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "template": {"spec": {"containers": [container]}}},
                "Worker": {"replicas": 1, "template": {"spec": {"containers": [container]}}},
            }
        },
    }
    c.kubectl("apply", "-f", "-", input=json.dumps(job))
    pods.wait_running(c, ns, "pi-worker-0")
    c.kubectl("get", "secret", "pi-ssh", "-n", ns)
    c.kubectl("get", "configmap", "pi-config", "-n", ns)

    def launcher_pod() -> str:
        out = c.kubectl("get", "pods", "-n", ns, "-l", "job-name=pi-launcher", "-o", "name")
        return out.stdout.strip().removeprefix("pod/")

    name = wait_for(launcher_pod, 60, what="the launcher's pod")
    pods.finish(c, ns, name, 0)

    def state() -> str:
        out = c.kubectl("get", "mpijob", "pi", "-n", ns, "-o", "jsonpath={.status.conditions[-1:].type}")
        return out.stdout.strip()

    wait_for(lambda: state() == "Succeeded", 60, what="the MPIJob Succeeded")
    assert "Forbidden" not in installed.logs() and " 403" not in installed.logs(), installed.logs()[-3000:]


ALLOWED = [
    ("create", "pods", "-n", "default"),
    ("delete", "pods", "-n", "default"),
    ("watch", "pods", "-A"),
    ("create", "services", "-n", "default"),
    ("update", "configmaps", "-n", "default"),
    ("create", "secrets", "-n", "default"),
    ("create", "events", "-n", "default"),
    ("update", "tfjobs.kubeflow.org", "--subresource=status", "-n", "default"),
    ("delete", "jobs.batch.volcano.sh", "-n", "default"),
    ("list", "pytorchjobs.kubeflow.org", "-A"),
    ("patch", "validatingwebhookconfigurations/jobwarden"),
    ("create", "jobs.batch", "-n", "default"),
    ("watch", "jobs.batch", "-A"),
    ("patch", "jobs.batch", "-n", "default"),
    ("update", "mpijobs.kubeflow.org", "--subresource=status", "-n", "default"),
]
DENIED = [
    ("list", "secrets", "-A"),
    ("watch", "secrets", "-n", "default"),
    ("get", "nodes"),
    ("*", "*"),
    ("create", "deployments", "-n", "default"),
    ("delete", "namespaces"),
    ("update", "tfjobs.kubeflow.org", "-n", "default"),
    ("create", "pytorchjobs.kubeflow.org", "-n", "default"),
    ("patch", "validatingwebhookconfigurations/someone-else"),
    ("create", "validatingwebhookconfigurations"),
    ("update", "clusterroles"),
    ("create", "serviceaccounts/token", "-n", "jobwarden-system"),
    ("update", "pods", "-n", "default"),
    ("list", "leases.coordination.k8s.io", "-A"),
    ("delete", "jobs.batch", "-n", "default"),
    ("update", "jobs.batch", "-n", "default"),
    ("delete", "mpijobs.kubeflow.org", "-n", "default"),
]


@pytest.mark.parametrize("check", ALLOWED, ids=" ".join)
def test_service_account_may(installed: Operator, check: tuple[str, ...]) -> None:
    out = installed.cluster.kubectl("auth", "can-i", *check, f"--as={SA_USER}", check=False)
    assert out.stdout.strip() == "yes", (check, out.stdout, out.stderr)


@pytest.mark.parametrize("check", DENIED, ids=" ".join)
def test_service_account_may_not(installed: Operator, check: tuple[str, ...]) -> None:
    out = installed.cluster.kubectl("auth", "can-i", *check, f"--as={SA_USER}", check=False)
    assert out.stdout.strip() == "no", (check, out.stdout, out.stderr)


def test_no_wildcards_in_the_shipped_rbac(rendered: list[dict[str, Any]]) -> None:
    rules = [r for o in rendered if o["kind"] in ("ClusterRole", "Role") for r in o.get("rules", [])]
    assert rules
    for rule in rules:
        assert "*" not in rule.get("verbs", []) and "*" not in rule.get("resources", []), rule
        if "secrets" in rule.get("resources", []):
            assert not {"list", "watch"} & set(rule["verbs"]), rule
