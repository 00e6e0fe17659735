"""Issue 14's Volcano parity against the real control plane and the operator subprocess: the
distributed-framework plugins (mpi with a user-written `dependsOn`, pytorch, tensorflow), Commands
made by `jobwarden job suspend|resume` (carried out, then deleted), the svc plugin's NetworkPolicy
and PVCs from `volumes[].volumeClaim`.

Volcano's scheduler is not installed here (no PodGroup CRD): the default-scheduler fallback admits
jobs, and kwok runs the pods (Running and ready) once bound."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest
from devcluster.cluster import Cluster
from kubernetes import client
from volcano_steps import (
    JOB_VERSION_KEY,
    Body,
    NewJob,
    VolcanoJob,
    env_of,
    small_job,
    task,
)

pytestmark = pytest.mark.usefixtures("operator_log_hint")


def two_task_job(namespace: str, name: str, plugins: dict[str, list[str]], workers: int = 2) -> Body:
    """`master` (1 replica) and `worker` (`workers`) built from the seed's worker task."""
    body = small_job(namespace, name, workers)
    worker = task(body, "worker")
    master = copy.deepcopy(worker)
    master.update(name="master", replicas=1)
    master.pop("policies", None)
    body["spec"].update(tasks=[master, worker], minAvailable=1 + workers, plugins=plugins)
    return body


def all_running(job: VolcanoJob, workers: int) -> dict[str, Any]:
    names = [job.pod_name("master", 0), *(job.pod_name("worker", i) for i in range(workers))]
    return job.wait_pods_running(*names)


def values(pod: Any) -> dict[str, Any]:
    return dict(env_of(pod))


def test_mpi_launcher_waits_for_its_workers_with_a_user_dependson(new_vcjob: NewJob, namespace: str) -> None:
    """volcano-sh/volcano issue 2402: a `dependsOn` on the master, with the mpi plugin, starts the
    launcher once the workers run; it gets MPI_HOST and the ssh port, svc and ssh come implied."""
    body = two_task_job(namespace, "mpi-job", {"mpi": []})
    task(body, "master")["dependsOn"] = {"name": ["worker"]}
    job = new_vcjob(body)

    every = job.wait_pods_running(
        *(job.pod_name(t, i) for t, i in (("master", 0), ("worker", 0), ("worker", 1)))
    )
    master = every[job.pod_name("master", 0)]
    started = {p.status.start_time for name, p in every.items() if "-worker-" in name}
    assert all(master.metadata.creation_timestamp >= t for t in started), (
        "the launcher came after its workers"
    )

    env = values(master)
    assert env["MPI_HOST"] == "mpi-job-worker-0.mpi-job,mpi-job-worker-1.mpi-job"
    ports = [(p.name, p.container_port) for p in master.spec.containers[0].ports or []]
    assert ("mpijob-port", 22) in ports
    assert job.service() is not None and job.secret() is not None  # svc and ssh, implied by mpi
    status = job.wait_status(lambda s: "plugin-mpi" in (s.get("controlledResources") or {}), "plugin-mpi")
    assert status["status"]["controlledResources"]["plugin-ssh"] == "ssh"


def test_mpi_job_with_only_a_master_task_runs(new_vcjob: NewJob, namespace: str) -> None:
    """volcano-sh/volcano issue 4609: upstream's controller panicked on it; here it runs."""
    body = small_job(namespace, "mpi-alone", 1)
    task(body, "worker")["name"] = "master"
    body["spec"]["plugins"] = {"mpi": []}
    job = new_vcjob(body)

    pod = job.wait_pods_running(job.pod_name("master", 0))[job.pod_name("master", 0)]
    assert "MPI_HOST" not in values(pod)
    job.wait_phase("Running")


def test_pytorch_and_tensorflow_env(new_vcjob: NewJob, namespace: str) -> None:
    """Upstream pytorch.go and tensorflow.go values, as the pods are stored by the apiserver."""
    torch = new_vcjob(two_task_job(namespace, "torch", {"pytorch": ["--port=29500"]}))
    tf = new_vcjob(two_task_job(namespace, "tf", {"tensorflow": []}, workers=1))

    worker = all_running(torch, 2)[torch.pod_name("worker", 1)]
    env = values(worker)
    assert (env["MASTER_ADDR"], env["MASTER_PORT"], env["WORLD_SIZE"], env["RANK"]) == (
        "torch-master-0.torch",
        "29500",
        "3",
        "2",
    )
    assert ("pytorchjob-port", 29500) in [(p.name, p.container_port) for p in worker.spec.containers[0].ports]

    tf_worker = all_running(tf, 1)[tf.pod_name("worker", 0)]
    assert json.loads(values(tf_worker)["TF_CONFIG"]) == {
        "cluster": {"worker": ["tf-worker-0.tf:2222"]},
        "task": {"type": "worker", "index": 0},
    }


def jobwarden_job(cluster: Cluster, verb: str, job: VolcanoJob) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobwarden.cli",
            "job",
            verb,
            job.name,
            "-n",
            job.namespace,
            "--kubeconfig",
            str(cluster.kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def commands(custom: client.CustomObjectsApi, namespace: str) -> list[Body]:
    found = custom.list_namespaced_custom_object("bus.volcano.sh", "v1alpha1", namespace, "commands")
    return list(found["items"])


def test_suspend_and_resume_commands(
    new_vcjob: NewJob, namespace: str, cluster: Cluster, custom: client.CustomObjectsApi
) -> None:
    """vcctl's suspend (AbortJob) and resume (ResumeJob) as Commands: carried out, then deleted
    (upstream job_controller_handler.go processNextCommand; state/aborted.go)."""
    job = new_vcjob(small_job(namespace, "pausable", 2))
    job.wait_pods_running(job.pod_name("worker", 0), job.pod_name("worker", 1))
    job.wait_phase("Running")

    out = jobwarden_job(cluster, "suspend", job)
    assert "AbortJob" in out
    aborted = job.wait_phase("Aborted")
    assert aborted["status"]["state"]["reason"] == "AbortJob"
    assert aborted["status"]["state"]["message"].startswith("Command pausable-abortjob-")
    job.wait(lambda: not job.pods(), "the pods killed")
    job.wait(lambda: not commands(custom, namespace), "the AbortJob Command deleted")
    assert job.wait_event("CommandIssued").message.startswith("Start to execute command AbortJob")

    jobwarden_job(cluster, "resume", job)
    resumed = job.wait_status(
        lambda s: (s.get("state") or {}).get("phase") == "Running" and s.get("running") == 2, "running again"
    )
    assert resumed["status"]["retryCount"] == 1 and resumed["status"]["version"] == 2
    versions = {p.metadata.annotations[JOB_VERSION_KEY] for p in job.pods().values()}
    assert versions == {"2"}
    job.wait(lambda: not commands(custom, namespace), "the ResumeJob Command deleted")


def test_network_policy_and_volume_claims(
    new_vcjob: NewJob, namespace: str, core: client.CoreV1Api, api_client: client.ApiClient
) -> None:
    """The svc plugin's NetworkPolicy (upstream svc.go) and a PVC made from `volumes[].volumeClaim`
    (upstream job_controller_actions.go createPVC), both owned by the job; `--disable-network-policy`
    makes none."""
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    body = small_job(namespace, "guarded", 1)
    body["spec"]["volumes"] = [{"mountPath": "/scratch", "volumeClaim": claim}]
    job = new_vcjob(body)
    open_body = small_job(namespace, "open", 1)
    open_body["spec"]["plugins"]["svc"] = ["--disable-network-policy"]
    unguarded = new_vcjob(open_body)
    networking = client.NetworkingV1Api(api_client)

    def policy(name: str) -> Any:
        found = networking.list_namespaced_network_policy(namespace).items
        return next((p for p in found if p.metadata.name == name), None)

    made = job.wait(lambda: policy("guarded"), "the NetworkPolicy")
    uid = job.body()["metadata"]["uid"]
    assert made.metadata.owner_references[0].uid == uid
    own = {"volcano.sh/job-name": "guarded", "volcano.sh/job-namespace": namespace}
    assert made.spec.pod_selector.match_labels == own
    assert made.spec.ingress[0]._from[0].pod_selector.match_labels == own
    assert made.spec.policy_types == ["Ingress"]

    pvc = job.wait(
        lambda: next(iter(core.list_namespaced_persistent_volume_claim(namespace).items), None), "PVC"
    )
    assert pvc.metadata.name.startswith("guarded-pvc-") and len(pvc.metadata.name) == len("guarded-pvc-") + 12
    assert pvc.metadata.owner_references[0].uid == uid
    assert pvc.spec.resources.requests == {"storage": "1Gi"}
    pod = job.wait(lambda: job.pods().get(job.pod_name("worker", 0)), "the pod")
    claims = [v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.persistent_volume_claim]
    assert claims == [pvc.metadata.name]
    job.wait_status(
        lambda s: (
            (s.get("controlledResources") or {}).get(f"volume-pvc-{pvc.metadata.name}") == pvc.metadata.name
        ),
        "the claim recorded",
    )

    unguarded.wait_pods_running(unguarded.pod_name("worker", 0))
    assert unguarded.service() is not None and policy("open") is None
