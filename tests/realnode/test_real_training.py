"""Real distributed training through jobwarden on the real node: the training processes rendezvous
through the env, Services, hostfile and ssh keys the operator wires, and the tests read the proof in
the pods' logs (all-reduce sums over every rank), not only a phase.

- PyTorchJob, Master + 2 Workers: gloo via MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE (the workers'
  init container waits with `nslookup` for the master's Service), all-reduce sum 6 on every rank,
  5 DDP steps with equal weights after; Succeeded; cleanPodPolicy All removed every pod of the job
  and nothing else.
- Volcano job of seed 003 (mpimaster + mpiworker, env/ssh/svc plugins): created at mpiworker 1, the
  seed's PUT scales it to 2 while the master waits; the master's `mpiexec` reaches the two workers
  named in the mounted hostfile over ssh with the keys the ssh plugin mounted; MPI all-reduce sum 3
  on both ranks; TaskCompleted -> CompleteJob -> Completed.
- TFJob, Chief + Worker: MultiWorkerMirroredStrategy from TF_CONFIG, all-reduce sum 3 on both
  tasks, 5 steps with gradients all-reduced, equal weights; Succeeded.
- MXJob, Scheduler + Server + 2 Workers: everyone meets at DMLC_PS_ROOT_URI:DMLC_PS_ROOT_PORT, the
  workers push to the server at its MX_CONFIG address; the server's sum 3 reaches both workers;
  Succeeded.

Each test records its job's create-to-finish time (benchmarks/realnode_training.py prints them) and
prints the proof lines; the bound per job (420 s) is generous, the goal 120 s.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import training
from devcluster import cluster as devcluster
from devcluster.operator import LocalOperator
from training import (
    KUBEFLOW_JOB_LABEL,
    MPI_WORKERS,
    VOLCANO_JOB,
    ImagesUnavailable,
    Run,
    apply,
    build_images,
    get,
    lines_with,
    pods_of,
    wait_until,
    workload_configmap,
)

# The first test's setup may build the images (cold: ~10 min) and import them; each job then has
# training.JOB_TIMEOUT (420 s) from create to finish.
pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="session")
def training_images(request: pytest.FixtureRequest, import_image: Callable[[Path], None]) -> dict[str, Path]:
    """The training images, built on first use (a cold build takes ~10 min: its progress is shown on
    the terminal, not captured) and imported into the node."""
    capture: Any = request.config.pluginmanager.getplugin("capturemanager")
    try:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print("\n[real training] packaging/training-images.sh", file=sys.stderr, flush=True)
            archives = build_images()
    except ImagesUnavailable as reason:
        pytest.skip(f"cannot build the training images here: {reason}")
    for archive in archives.values():
        import_image(archive)
    return archives


@pytest.fixture
def workloads(cluster: devcluster.Cluster, namespace: str, training_images: dict[str, Path]) -> str:
    """The test's namespace, holding the ConfigMap with the workload scripts."""
    apply(cluster, workload_configmap(namespace))
    return namespace


def recorded(run: Run) -> Run:
    """Keeps the create-to-finish time for the numbers script (benchmarks/realnode_training.py prints
    the last one of each kind) and prints the proof lines (`pytest -s`, and the failure report)."""
    path = devcluster.cache_dir() / "realnode" / "job-times.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    times: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    times[run.kind] = {
        "seconds": round(run.seconds, 1),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.write_text(json.dumps(times, indent=2) + "\n")
    print(f"\n[{run.kind}] finished {run.seconds:.1f} s after create; proof:")
    for line in run.proof:
        print(f"  {line}")
    for pod, earlier in run.restarted.items():
        # Allowed by the jobs' OnFailure (the checks read each pod's last run); shown, never hidden.
        print(f"  {pod} restarted {len(earlier)} time(s); the end of its first run:")
        print("    " + "\n    ".join(earlier[0].splitlines()[-15:]))
    return run


def test_pytorchjob_all_reduce_and_ddp(
    cluster: devcluster.Cluster, workloads: str, operator: LocalOperator
) -> None:
    namespace, name = workloads, "torch-ddp"
    run = recorded(training.run_pytorchjob(cluster, namespace, name))
    logs = run.logs

    assert sorted(logs) == [f"{name}-master-0", f"{name}-worker-0", f"{name}-worker-1"], logs.keys()
    sums = lines_with(logs, "all-reduce sum")
    assert sorted(sums) == [f"rank {r}/3: all-reduce sum 6 (want 6)" for r in range(3)], logs
    assert len(lines_with(logs, "DDP step 4 loss")) == 3, logs
    equal = lines_with(logs, "DDP weights equal on all ranks")
    assert sorted(equal) == [f"rank {r}: DDP weights equal on all ranks: True" for r in range(3)], logs

    # cleanPodPolicy All: every pod of the job goes once it Succeeded, its Services too; the
    # ConfigMap the pods mounted (not the job's) stays.
    selector = f"{KUBEFLOW_JOB_LABEL}={name}"
    wait_until(lambda: not pods_of(cluster, namespace, selector), 60, "the job's pods to be deleted")
    services = get(cluster, "services", "-n", namespace, "-l", selector)
    assert services is not None and services["items"] == [], services
    assert get(cluster, "configmap", training.WORKLOAD_CONFIGMAP, "-n", namespace) is not None


def test_volcano_seed_mpi_job_scaled_then_mpirun_over_ssh(
    cluster: devcluster.Cluster, workloads: str, operator: LocalOperator
) -> None:
    run = recorded(training.run_volcano_mpi(cluster, workloads))
    master_log = run.logs.get(f"{VOLCANO_JOB}-mpimaster-0", "")

    workers = [f"{VOLCANO_JOB}-mpiworker-{i}" for i in range(MPI_WORKERS)]
    assert "hostfile names 2 workers after" in master_log, master_log
    for worker in workers:
        assert f"ssh to {worker}.{VOLCANO_JOB}: ok" in master_log, master_log
    sums = lines_with({"master": master_log}, "allreduce sum")
    assert sorted(sums) == [
        f"mpi rank {rank}/2 on {host}: allreduce sum 3 (want 3)" for rank, host in enumerate(workers)
    ], master_log
    # TaskCompleted -> CompleteJob: the master's task completing finished the job.
    assert run.job["status"]["state"]["phase"] == "Completed"
    assert run.job["status"].get("succeeded", 0) >= 1, run.job["status"]


def test_tfjob_workers_talk_through_tf_config(
    cluster: devcluster.Cluster, workloads: str, operator: LocalOperator
) -> None:
    logs = recorded(training.run_tfjob(cluster, workloads)).logs

    assert sorted(lines_with(logs, "all-reduce sum")) == [
        "tf chief:0 rank 0/2: all-reduce sum 3 (want 3)",
        "tf worker:0 rank 1/2: all-reduce sum 3 (want 3)",
    ], logs
    assert len(lines_with(logs, " step 4 loss ")) == 2, logs
    equal = lines_with(logs, "equal on all tasks")
    assert len(equal) == 2 and all(line.endswith("equal on all tasks: True") for line in equal), logs


def test_mxjob_roles_meet_at_dmlc_addresses(
    cluster: devcluster.Cluster, workloads: str, operator: LocalOperator
) -> None:
    name = "mx-ps"
    logs = recorded(training.run_mxjob(cluster, workloads, name)).logs

    scheduler = logs.get(f"{name}-scheduler-0", "")
    assert "scheduler: 1 servers and 2 workers registered" in scheduler, logs
    assert lines_with(logs, "server 0: sum of 2 workers' values 3 (want 3)"), logs
    for worker in range(2):
        assert f"scheduler: worker {worker} got sum 3 from 1 servers" in scheduler, logs
        answered = f"worker {worker}: server at {name}-server-0:9091 answered {{3}}"
        assert answered in logs.get(f"{name}-worker-{worker}", ""), logs
