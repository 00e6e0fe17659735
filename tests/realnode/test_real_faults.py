"""Faults with real processes on the real node (Python in the training image,
packaging/training-images.sh): a worker's process SIGKILLed from the host mid-run (exit 137) is
restarted under OnFailure (in place) and ExitCode (a new pod) and the job still succeeds; the active
deadline stops running containers on time; TTL removes a finished job; the operator SIGKILLed and
restarted mid-training changes nothing.

The job in the restart tests only finishes through the worker: the Master (whose success is the
job's) waits at MASTER_PORT until a worker, after its "training", connects and says it is done."""

from __future__ import annotations

import calendar
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devcluster import cluster as devcluster
from devcluster import realnode
from devcluster.operator import LocalOperator
from kubernetes import client
from realnode_lib import diagnose

from testlib import ROOT, wait_for

MASTER = """
import os, socket
server = socket.create_server(("", int(os.environ["MASTER_PORT"])))
print("master waiting for a worker", flush=True)
conn, peer = server.accept()
print("master got:", conn.recv(100).decode().strip(), "from", peer[0], flush=True)
"""
WORKER = """
import os, socket, time
print("worker training", flush=True)
time.sleep(float(os.environ["TRAIN_SECONDS"]))
for attempt in range(60):
    try:
        with socket.create_connection((os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])), 5) as c:
            c.sendall(b"worker done")
            break
    except OSError as exc:
        print("retrying:", exc, flush=True)
        time.sleep(1)
else:
    raise SystemExit("the master never answered")
print("worker done", flush=True)
"""
SLEEPER = "import time; print('running', flush=True); time.sleep(600)"
# The first test's setup may build the training image cold (debootstrap + apt: minutes), which the
# default per-test timeout (600 s) would otherwise have to cover.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def training_image(cluster: devcluster.Cluster) -> str:
    """jobwarden.local/training:1 built (first use only) and imported into the node."""
    out = subprocess.run(
        ["bash", str(ROOT / "packaging" / "training-images.sh"), "training"],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if out.returncode == 3:  # the script's "this host cannot build images" (not root, no apt-get)
        pytest.skip(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0, out.stderr[-3000:]
    image, archive = out.stdout.strip().splitlines()[-1].split()
    realnode.import_image(cluster, Path(archive))
    return image


def pytorchjob(
    namespace: str,
    name: str,
    image: str,
    master: str,
    worker: str,
    worker_restart: str = "OnFailure",
    train_seconds: float = 10,
    **run_policy: Any,
) -> dict[str, Any]:
    def replica(script: str, restart: str) -> dict[str, Any]:
        container = {
            "name": "pytorch",
            "image": image,
            "imagePullPolicy": "Never",
            "command": ["python3", "-c", script],
            "env": [{"name": "TRAIN_SECONDS", "value": str(train_seconds)}],
            "ports": [{"name": "pytorchjob-port", "containerPort": 23456}],
        }
        spec = {"terminationGracePeriodSeconds": 1, "containers": [container]}
        return {"replicas": 1, "restartPolicy": restart, "template": {"spec": spec}}

    spec: dict[str, Any] = {
        "pytorchReplicaSpecs": {
            "Master": replica(master, "OnFailure"),
            "Worker": replica(worker, worker_restart),
        }
    }
    if run_policy:
        spec["runPolicy"] = run_policy
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def get_job(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return dict(custom.get_namespaced_custom_object("kubeflow.org", "v1", namespace, "pytorchjobs", name))


def condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in job.get("status", {}).get("conditions", []):
        if cond["type"] == kind and cond["status"] == "True":
            return dict(cond)
    return None


def pod(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    try:
        return core.read_namespaced_pod(name, namespace)
    except client.ApiException:
        return None


def running(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    found = pod(core, namespace, name)
    statuses = (found.status.container_statuses or []) if found else []
    return found if statuses and statuses[0].state.running else None


def log_of(cluster: devcluster.Cluster, namespace: str, name: str) -> str:
    return cluster.kubectl("logs", "-n", namespace, name, check=False).stdout


@pytest.fixture
def explain(cluster: devcluster.Cluster, namespace: str, operator: LocalOperator) -> Iterator[None]:
    """On failure, what the node and the operator saw."""
    offset = operator.log_path.stat().st_size if operator.log_path.exists() else 0
    yield
    with open(operator.log_path, "rb") as log:
        log.seek(offset)
        print(log.read().decode(errors="replace")[-3000:])
    print(diagnose(cluster, namespace))


def wait_succeeded(custom: client.CustomObjectsApi, namespace: str, name: str, timeout: float = 120) -> None:
    def done() -> bool:
        job = get_job(custom, namespace, name)
        assert not condition(job, "Failed"), job["status"]
        return bool(condition(job, "Succeeded"))

    wait_for(done, timeout, what=f"{name} Succeeded")


def start_and_kill_worker(
    cluster: devcluster.Cluster, core: client.CoreV1Api, namespace: str, job: str
) -> client.V1Pod:
    """Once the worker trains, SIGKILL its process from the host; returns the pod as it was."""
    worker = f"{job}-worker-0"
    wait_for(lambda: running(core, namespace, worker), 120, what=f"{worker} running")
    wait_for(lambda: "worker training" in log_of(cluster, namespace, worker), 30, what="the worker training")
    before = running(core, namespace, worker)
    assert before is not None
    realnode.kill_container(cluster, before.status.container_statuses[0].container_id)
    return before


@pytest.mark.usefixtures("explain")
def test_worker_killed_mid_run_under_on_failure_restarts_in_place_and_the_job_succeeds(
    cluster: devcluster.Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator: LocalOperator,
    namespace: str,
    training_image: str,
) -> None:
    body = pytorchjob(namespace, "killed", training_image, MASTER, WORKER, "OnFailure")
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
    before = start_and_kill_worker(cluster, core, namespace, "killed")
    wait_succeeded(custom, namespace, "killed")

    after = pod(core, namespace, "killed-worker-0")
    assert after is not None and after.metadata.uid == before.metadata.uid  # restarted in place
    status = after.status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 137
    assert "master got: worker done" in log_of(cluster, namespace, "killed-master-0")


@pytest.mark.usefixtures("explain")
def test_worker_killed_mid_run_under_exit_code_is_recreated_and_the_job_succeeds(
    cluster: devcluster.Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator: LocalOperator,
    namespace: str,
    training_image: str,
) -> None:
    body = pytorchjob(namespace, "exitcode", training_image, MASTER, WORKER, "ExitCode")
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
    before = start_and_kill_worker(cluster, core, namespace, "exitcode")
    # 137 is retryable (>= 128): the failed pod is deleted and made again.
    wait_for(
        lambda: (p := pod(core, namespace, "exitcode-worker-0")) and p.metadata.uid != before.metadata.uid,
        60,
        what="a new worker pod",
    )
    wait_succeeded(custom, namespace, "exitcode")

    after = pod(core, namespace, "exitcode-worker-0")
    assert after is not None and after.status.container_statuses[0].restart_count == 0
    assert "master got: worker done" in log_of(cluster, namespace, "exitcode-master-0")
    assert get_job(custom, namespace, "exitcode")["status"]["replicaStatuses"]["Worker"].get("failed", 0) == 0


@pytest.mark.usefixtures("explain")
def test_active_deadline_stops_the_running_containers_on_time(
    cluster: devcluster.Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator: LocalOperator,
    namespace: str,
    training_image: str,
) -> None:
    deadline = 20  # time enough for both pods to run first (the worker's init container waits for DNS)
    body = pytorchjob(namespace, "late", training_image, SLEEPER, SLEEPER, activeDeadlineSeconds=deadline)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
    pods = wait_for(
        lambda: (
            all(found := [running(core, namespace, n) for n in ("late-master-0", "late-worker-0")]) and found
        ),
        deadline,
        what="both pods running before the deadline",
    )
    containers = {p.status.container_statuses[0].container_id.removeprefix("containerd://") for p in pods}
    assert containers <= realnode.running_tasks(cluster)

    failed = wait_for(lambda: condition(get_job(custom, namespace, "late"), "Failed"), 60, what="Failed")
    job = get_job(custom, namespace, "late")
    started = calendar.timegm(time.strptime(job["status"]["startTime"], "%Y-%m-%dT%H:%M:%SZ"))
    at = calendar.timegm(time.strptime(failed["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ"))
    assert deadline <= at - started <= deadline + 3, (job["status"]["startTime"], failed)
    assert "active longer than specified deadline" in failed["message"], failed
    # The processes themselves are gone, not only the pod objects: within the grace period (1 s).
    wait_for(lambda: not containers & realnode.running_tasks(cluster), 15, what="the containers to stop")
    assert time.time() - started <= deadline + 15


@pytest.mark.usefixtures("explain")
def test_ttl_removes_the_finished_job(
    cluster: devcluster.Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator: LocalOperator,
    namespace: str,
    training_image: str,
) -> None:
    quick = "print('trained', flush=True)"
    body = pytorchjob(namespace, "brief", training_image, quick, quick, ttlSecondsAfterFinished=3)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
    wait_succeeded(custom, namespace, "brief")
    finished = time.monotonic()

    def gone() -> bool:
        try:
            get_job(custom, namespace, "brief")
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, 30, interval=0.1, what="the job deleted by its TTL")
    assert 2 <= time.monotonic() - finished <= 3 + 5
    # Its pods go with it (the garbage collector, through their ownerReferences).
    wait_for(lambda: not core.list_namespaced_pod(namespace).items, 60, what="the job's pods deleted")


@pytest.mark.usefixtures("explain")
def test_operator_restarted_mid_training_changes_nothing(
    cluster: devcluster.Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator: LocalOperator,
    namespace: str,
    training_image: str,
) -> None:
    body = pytorchjob(namespace, "steady", training_image, MASTER, WORKER, train_seconds=15)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
    names = ("steady-master-0", "steady-worker-0")
    for name in names:
        wait_for(lambda n=name: running(core, namespace, n), 120, what=f"{name} running")
    wait_for(lambda: "worker training" in log_of(cluster, namespace, "steady-worker-0"), 30, what="training")
    uids = {n: running(core, namespace, n).metadata.uid for n in names}  # type: ignore[union-attr]
    services = sorted(s.metadata.uid for s in core.list_namespaced_service(namespace).items)

    operator.restart()  # SIGKILL, then a fresh process that finds the job mid-training

    wait_succeeded(custom, namespace, "steady")
    for name in names:
        found = pod(core, namespace, name)
        assert found is not None and found.metadata.uid == uids[name], f"{name} was replaced"
        assert found.status.container_statuses[0].restart_count == 0
    assert sorted(s.metadata.uid for s in core.list_namespaced_service(namespace).items) == services
    assert "master got: worker done" in log_of(cluster, namespace, "steady-master-0")
    job = get_job(custom, namespace, "steady")
    assert not condition(job, "Restarting") and not condition(job, "Failed")
