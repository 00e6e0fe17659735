"""MPIJob (kubeflow.org/v2beta1) against the real control plane: the operator makes the Service,
ConfigMap, ssh Secret, worker pods and the launcher batch/v1 Job; the controller-manager's Job
controller makes the launcher's pod; kwok runs the pods and the test finishes the launcher's pod
through the status subresource as a kubelet would (devcluster/pods.py).

Covered: created → Running → the launcher succeeds → Succeeded (cleanPodPolicy All then removes the
workers); a launcher that fails with backoffLimit 0 → Failed with the Job's reason; suspend and
resume (the launcher Job suspended, the workers deleted and made again); admission's 400 and 403.

The module runs on a cluster of its own (`<JOBWARDEN_TEST_CLUSTER>-mpijob`) with an operator started
with `--allow-suspend-updates`, so that suspend may change on a running job."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from devcluster import cluster as devcluster
from devcluster import pods as devpods
from devcluster.operator import LocalOperator
from kubernetes import client, config

from testlib import ROOT, wait_for

TIMEOUT = 45.0
GROUP, VERSION, PLURAL = "kubeflow.org", "v2beta1", "mpijobs"
IMAGE = "registry.example/mpi-pi:1"


@dataclass
class MpiCluster:
    cluster: devcluster.Cluster
    operator: LocalOperator
    core: client.CoreV1Api
    batch: client.BatchV1Api
    custom: client.CustomObjectsApi

    def namespace(self, name: str) -> str:
        self.cluster.kubectl("create", "namespace", name)
        wait_for(lambda: self.core.list_namespaced_service_account(name).items, 30, what=f"SA in {name}")
        return name

    def create(self, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("create", "-f", "-", input=json.dumps(body), check=False)

    def job(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))

    def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl(
            "patch", "mpijob", name, "-n", namespace, "--type=merge", "-p", json.dumps(patch), check=False
        )

    def wait(self, check: Any, what: str, timeout: float = TIMEOUT) -> Any:
        try:
            return wait_for(check, timeout, what=what)
        except AssertionError as exc:
            log = "\n".join(self.operator.logs().splitlines()[-40:])
            raise AssertionError(f"{exc}\n-- operator log:\n{log}") from exc

    def wait_condition(self, namespace: str, name: str, type_: str, status: str = "True") -> dict[str, Any]:
        def holds() -> dict[str, Any] | None:
            conditions = (self.job(namespace, name).get("status") or {}).get("conditions") or []
            found = next((c for c in conditions if c["type"] == type_ and c["status"] == status), None)
            return dict(found) if found else None

        return dict(self.wait(holds, f"{namespace}/{name} condition {type_}={status}"))

    def workers(self, namespace: str, name: str) -> dict[str, Any]:
        selector = f"training.kubeflow.org/job-name={name},training.kubeflow.org/job-role=worker"
        found: Any = self.core.list_namespaced_pod(namespace, label_selector=selector)
        return {p.metadata.name: p for p in found.items if not p.metadata.deletion_timestamp}

    def launcher_pods(self, namespace: str, name: str) -> list[Any]:
        found: Any = self.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}-launcher")
        return [p for p in found.items if not p.metadata.deletion_timestamp]

    def running_launcher_pod(self, namespace: str, name: str) -> str:
        def running() -> str | None:
            pods = [p for p in self.launcher_pods(namespace, name) if p.status.phase == "Running"]
            return str(pods[0].metadata.name) if pods else None

        return str(self.wait(running, f"{namespace}/{name}'s launcher pod Running"))


@pytest.fixture(scope="module")
def mpi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MpiCluster]:
    name = f"{os.environ.get('JOBWARDEN_TEST_CLUSTER', 'test')}-mpijob"
    c = devcluster.up(name, crds=ROOT / "crds")
    devcluster.install_crds(c, ROOT / "crds")
    operator = LocalOperator(
        c, tmp_path_factory.mktemp("mpijob") / "operator.log", extra_args=["--allow-suspend-updates"]
    )
    operator.start()
    api = config.new_client_from_config(config_file=str(c.kubeconfig))
    yield MpiCluster(c, operator, client.CoreV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api))
    operator.stop()
    assert "Traceback" not in operator.logs(), f"see {operator.log_path}"
    if not os.environ.get("JOBWARDEN_KEEP_CLUSTER"):
        devcluster.down(name)


def mpijob(namespace: str, name: str, workers: int = 2, **run_policy: Any) -> dict[str, Any]:
    container = {"name": "mpi", "image": IMAGE}
    launcher = {**container, "command": ["mpirun", "-n", str(workers), "/home/mpiuser/pi"]}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MPIJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "slotsPerWorker": 1,
            "runPolicy": {"cleanPodPolicy": "All", **run_policy},
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "template": {"spec": {"containers": [launcher]}}},
                "Worker": {"replicas": workers, "template": {"spec": {"containers": [container]}}},
            },
        },
    }


def test_created_running_succeeded(mpi: MpiCluster) -> None:
    ns = mpi.namespace("mpi-life")
    assert mpi.create(mpijob(ns, "pi")).returncode == 0
    created = mpi.wait_condition(ns, "pi", "Created")
    assert (created["reason"], created["message"]) == ("MPIJobCreated", f"MPIJob {ns}/pi is created.")
    job = mpi.job(ns, "pi")
    # The CRD's schema defaults, as upstream's.
    spec = job["spec"]
    assert (spec["sshAuthMountPath"], spec["mpiImplementation"], spec["launcherCreationPolicy"]) == (
        "/root/.ssh",
        "OpenMPI",
        "AtStartup",
    )

    service = mpi.wait(lambda: _get(mpi.core.read_namespaced_service, "pi", ns), "the Service")
    assert service.spec.cluster_ip == "None"
    assert service.spec.selector == {
        "training.kubeflow.org/operator-name": "mpi-operator",
        "training.kubeflow.org/job-name": "pi",
    }
    config_map = mpi.wait(lambda: _get(mpi.core.read_namespaced_config_map, "pi-config", ns), "the ConfigMap")
    assert (
        config_map.data["hostfile"] == f"pi-worker-0.pi.{ns}.svc slots=1\npi-worker-1.pi.{ns}.svc slots=1\n"
    )
    secret = mpi.wait(lambda: _get(mpi.core.read_namespaced_secret, "pi-ssh", ns), "the ssh Secret")
    assert secret.type == "kubernetes.io/ssh-auth"
    assert base64.b64decode(secret.data["ssh-privatekey"]).startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert base64.b64decode(secret.data["ssh-publickey"]).startswith(b"ecdsa-sha2-nistp521 ")
    uid = job["metadata"]["uid"]
    for child in (service, config_map, secret):
        assert [(r.kind, r.uid, r.controller) for r in child.metadata.owner_references] == [
            ("MPIJob", uid, True)
        ]

    workers = mpi.wait(lambda: len(mpi.workers(ns, "pi")) == 2 and mpi.workers(ns, "pi"), "2 workers")
    worker = workers["pi-worker-1"]
    assert (worker.spec.hostname, worker.spec.subdomain) == ("pi-worker-1", "pi")
    assert worker.spec.containers[0].command == ["/usr/sbin/sshd", "-De"]
    assert {e.name: e.value for e in worker.spec.containers[0].env} == {"K_MPI_JOB_ROLE": "worker"}

    launcher = mpi.wait(lambda: _get(mpi.batch.read_namespaced_job, "pi-launcher", ns), "the launcher Job")
    assert launcher.metadata.owner_references[0].uid == uid
    assert launcher.spec.pod_replacement_policy == "Failed"
    # The Job controller of the controller-manager makes the launcher's pod from the template.
    pod_name = mpi.running_launcher_pod(ns, "pi")
    pod = mpi.core.read_namespaced_pod(pod_name, ns)
    assert (pod.spec.hostname, pod.spec.subdomain) == ("pi-launcher", "pi")
    env = [(e.name, e.value) for e in pod.spec.containers[0].env]
    assert env == [
        ("K_MPI_JOB_ROLE", "launcher"),
        ("OMPI_MCA_orte_keep_fqdn_hostnames", "true"),
        ("OMPI_MCA_orte_default_hostfile", "/etc/mpi/hostfile"),
        ("OMPI_MCA_plm_rsh_args", "-o ConnectionAttempts=10"),
        ("OMPI_MCA_orte_set_default_slots", "1"),
        ("NVIDIA_VISIBLE_DEVICES", None),
        ("NVIDIA_DRIVER_CAPABILITIES", None),
    ]
    assert {m.mount_path for m in pod.spec.containers[0].volume_mounts} >= {"/root/.ssh", "/etc/mpi"}

    running = mpi.wait_condition(ns, "pi", "Running")
    assert running["reason"] == "MPIJobRunning"
    status = mpi.job(ns, "pi")["status"]
    assert status["replicaStatuses"] == {"Launcher": {"active": 1}, "Worker": {"active": 2}}
    script = mpi.core.read_namespaced_config_map("pi-config", ns).data["discover_hosts.sh"]
    assert script == f"#!/bin/sh\necho pi-worker-0.pi.{ns}.svc\necho pi-worker-1.pi.{ns}.svc\n"

    devpods.finish(mpi.cluster, ns, pod_name, exit_code=0)
    succeeded = mpi.wait_condition(ns, "pi", "Succeeded")
    assert (succeeded["reason"], succeeded["message"]) == (
        "MPIJobSucceeded",
        f"MPIJob {ns}/pi successfully completed.",
    )
    status = mpi.job(ns, "pi")["status"]
    assert status["completionTime"] and status["replicaStatuses"]["Launcher"] == {"succeeded": 1}
    assert mpi.job(ns, "pi")["status"]["conditions"][-1]["type"] == "Succeeded"  # kubectl's STATE
    mpi.wait(lambda: mpi.workers(ns, "pi") == {}, "the workers deleted (cleanPodPolicy All)")
    events = mpi.core.list_namespaced_event(ns, field_selector="involvedObject.name=pi").items
    reasons = {e.reason for e in events}
    assert {"MPIJobCreated", "MPIJobRunning", "MPIJobSucceeded"} <= reasons
    url = f"http://127.0.0.1:{mpi.operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        metrics = response.read().decode()
    for line in (
        'jobwarden_jobs_succeeded_total{kind="MPIJob"}',
        'jobwarden_children_created_total{child="Job",kind="MPIJob"}',
        'jobwarden_children_created_total{child="Secret",kind="MPIJob"}',
    ):
        assert line in metrics, line
    out = mpi.cluster.kubectl("get", "mpijob", "pi", "-n", ns).stdout
    assert out.split("\n")[0].split()[:3] == ["NAME", "STATE", "WORKERS"]
    assert out.split("\n")[1].split()[:3] == ["pi", "Succeeded", "2"]


def test_a_failed_launcher_fails_the_job(mpi: MpiCluster) -> None:
    ns = mpi.namespace("mpi-fail")
    assert mpi.create(mpijob(ns, "pi", backoffLimit=0)).returncode == 0
    pod_name = mpi.running_launcher_pod(ns, "pi")
    devpods.finish(mpi.cluster, ns, pod_name, exit_code=1)
    failed = mpi.wait_condition(ns, "pi", "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    status = mpi.job(ns, "pi")["status"]
    assert status["replicaStatuses"]["Launcher"] == {"failed": 1}
    assert status["completionTime"]
    mpi.wait(lambda: mpi.workers(ns, "pi") == {}, "the workers deleted (cleanPodPolicy All)")


def test_suspend_and_resume(mpi: MpiCluster) -> None:
    ns = mpi.namespace("mpi-suspend")
    assert mpi.create(mpijob(ns, "pi")).returncode == 0
    mpi.running_launcher_pod(ns, "pi")
    mpi.wait_condition(ns, "pi", "Running")
    started = mpi.job(ns, "pi")["status"]["startTime"]

    assert mpi.patch(ns, "pi", {"spec": {"runPolicy": {"suspend": True}}}).returncode == 0
    suspended = mpi.wait_condition(ns, "pi", "Suspended")
    assert (suspended["reason"], suspended["message"]) == ("MPIJobSuspended", "MPIJob suspended")
    mpi.wait(
        lambda: mpi.batch.read_namespaced_job("pi-launcher", ns).spec.suspend is True, "launcher suspended"
    )
    mpi.wait(lambda: mpi.workers(ns, "pi") == {}, "the workers deleted")
    # The Job controller removes the launcher's pod of a suspended Job.
    mpi.wait(lambda: mpi.launcher_pods(ns, "pi") == [], "the launcher pod deleted by the Job controller")
    mpi.wait_condition(ns, "pi", "Running", status="False")

    assert mpi.patch(ns, "pi", {"spec": {"runPolicy": {"suspend": False}}}).returncode == 0
    resumed = mpi.wait_condition(ns, "pi", "Suspended", status="False")
    assert resumed["reason"] == "MPIJobResumed"
    mpi.wait(lambda: len(mpi.workers(ns, "pi")) == 2, "the workers made again")
    mpi.running_launcher_pod(ns, "pi")
    mpi.wait_condition(ns, "pi", "Running")
    assert mpi.job(ns, "pi")["status"]["startTime"] >= started


def test_created_suspended_then_admitted_with_a_node_selector(mpi: MpiCluster) -> None:
    """Kueue's path: the job is created suspended (the launcher Job too, never started), a scheduling
    directive is put into the launcher's template while suspended, the resume carries it into the
    launcher Job (KEP-2926) and the launcher's pod gets it."""
    ns = mpi.namespace("mpi-kueue")
    body = mpijob(ns, "pi", suspend=True)
    assert mpi.create(body).returncode == 0
    mpi.wait_condition(ns, "pi", "Suspended")
    launcher = mpi.wait(lambda: _get(mpi.batch.read_namespaced_job, "pi-launcher", ns), "the launcher Job")
    assert launcher.spec.suspend is True and mpi.workers(ns, "pi") == {}
    selector = {"type": "kwok"}
    patch = {
        "spec": {
            "runPolicy": {"suspend": False},
            "mpiReplicaSpecs": {"Launcher": {"template": {"spec": {"nodeSelector": selector}}}},
        }
    }
    # As Kueue does it, with the contract's guard out of the way (its rule lives on another branch).
    raw = mpi.cluster.kubectl(
        "patch",
        "mpijob",
        "pi",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps(patch),
        "--as=system:serviceaccount:jobwarden-system:jobwarden",
        "--as-group=system:masters",
        check=False,
    )
    assert raw.returncode == 0, raw.stderr
    mpi.wait_condition(ns, "pi", "Suspended", status="False")
    pod_name = mpi.running_launcher_pod(ns, "pi")
    assert mpi.core.read_namespaced_pod(pod_name, ns).spec.node_selector == selector
    mpi.wait_condition(ns, "pi", "Running")


def test_admission(mpi: MpiCluster) -> None:
    ns = mpi.namespace("mpi-admission")
    bad = mpijob(ns, "bad")
    bad["spec"]["mpiReplicaSpecs"]["Launcher"]["replicas"] = 2
    bad["spec"]["mpiReplicaSpecs"]["Worker"]["restartPolicy"] = "Always"
    refused = mpi.create(bad)
    assert refused.returncode != 0
    assert "spec.mpiReplicaSpecs[Launcher].replicas: Invalid value: 2: must be 1" in refused.stderr
    assert "spec.mpiReplicaSpecs[Worker].restartPolicy: Unsupported value" in refused.stderr

    assert mpi.create(mpijob(ns, "pi")).returncode == 0
    forbidden = mpi.patch(ns, "pi", {"spec": {"slotsPerWorker": 4}})
    assert forbidden.returncode != 0 and "spec.slotsPerWorker: field is not updatable" in forbidden.stderr
    assert mpi.patch(ns, "pi", {"spec": {"runPolicy": {"activeDeadlineSeconds": 900}}}).returncode == 0
    mpi.wait(
        lambda: mpi.batch.read_namespaced_job("pi-launcher", ns).spec.active_deadline_seconds == 900,
        "the new deadline on the launcher Job",
    )


def _get(read: Any, name: str, namespace: str) -> Any:
    try:
        return read(name, namespace)
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return None
        raise
