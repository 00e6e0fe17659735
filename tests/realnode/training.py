"""What the real-training tests run: the training images, the workload scripts (shipped to the pods in
a ConfigMap, so the images stay generic), the four jobs, running each to its end while following its
pods' logs.

Kept apart from the tests so the numbers script (benchmarks/realnode_training.py) runs exactly the
jobs the tests check."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from testlib import ROOT, creatable, load_seed

WORKLOADS = Path(__file__).resolve().parent / "workloads"
WORKLOAD_CONFIGMAP = "workloads"
WORKLOAD_DIR = "/workload"

TRAINING_IMAGE = "jobwarden.local/training:1"
TF_IMAGE = "jobwarden.local/training-tf:1"


class Kubectl(Protocol):
    """What the tests need of a cluster: devcluster's `Cluster.kubectl`."""

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]: ...


# --- images -------------------------------------------------------------------------------------------


class ImagesUnavailable(Exception):
    """packaging/training-images.sh cannot build here (no podman and not root to install it)."""


def build_images(*names: str) -> dict[str, Path]:
    """packaging/training-images.sh: builds what is missing (a cold build takes many minutes; its progress
    goes to stderr), then `{image: OCI archive}`."""
    proc = subprocess.run(
        ["bash", str(ROOT / "packaging" / "training-images.sh"), *names],
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if lines and lines[-1].startswith("unavailable: "):
        raise ImagesUnavailable(lines[-1].removeprefix("unavailable: "))
    if proc.returncode != 0:
        raise RuntimeError(f"packaging/training-images.sh failed ({proc.returncode}); its output is above")
    return {image: Path(archive) for image, archive in (line.split(" ", 1) for line in lines)}


# --- what every training pod gets -----------------------------------------------------------------------


def workload_configmap(namespace: str) -> dict[str, Any]:
    files = {path.name: path.read_text() for path in sorted(WORKLOADS.iterdir()) if path.is_file()}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": WORKLOAD_CONFIGMAP, "namespace": namespace},
        "data": files,
    }


def _with_workloads(pod_spec: dict[str, Any], image: str) -> dict[str, Any]:
    """The image (local, never pulled), the workload scripts mounted read-only, short grace (deletes of
    sshd/python pods should not wait 30 s)."""
    spec = copy.deepcopy(pod_spec)
    spec.setdefault("volumes", []).append({"name": "workload", "configMap": {"name": WORKLOAD_CONFIGMAP}})
    spec["terminationGracePeriodSeconds"] = 2
    for container in spec["containers"]:
        container["image"] = image
        container["imagePullPolicy"] = "Never"
        container.setdefault("volumeMounts", []).append(
            {"name": "workload", "mountPath": WORKLOAD_DIR, "readOnly": True}
        )
    return spec


def _replica(container: str, command: list[str], image: str, replicas: int, restart: str) -> dict[str, Any]:
    pod = {"containers": [{"name": container, "command": command}]}
    return {
        "replicas": replicas,
        "restartPolicy": restart,
        "template": {"spec": _with_workloads(pod, image)},
    }


# --- the jobs -------------------------------------------------------------------------------------------


def pytorchjob(namespace: str, name: str) -> dict[str, Any]:
    """Master + 2 Workers, gloo all-reduce and DDP steps; cleanPodPolicy All (every pod goes once the job
    Succeeded)."""
    command = ["python3", f"{WORKLOAD_DIR}/torch_ddp.py"]
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "All"},
            "pytorchReplicaSpecs": {
                "Master": _replica("pytorch", command, TRAINING_IMAGE, 1, "OnFailure"),
                "Worker": _replica("pytorch", command, TRAINING_IMAGE, 2, "OnFailure"),
            },
        },
    }


def tfjob(namespace: str, name: str) -> dict[str, Any]:
    """Chief + 1 Worker under MultiWorkerMirroredStrategy; cleanPodPolicy None (the pods stay)."""
    command = ["python3", f"{WORKLOAD_DIR}/tf_multiworker.py"]
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None"},
            "tfReplicaSpecs": {
                "Chief": _replica("tensorflow", command, TF_IMAGE, 1, "OnFailure"),
                "Worker": _replica("tensorflow", command, TF_IMAGE, 1, "OnFailure"),
            },
        },
    }


def mxjob(namespace: str, name: str) -> dict[str, Any]:
    """Scheduler + 1 Server + 2 Workers meeting at the DMLC_* addresses; cleanPodPolicy None."""
    command = ["python3", f"{WORKLOAD_DIR}/mx_rendezvous.py"]
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "MXJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "jobMode": "MXTrain",
            "runPolicy": {"cleanPodPolicy": "None"},
            "mxReplicaSpecs": {
                "Scheduler": _replica("mxnet", command, TRAINING_IMAGE, 1, "Never"),
                "Server": _replica("mxnet", command, TRAINING_IMAGE, 1, "Never"),
                "Worker": _replica("mxnet", command, TRAINING_IMAGE, 2, "Never"),
            },
        },
    }


MPI_WORKERS = 2  # what the seed's PUT scales mpiworker to
VOLCANO_JOB = "openmpi-hello-2-com"  # the seed's name


def volcano_mpi_job(namespace: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The seed 003 job (its PUT body) made runnable here: the training image instead of the seed's
    registry image, the workloads mounted, and the master's command the seed's (start sshd, read the
    hostfile, mpiexec over ssh on the workers) waiting for the scaled hostfile and the workers' sshd
    before it runs the MPI all-reduce. Plugins, tasks, policies, ports, resources as the seed."""
    job = creatable(copy.deepcopy(body or load_seed("volcanojob-put.request.json")), namespace)
    for task in job["spec"]["tasks"]:
        task["template"]["spec"] = _with_workloads(task["template"]["spec"], TRAINING_IMAGE)
        if task["name"] == "mpimaster":
            task["template"]["spec"]["containers"][0]["command"] = [
                "/bin/sh", f"{WORKLOAD_DIR}/mpi_master.sh", str(MPI_WORKERS)
            ]  # fmt: skip
    return job


def volcano_mpi_job_before_put(namespace: str) -> dict[str, Any]:
    """The same job as it stood before the seed's PUT: mpiworker at 1 replica."""
    job = volcano_mpi_job(namespace)
    for task in job["spec"]["tasks"]:
        if task["name"] == "mpiworker":
            task["replicas"] = 1
    return job


# --- watching a job run ---------------------------------------------------------------------------------


def apply(cluster: Kubectl, body: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def get(cluster: Kubectl, *args: str) -> dict[str, Any] | None:
    out = cluster.kubectl("get", *args, "-o", "json", check=False)
    return dict(json.loads(out.stdout)) if out.returncode == 0 else None


def pods_of(cluster: Kubectl, namespace: str, selector: str) -> dict[str, dict[str, Any]]:
    found = get(cluster, "pods", "-n", namespace, "-l", selector) or {"items": []}
    return {pod["metadata"]["name"]: pod for pod in found["items"]}


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


def kubeflow_condition(job: dict[str, Any] | None, type_: str) -> bool:
    conditions = ((job or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


def volcano_phase(job: dict[str, Any] | None) -> str:
    return str((((job or {}).get("status") or {}).get("state") or {}).get("phase") or "")


@dataclass
class LogFollower:
    """`kubectl logs -f` of every container run of a job's pods from the moment it runs, kept after the
    pod is gone (cleanPodPolicy may delete pods before the test reads them). One thread per run: a
    container restarted in place (restartPolicy OnFailure) is a new run, followed anew."""

    cluster: Kubectl
    namespace: str
    selector: str
    runs: dict[str, dict[int, str]] = field(default_factory=dict)  # pod -> restartCount -> log
    _threads: dict[tuple[str, int], threading.Thread] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def poll(self) -> None:
        for name, pod in pods_of(self.cluster, self.namespace, self.selector).items():
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                state = status.get("state") or {}
                run = (name, int(status.get("restartCount") or 0))
                if ("running" in state or "terminated" in state) and run not in self._threads:
                    thread = threading.Thread(target=self._follow, args=run, daemon=True)
                    self._threads[run] = thread
                    thread.start()

    def _follow(self, pod: str, run: int) -> None:
        # Until kubectl ends cleanly (the container exited): a stream cut short (pod deleted, API hiccup)
        # is retried, the longest text seen kept.
        runs = self.runs.setdefault(pod, {})
        while not self._stop.is_set():
            try:
                out = self.cluster.kubectl(
                    "logs", "-f", pod, "-n", self.namespace, check=False, timeout=JOB_TIMEOUT
                )
            except subprocess.TimeoutExpired:
                continue
            if len(out.stdout) >= len(runs.get(run, "")):
                runs[run] = out.stdout
            if out.returncode == 0:
                return
            time.sleep(0.5)

    def join(self, timeout: float = 30) -> dict[str, str]:
        """Each pod's last run's log (the run that finished the job)."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        return {pod: runs[max(runs)] for pod, runs in self.runs.items() if runs}

    def restarted(self) -> dict[str, list[str]]:
        """The logs of the runs before the last, per pod that restarted."""
        return {pod: [runs[n] for n in sorted(runs)[:-1]] for pod, runs in self.runs.items() if len(runs) > 1}


@contextmanager
def following(cluster: Kubectl, namespace: str, selector: str) -> Iterator[LogFollower]:
    follower = LogFollower(cluster, namespace, selector)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            follower.poll()
            stop.wait(0.5)

    poller = threading.Thread(target=loop, daemon=True)
    poller.start()
    try:
        yield follower
    finally:
        stop.set()
        poller.join(5)


def lines_with(logs: dict[str, str], needle: str) -> list[str]:
    return [line for text in logs.values() for line in text.splitlines() if needle in line]


# --- running a job to its end -------------------------------------------------------------------------

JOB_TIMEOUT = 420  # from create to finished; the goal is 120 s on 2 cores
KUBEFLOW_JOB_LABEL = "training.kubeflow.org/job-name"
VOLCANO_JOB_LABEL = "volcano.sh/job-name"


@dataclass
class Run:
    """A job run to its end: create-to-finish seconds, its pods' logs, the finished job, and the log
    lines that prove its ranks met."""

    kind: str
    seconds: float
    logs: dict[str, str]  # each pod's last container run
    job: dict[str, Any]
    proof: list[str]
    restarted: dict[str, list[str]] = field(default_factory=dict)  # earlier runs, per pod


def _finished_kubeflow(cluster: Kubectl, plural: str, namespace: str, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = get(cluster, plural, name, "-n", namespace)
        failed = kubeflow_condition(job, "Failed")
        assert not failed, f"{plural} {name} failed: {json.dumps((job or {}).get('status'))}"
        return job if kubeflow_condition(job, "Succeeded") else None

    return dict(wait_until(done, JOB_TIMEOUT, f"{plural} {name} to succeed"))


def _run_kubeflow(cluster: Kubectl, kind: str, plural: str, body: dict[str, Any], needles: list[str]) -> Run:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    with following(cluster, namespace, f"{KUBEFLOW_JOB_LABEL}={name}") as follower:
        started = time.monotonic()
        apply(cluster, body)
        job = _finished_kubeflow(cluster, plural, namespace, name)
        seconds = time.monotonic() - started
        logs = follower.join()
    proof = [line for needle in needles for line in lines_with(logs, needle)]
    return Run(kind, seconds, logs, job, proof, follower.restarted())


def run_pytorchjob(cluster: Kubectl, namespace: str, name: str = "torch-ddp") -> Run:
    needles = ["all-reduce sum", "DDP step 4", "DDP weights equal"]
    return _run_kubeflow(cluster, "PyTorchJob", "pytorchjobs", pytorchjob(namespace, name), needles)


def run_tfjob(cluster: Kubectl, namespace: str, name: str = "tf-mwms") -> Run:
    needles = ["all-reduce sum", " step 4 loss ", "equal on all tasks"]
    return _run_kubeflow(cluster, "TFJob", "tfjobs", tfjob(namespace, name), needles)


def run_mxjob(cluster: Kubectl, namespace: str, name: str = "mx-ps") -> Run:
    needles = ["registered", "sum"]
    return _run_kubeflow(cluster, "MXJob", "mxjobs", mxjob(namespace, name), needles)


def run_volcano_mpi(cluster: Kubectl, namespace: str) -> Run:
    """Seed 003's story: the job created at mpiworker 1; once its master runs (sshd up, waiting for the
    hostfile to name 2 workers), the seed's PUT scales mpiworker to 2; then the master's mpiexec."""
    selector = f"{VOLCANO_JOB_LABEL}={VOLCANO_JOB}"
    master = f"{VOLCANO_JOB}-mpimaster-0"

    def master_running() -> bool:
        pod = pods_of(cluster, namespace, selector).get(master) or {}
        return bool((pod.get("status") or {}).get("phase") == "Running")

    def completed() -> dict[str, Any] | None:
        job = get(cluster, "vcjob", VOLCANO_JOB, "-n", namespace)
        assert volcano_phase(job) not in ("Failed", "Aborted", "Terminated"), job
        return job if volcano_phase(job) == "Completed" else None

    with following(cluster, namespace, selector) as follower:
        started = time.monotonic()
        apply(cluster, volcano_mpi_job_before_put(namespace))
        wait_until(master_running, JOB_TIMEOUT, "the mpimaster to run")
        wait_until(lambda: _put(cluster, volcano_mpi_job(namespace)), 30, "the seed's PUT to apply")
        job = wait_until(completed, JOB_TIMEOUT, "the Volcano job to complete")
        seconds = time.monotonic() - started
        logs = follower.join()
    master_log = {master: logs.get(master, "")}
    proof = [
        line
        for needle in ("hostfile names", "ssh to", "allreduce sum")
        for line in lines_with(master_log, needle)
    ]
    return Run("Volcano MPI", seconds, logs, dict(job), proof, follower.restarted())


def _put(cluster: Kubectl, body: dict[str, Any]) -> bool:
    """A replace at the job's current resourceVersion (the seed's PUT carries one); False on a conflict
    (the operator wrote the job's status in between), to be tried again."""
    meta = body["metadata"]
    current = get(cluster, "vcjob", meta["name"], "-n", meta["namespace"])
    assert current is not None
    meta["resourceVersion"] = current["metadata"]["resourceVersion"]
    out = cluster.kubectl("replace", "-f", "-", input=json.dumps(body), check=False)
    assert out.returncode == 0 or "Conflict" in out.stderr or "has been modified" in out.stderr, out.stderr
    return out.returncode == 0


RUNNERS: dict[str, Callable[[Kubectl, str], Run]] = {
    "PyTorchJob": run_pytorchjob,
    "Volcano MPI": run_volcano_mpi,
    "TFJob": run_tfjob,
    "MXJob": run_mxjob,
}
