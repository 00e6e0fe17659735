"""`make demo`: the main job on its embedded default.

Brings up the local control plane (named `demo`), installs the CRDs, starts `jobwarden run` with its
webhook registered, and walks the seed jobs through their lifecycle while printing each transition:
a PyTorchJob, a TFJob and an MXJob (created → running → a refused and an accepted update → succeeded →
deleted by ttlSecondsAfterFinished), the same for one XGBoostJob, PaddleJob and JAXJob
(`devcluster/examples/`), an MPIJob (kubeflow.org/v2beta1: workers, the launcher Job and its pod made
by the controller-manager, the hostfile, a refused update, the launcher finishing → succeeded), then
the seed's Volcano MPI job including its scale-up by replace.
The control plane and the operator keep running afterwards; `make down` stops both."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from devcluster import cluster as devcluster
from devcluster import pods
from devcluster.operator import LocalOperator

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "tests" / "seeds"
# One job of each kind training-operator v1.9.4 added (the seeds have none): XGBoost, Paddle, JAX.
EXAMPLES = ROOT / "devcluster" / "examples"
NAMESPACE = "jobwarden-demo"
SERVER_SET = ("resourceVersion", "uid", "creationTimestamp", "selfLink", "generation")
CLUSTER_NAME = os.environ.get("JOBWARDEN_DEMO_CLUSTER", "demo")
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def seed(name: str, folder: Path = SEEDS) -> dict[str, Any]:
    body = dict(json.loads((folder / name).read_text()))
    body.pop("status", None)
    for key in SERVER_SET:
        body["metadata"].pop(key, None)
    body["metadata"]["namespace"] = NAMESPACE
    return body


def start_operator(c: devcluster.Cluster) -> LocalOperator:
    """(Re)start the operator next to the cluster; it keeps running after the demo (`make down`)."""
    pid_file = c.root / "operator.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
        time.sleep(1)
    operator = LocalOperator(c, c.root / "logs" / "operator.log", detach=True)
    operator.start()
    assert operator.process is not None
    pid_file.write_text(str(operator.process.pid))
    say(
        f"operator running (pid {operator.process.pid}), webhook at https://127.0.0.1:{operator.webhook_port}/validate"
    )
    return operator


def get(c: devcluster.Cluster, resource: str, name: str) -> dict[str, Any] | None:
    out = c.kubectl("get", resource, name, "-n", NAMESPACE, "-o", "json", check=False)
    return dict(json.loads(out.stdout)) if out.returncode == 0 else None


def state_of(job: dict[str, Any]) -> str:
    status = job.get("status") or {}
    if "state" in status:
        return str(status["state"].get("phase", ""))
    conditions = [c for c in status.get("conditions", []) if c.get("status") == "True"]
    return str(conditions[-1]["type"]) if conditions else ""


def history(job: dict[str, Any]) -> list[str]:
    """Every state the job went through, from its status: Kubeflow conditions (`Created`, `Running`,
    …) or Volcano's per-phase conditions (`Pending`, `Inqueue`, `Running`, `Completing`, …)."""
    conditions = (job.get("status") or {}).get("conditions") or []
    if job["kind"] == "Job":
        return [str(c.get("status")) for c in conditions]
    return [str(c["type"]) + ("" if c.get("status") == "True" else " (no longer)") for c in conditions]


class Tracker(threading.Thread):
    """Prints every state each job in the demo namespace goes through, as soon as it shows up."""

    KINDS = (
        "tfjobs.kubeflow.org,pytorchjobs.kubeflow.org,mxjobs.kubeflow.org,xgboostjobs.kubeflow.org,"
        "paddlejobs.kubeflow.org,jaxjobs.kubeflow.org,mpijobs.kubeflow.org,jobs.batch.volcano.sh"
    )

    def __init__(self, c: devcluster.Cluster) -> None:
        super().__init__(daemon=True)
        self.c = c
        self.printed: dict[str, set[str]] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            out = self.c.kubectl("get", self.KINDS, "-n", NAMESPACE, "-o", "json", check=False)
            if out.returncode != 0:
                continue
            current = set()
            for job in json.loads(out.stdout).get("items", []):
                key = f"{job['kind']}/{job['metadata']['name']}"
                current.add(key)
                printed = self.printed.setdefault(key, set())
                for state in history(job):
                    if state not in printed:
                        printed.add(state)
                        say(f"  {key}: {state}")
            for key in set(self.printed) - current:
                say(f"  {key}: deleted")
                del self.printed[key]


def wait_state(
    c: devcluster.Cluster, resource: str, name: str, wanted: set[str], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        job = get(c, resource, name)
        if job is None and "Deleted" in wanted:
            time.sleep(0.3)  # let the tracker print the deletion first
            return
        state = state_of(job) if job else None
        if state in wanted:
            return
        time.sleep(0.2)
    raise SystemExit(f"{resource}/{name} did not reach {wanted} in {timeout}s (last: {state})")


def pod_names(c: devcluster.Cluster, selector: str) -> list[str]:
    out = c.kubectl(
        "get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "jsonpath={.items[*].metadata.name}"
    )
    return sorted(out.stdout.split())


def wait_pods(c: devcluster.Cluster, selector: str, count: int) -> list[str]:
    deadline = time.monotonic() + 60
    while len(names := pod_names(c, selector)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"expected {count} pods for {selector}, saw {names}")
        time.sleep(0.3)
    for name in names:
        pods.wait_running(c, NAMESPACE, name)
    say(f"  pods Running: {', '.join(names)}")
    return names


def kubeflow_lifecycle(
    c: devcluster.Cluster, seed_file: str, resource: str, finisher: str, folder: Path = SEEDS
) -> None:
    body = seed(seed_file, folder)
    name = body["metadata"]["name"]
    say(f"== {body['kind']} {name} (from {folder.relative_to(ROOT) / seed_file})")
    c.kubectl("apply", "-f", "-", input=json.dumps(body))
    wait_state(c, resource, name, {"Created", "Running"})
    names = wait_pods(c, f"training.kubeflow.org/job-name={name}", 2)
    wait_state(c, resource, name, {"Running"})
    show_env(c, names)
    job = get(c, resource, name) or {}
    specs_field = next(k for k in job["spec"] if k.endswith("ReplicaSpecs"))
    worker = next(k for k in job["spec"][specs_field] if k.lower() == "worker")
    for what, change in (
        ("Worker replicas 3", lambda w: w.update(replicas=3)),
        (
            "a new Worker image",
            lambda w: w["template"]["spec"]["containers"][0].update(image="example/new:2"),
        ),
    ):
        refused = json.loads(json.dumps(job))
        change(refused["spec"][specs_field][worker])
        say(f"  replace with {what} -> refused: {refusal(c, refused)}")
    job["spec"]["ttlSecondsAfterFinished"] = 5
    c.kubectl("replace", "-f", "-", input=json.dumps(job))
    say("  replace with ttlSecondsAfterFinished 5 -> accepted (an updatable field)")
    for pod in names:
        if finisher in pod:
            pods.finish(c, NAMESPACE, pod, exit_code=0)
            say(f"  {pod} finished with exit code 0")
    wait_state(c, resource, name, {"Succeeded", "Failed"})
    left = pod_names(c, f"training.kubeflow.org/job-name={name}")
    say(f"  pods left (cleanPodPolicy): {', '.join(left) or 'none'}")
    wait_state(c, resource, name, {"Deleted"}, timeout=30)


def show_env(c: devcluster.Cluster, names: list[str]) -> None:
    """The env the operator gave the first container of each pod (what the framework reads)."""
    for pod in names:
        out = c.kubectl("get", "pod", pod, "-n", NAMESPACE, "-o", "jsonpath={.spec.containers[0].env}")
        env = [
            f"{e['name']}={e['value']}" if "value" in e else f"{e['name']}=<{next(iter(e['valueFrom']))}>"
            for e in json.loads(out.stdout or "[]")
        ]
        say(f"  {pod} env: {' '.join(env)}")


def refusal(c: devcluster.Cluster, body: dict[str, Any]) -> str:
    """Who refused a replace and the path it names. The apiserver runs the ValidatingAdmissionPolicy
    first, which names the changed field as the webhook does; in the first seconds after the operator
    installed it the apiserver has not loaded it yet and the webhook answers, so ask again briefly.
    The list of updatable fields is cut."""
    deadline = time.monotonic() + 10
    while True:
        out = c.kubectl("replace", "-f", "-", input=json.dumps(body), check=False)
        if out.returncode == 0:
            return "ACCEPTED (unexpected)"
        if "ValidatingAdmissionPolicy" in out.stderr or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    who_and_why = out.stderr.strip().partition("forbidden: ")[2] or out.stderr.strip()
    return who_and_why.partition("; updatable fields:")[0]


MPIJOB: dict[str, Any] = {
    "apiVersion": "kubeflow.org/v2beta1",
    "kind": "MPIJob",
    "metadata": {"name": "pi", "namespace": NAMESPACE},
    "spec": {
        "slotsPerWorker": 1,
        "runPolicy": {"cleanPodPolicy": "Running", "ttlSecondsAfterFinished": 60},
        "mpiReplicaSpecs": {
            "Launcher": {
                "replicas": 1,
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "mpi",
                                "image": "mpioperator/mpi-pi:openmpi",
                                "command": ["mpirun", "/home/mpiuser/pi"],
                            }
                        ]
                    }
                },
            },
            "Worker": {
                "replicas": 2,
                "template": {
                    "spec": {"containers": [{"name": "mpi", "image": "mpioperator/mpi-pi:openmpi"}]}
                },
            },
        },
    },
}


def mpijob_lifecycle(c: devcluster.Cluster) -> None:
    """An MPIJob as mpi-operator v0.8 runs it: ssh workers, a hostfile, the launcher as a batch Job."""
    name = MPIJOB["metadata"]["name"]
    say(f"== MPIJob {name} (kubeflow.org/v2beta1, 2 workers, OpenMPI)")
    c.kubectl("apply", "-f", "-", input=json.dumps(MPIJOB))
    wait_pods(c, f"training.kubeflow.org/job-name={name},training.kubeflow.org/job-role=worker", 2)
    [launcher] = wait_pods(c, f"job-name={name}-launcher", 1)
    say(f"  launcher pod {launcher} made by the controller-manager's Job controller from Job {name}-launcher")
    hostfile = (get(c, "configmap", f"{name}-config") or {}).get("data", {}).get("hostfile", "")
    say(f"  /etc/mpi/hostfile: {hostfile.splitlines()}")
    wait_state(c, "mpijob", name, {"Running"})
    out = c.kubectl(
        "patch",
        "mpijob",
        name,
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        '{"spec":{"slotsPerWorker":2}}',
        check=False,
    )
    why = out.stderr.strip().partition("forbidden: ")[2] or out.stderr.strip()
    say(f"  patch slotsPerWorker 2 -> refused: {why[:300]}")
    pods.finish(c, NAMESPACE, launcher, exit_code=0)
    say(f"  {launcher} (mpirun) finished with exit code 0")
    wait_state(c, "mpijob", name, {"Succeeded", "Failed"})
    left = pod_names(c, f"training.kubeflow.org/job-name={name},training.kubeflow.org/job-role=worker")
    say(f"  workers left (cleanPodPolicy Running): {', '.join(left) or 'none'}")
    c.kubectl("delete", "mpijob", name, "-n", NAMESPACE)
    wait_state(c, "mpijob", name, {"Deleted"}, timeout=30)


def volcano_lifecycle(c: devcluster.Cluster) -> None:
    put = seed("volcanojob-put.request.json")
    put["spec"]["ttlSecondsAfterFinished"] = 10  # the demo's own choice, so the job goes away
    name = put["metadata"]["name"]
    first = json.loads(json.dumps(put))
    next(t for t in first["spec"]["tasks"] if t["name"] == "mpiworker")["replicas"] = 1
    say(f"== Volcano Job {name} (seed 003, created with mpiworker replicas 1)")
    c.kubectl("apply", "-f", "-", input=json.dumps(first))
    wait_pods(c, f"volcano.sh/job-name={name}", 2)
    wait_state(c, "vcjob", name, {"Running"})
    current = get(c, "vcjob", name) or {}
    put["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    c.kubectl("replace", "-f", "-", input=json.dumps(put))
    say("  PUT of the seed body (mpiworker replicas 1 -> 2) accepted")
    wait_pods(c, f"volcano.sh/job-name={name}", 3)
    cm = get(c, "configmap", f"{name}-svc") or {}
    say(f"  hostfile /etc/volcano/mpiworker.host: {cm.get('data', {}).get('mpiworker.host', '').split()}")
    pods.finish(c, NAMESPACE, f"{name}-mpimaster-0", exit_code=0)
    say("  mpimaster-0 finished with exit code 0 (TaskCompleted -> CompleteJob)")
    wait_state(c, "vcjob", name, {"Completed"})
    wait_state(c, "vcjob", name, {"Deleted"}, timeout=40)


def main() -> int:
    c = devcluster.up(CLUSTER_NAME, crds=ROOT / "crds")
    devcluster.install_crds(c, ROOT / "crds")
    say(
        "CRDs installed: "
        + " ".join(c.kubectl("api-resources", "--api-group=kubeflow.org", "-o", "name").stdout.split())
    )
    start_operator(c)
    c.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=120)
    c.kubectl("create", "namespace", NAMESPACE)
    deadline = time.monotonic() + 30
    while c.kubectl("get", "sa", "default", "-n", NAMESPACE, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit("no default ServiceAccount in the demo namespace")
        time.sleep(0.3)
    tracker = Tracker(c)
    tracker.start()
    kubeflow_lifecycle(c, "pytorchjob-put.request.json", "pytorchjob", "master")
    kubeflow_lifecycle(c, "tfjob-put.request.json", "tfjob", "worker")
    kubeflow_lifecycle(c, "mxjob-put.request.json", "mxjob", "scheduler")
    kubeflow_lifecycle(c, "xgboostjob.json", "xgboostjob", "master", EXAMPLES)
    kubeflow_lifecycle(c, "paddlejob.json", "paddlejob", "worker", EXAMPLES)
    kubeflow_lifecycle(c, "jaxjob.json", "jaxjob", "worker", EXAMPLES)
    mpijob_lifecycle(c)
    volcano_lifecycle(c)
    tracker.stopped.set()
    tracker.join()
    say("done. The control plane and the operator keep running:")
    print(
        f"  export KUBECONFIG={c.kubeconfig}\n"
        f"  {c.kubectl_path} get tfjobs,pytorchjobs,mxjobs,xgboostjobs,paddlejobs,jaxjobs,mpijobs,vcjobs -A\n"
        f"  operator log: {c.root / 'logs' / 'operator.log'}\n  stop both: make down"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
