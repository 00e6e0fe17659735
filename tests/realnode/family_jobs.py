"""The rest of the Kubeflow family on the real node: a JAXJob (`jax.distributed`), an XGBoostJob
(XGBoost's own tracker and collective), a PaddleJob (collective-mode rendezvous) and an MPIJob (a
launcher batch Job's mpirun over ssh), each run to its end through jobwarden with a workload script
(tests/realnode/workloads/, shipped to the pods in a ConfigMap) whose log lines prove the ranks met.

Kept apart from the tests so the numbers script (benchmarks/realnode.py) runs exactly the jobs the
tests check. Images (`training.build_images`): `training-jax` (JAX and XGBoost in a venv) and
`training` (Debian's python3, torch, Open MPI, sshd)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devcluster import cluster as devcluster
from training import get
from training import kubeflow_condition as condition

WORKLOADS = Path(__file__).resolve().parent / "workloads"
WORKLOAD_CONFIGMAP = "family-workloads"
WORKLOAD_DIR = "/workload"
WORKLOAD_FILES = (
    "jax_distributed.py",
    "xgb_rendezvous.py",
    "paddle_rendezvous.py",
    "mpi_launcher.sh",
    "mpi_allreduce.py",
)

TRAINING_IMAGE = "jobwarden.local/training:1"
JAX_IMAGE = "jobwarden.local/training-jax:1"  # JAX and XGBoost

JOB_TIMEOUT = 420  # create -> finished; the goal is 120 s on 2 cores
JOB_LABEL = "training.kubeflow.org/job-name"


def workload_configmap(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": WORKLOAD_CONFIGMAP, "namespace": namespace},
        "data": {name: (WORKLOADS / name).read_text() for name in WORKLOAD_FILES},
    }


def pod_spec(container: str, command: list[str], image: str) -> dict[str, Any]:
    """One container of `image` (local, never pulled) running `command` (none: the kind's default),
    the workloads mounted read-only, a short grace period."""
    main: dict[str, Any] = {
        "name": container,
        "image": image,
        "imagePullPolicy": "Never",
        "volumeMounts": [{"name": "workload", "mountPath": WORKLOAD_DIR, "readOnly": True}],
    }
    if command:
        main["command"] = command
    return {
        "terminationGracePeriodSeconds": 2,
        "volumes": [{"name": "workload", "configMap": {"name": WORKLOAD_CONFIGMAP}}],
        "containers": [main],
    }


def replica(container: str, script: str, image: str, replicas: int) -> dict[str, Any]:
    command = ["python3", f"{WORKLOAD_DIR}/{script}"]
    return {
        "replicas": replicas,
        "restartPolicy": "Never",
        "template": {"spec": pod_spec(container, command, image)},
    }


def kubeflow_job(kind: str, field: str, namespace: str, name: str, specs: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"runPolicy": {"cleanPodPolicy": "None"}, field: specs},
    }


def jaxjob(namespace: str, name: str) -> dict[str, Any]:
    """2 Workers: `jax.distributed.initialize` at COORDINATOR_ADDRESS:PORT, then cross-process sums."""
    workers = replica("jax", "jax_distributed.py", JAX_IMAGE, 2)
    return kubeflow_job("JAXJob", "jaxReplicaSpecs", namespace, name, {"Worker": workers})


def xgboostjob(namespace: str, name: str) -> dict[str, Any]:
    """Master (XGBoost's tracker, and rank 0) + 2 Workers: an all-reduce and a distributed booster."""
    specs = {
        "Master": replica("xgboost", "xgb_rendezvous.py", JAX_IMAGE, 1),
        "Worker": replica("xgboost", "xgb_rendezvous.py", JAX_IMAGE, 2),
    }
    return kubeflow_job("XGBoostJob", "xgbReplicaSpecs", namespace, name, specs)


def paddlejob(namespace: str, name: str) -> dict[str, Any]:
    """Collective mode, 3 Workers meeting at Worker-0's PADDLE_MASTER."""
    workers = replica("paddle", "paddle_rendezvous.py", TRAINING_IMAGE, 3)
    return kubeflow_job("PaddleJob", "paddleReplicaSpecs", namespace, name, {"Worker": workers})


MPI_WORKERS = 2


def mpijob(namespace: str, name: str) -> dict[str, Any]:
    """kubeflow.org/v2beta1, OpenMPI, 2 Workers of one slot each running sshd; the Launcher (a batch
    Job the controller-manager runs, created once the Workers are ready) mpiruns the all-reduce over
    ssh on the hostfile's FQDNs.

    The Workers' command is the kind's default (`/usr/sbin/sshd -De`) plus `StrictModes no`, which
    mpi-operator's own images set in their sshd_config: the Secret is mounted at /root/.ssh as the
    volume's root (as upstream mounts it), a tmpfs directory of mode 1777 that sshd's strict modes
    refuse ("bad ownership or modes for directory /root/.ssh"). The generic training image does not
    set it (the Volcano ssh plugin mounts a subdirectory of its volume, which sshd accepts)."""
    launcher = pod_spec(
        "mpi", ["/bin/sh", f"{WORKLOAD_DIR}/mpi_launcher.sh", str(MPI_WORKERS)], TRAINING_IMAGE
    )
    worker = pod_spec("mpi", ["/usr/sbin/sshd", "-De", "-o", "StrictModes=no"], TRAINING_IMAGE)
    return {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "slotsPerWorker": 1,
            "launcherCreationPolicy": "WaitForWorkersReady",
            "runPolicy": {"cleanPodPolicy": "None"},
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "template": {"spec": launcher}},
                "Worker": {
                    "replicas": MPI_WORKERS,
                    "template": {"spec": worker},
                },
            },
        },
    }


# --- running a job to its end ---------------------------------------------------------------------


@dataclass
class Run:
    """A job run to its end: create-to-finish seconds, its pods' logs, the finished job."""

    kind: str
    seconds: float
    logs: dict[str, str]
    job: dict[str, Any]

    def lines_with(self, needle: str) -> list[str]:
        return sorted(line for text in self.logs.values() for line in text.splitlines() if needle in line)


def pod_logs(cluster: devcluster.Cluster, namespace: str, selector: str) -> dict[str, str]:
    pods = get(cluster, "pods", "-n", namespace, "-l", selector) or {"items": []}
    logs = {}
    for pod in pods["items"]:
        name = pod["metadata"]["name"]
        logs[name] = cluster.kubectl("logs", "-n", namespace, name, "--all-containers", check=False).stdout
    return logs


def wait_finished(
    cluster: devcluster.Cluster, finished: Callable[[], dict[str, Any] | None], what: str, namespace: str
) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        job = finished()
        if job is not None:
            return job
        time.sleep(0.5)
    raise AssertionError(
        f"timed out after {JOB_TIMEOUT} s waiting for {what}\n{diagnose(cluster, namespace)}"
    )


def diagnose(cluster: devcluster.Cluster, namespace: str) -> str:
    """The namespace's objects, its events and the end of every pod's log."""
    parts = [
        cluster.kubectl("get", "all,configmaps,secrets", "-n", namespace, "-o", "wide", check=False).stdout,
        cluster.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False).stdout[
            -4000:
        ],
    ]
    for name, text in pod_logs(cluster, namespace, "").items():
        parts.append(f"--- {name}\n{text[-3000:]}")
    return "\n".join(parts)


def run_kubeflow(cluster: devcluster.Cluster, kind: str, plural: str, body: dict[str, Any]) -> Run:
    """Create the job, wait for Succeeded (a Failed condition fails at once), read its pods' logs
    (cleanPodPolicy None keeps them)."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]

    def finished() -> dict[str, Any] | None:
        job = get(cluster, plural, name, "-n", namespace)
        if condition(job, "Failed"):
            raise AssertionError(f"{kind} {name} failed: {json.dumps((job or {}).get('status'))}\n"
                                 f"{diagnose(cluster, namespace)}")  # fmt: skip
        return job if condition(job, "Succeeded") else None

    started = time.monotonic()
    cluster.kubectl("create", "-f", "-", input=json.dumps(body))
    job = wait_finished(cluster, finished, f"{kind} {name} to succeed", namespace)
    seconds = time.monotonic() - started
    return Run(kind, seconds, pod_logs(cluster, namespace, f"{JOB_LABEL}={name}"), job)


def run_jaxjob(cluster: devcluster.Cluster, namespace: str, name: str = "jax-dist") -> Run:
    return run_kubeflow(cluster, "JAXJob", "jaxjobs", jaxjob(namespace, name))


def run_xgboostjob(cluster: devcluster.Cluster, namespace: str, name: str = "xgb-rabit") -> Run:
    return run_kubeflow(cluster, "XGBoostJob", "xgboostjobs", xgboostjob(namespace, name))


def run_paddlejob(cluster: devcluster.Cluster, namespace: str, name: str = "paddle-coll") -> Run:
    return run_kubeflow(cluster, "PaddleJob", "paddlejobs", paddlejob(namespace, name))


def run_mpijob(cluster: devcluster.Cluster, namespace: str, name: str = "mpi-ring") -> Run:
    return run_kubeflow(cluster, "MPIJob", "mpijobs", mpijob(namespace, name))


def record(run: Run, proof: list[str]) -> None:
    """Keep the create-to-finish time where the numbers script finds it (the last run of each kind),
    and print the proof lines (`pytest -s`, and the failure report)."""
    path = devcluster.cache_dir() / "realnode" / "job-times.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    times: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    times[run.kind] = {
        "seconds": round(run.seconds, 1),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.write_text(json.dumps(times, indent=2) + "\n")
    print(f"\n[{run.kind}] finished {run.seconds:.1f} s after create; proof:")
    for line in proof:
        print(f"  {line}")
