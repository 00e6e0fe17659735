"""XGBoostJob, PaddleJob, JAXJob and MPIJob really running through jobwarden on the real node: the processes
meet through the env and Service names the operator wires, and the tests read the proof in the
pods' logs (sums over every rank), not only the job's condition.

- JAXJob, 2 Workers: `jax.distributed.initialize` at COORDINATOR_ADDRESS:COORDINATOR_PORT
  (Worker-0's Service name) with NUM_PROCESSES/PROCESS_ID; `process_allgather` and a jitted sum over
  an array sharded across both processes both give 3 on each; Succeeded (all Workers).
- XGBoostJob, Master + 2 Workers: the Master runs XGBoost's RabitTracker on MASTER_PORT and dials
  every WORKER_ADDRS entry at WORKER_PORT; all 3 ranks join it at MASTER_ADDR, all-reduce (sum 6)
  and train one booster on their shards (the same model on every rank); Succeeded (the Master).
- PaddleJob, collective mode, 3 Workers: Worker-0's PADDLE_MASTER is its own pod IP (POD_IP_DUMMY,
  expanded by kubelet), the others reach it by name; every node gets the same endpoint list and
  sum 6; Succeeded (all Workers).
- MPIJob (kubeflow.org/v2beta1), OpenMPI, 2 Workers running `sshd -De` (StrictModes off): the
  launcher, a batch/v1 Job the controller-manager runs once the Workers are ready
  (WaitForWorkersReady), reaches both over ssh at the hostfile's FQDNs (`<pod>.<job>.<ns>.svc`) with
  the Secret's key and `mpirun`s one rank on each (hosts from OMPI_MCA_orte_default_hostfile); MPI
  all-reduce sum 3 on both ranks; the launcher Job completes and the MPIJob Succeeded.

Each records its job's create-to-finish time (benchmarks/realnode.py prints them)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import family_jobs
import pytest
import training
from devcluster import cluster as devcluster
from devcluster.operator import LocalOperator
from family_jobs import record
from training import ImagesUnavailable

# The first test's setup may build the images (cold: minutes) and import them.
pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="session")
def family_images(request: pytest.FixtureRequest, import_image: Callable[[Path], None]) -> dict[str, Path]:
    """The training images, built on first use (progress on the terminal) and imported into the node."""
    capture: Any = request.config.pluginmanager.getplugin("capturemanager")
    try:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print("\n[real family] packaging/training-images.sh", file=sys.stderr, flush=True)
            archives = training.build_images("training", "training-jax")
    except ImagesUnavailable as reason:
        pytest.skip(f"cannot build the training images here: {reason}")
    for archive in archives.values():
        import_image(archive)
    return archives


@pytest.fixture
def workloads(cluster: devcluster.Cluster, namespace: str, family_images: dict[str, Path]) -> str:
    """The test's namespace, holding the ConfigMap with the workload scripts."""
    cluster.kubectl("apply", "-f", "-", input=json.dumps(family_jobs.workload_configmap(namespace)))
    return namespace


def test_jaxjob_processes_join_jax_distributed(
    cluster: devcluster.Cluster, workloads: str, operator: LocalOperator
) -> None:
    name = "jax-dist"
    run = family_jobs.run_jaxjob(cluster, workloads, name)
    record(run, run.lines_with("jax process"))

    assert sorted(run.logs) == [f"{name}-worker-0", f"{name}-worker-1"], run.logs.keys()
    assert run.lines_with("global devices") == [
        f"jax process {p}/2: coordinator {name}-worker-0:6666, 2 global devices (1 local)" for p in range(2)
    ], run.logs
    assert run.lines_with("allgather") == [
        f"jax process {p}/2: allgather [1, 2] sum 3 (want 3)" for p in range(2)
    ]
    assert run.lines_with("sharded sum") == [f"jax process {p}/2: sharded sum 3 (want 3)" for p in range(2)]


def test_xgboostjob_ranks_meet_at_the_tracker_and_train_one_model(
    cluster: devcluster.Cluster, workloads: str, operator: LocalOperator
) -> None:
    name = "xgb-rabit"
    run = family_jobs.run_xgboostjob(cluster, workloads, name)
    record(run, run.lines_with("xgboost"))

    assert sorted(run.logs) == [f"{name}-master-0", f"{name}-worker-0", f"{name}-worker-1"], run.logs.keys()
    master = run.logs[f"{name}-master-0"]
    for worker in range(2):  # WORKER_ADDRS/WORKER_PORT: each Worker answered with its RANK
        assert f"xgboost master: worker {name}-worker-{worker}:9999 answered rank {worker + 1}" in master, (
            master
        )
    assert run.lines_with("allreduce sum") == [
        f"xgboost rank {r}/3: allreduce sum 6 (want 6)" for r in range(3)
    ]
    models = run.lines_with("after 5 rounds")
    assert len(models) == 3 and len({line.split(" model ")[1] for line in models}) == 1, models


def test_paddlejob_workers_meet_at_paddle_master(
    cluster: devcluster.Cluster, workloads: str, operator: LocalOperator
) -> None:
    name = "paddle-coll"
    run = family_jobs.run_paddlejob(cluster, workloads, name)
    record(run, run.lines_with("paddle"))

    pods = [f"{name}-worker-{i}" for i in range(3)]
    assert sorted(run.logs) == pods, run.logs.keys()
    leader = run.logs[pods[0]]
    assert "paddle master: PADDLE_MASTER 10.244.0." in leader and ":36543 is this pod" in leader, leader
    assert f"paddle master: 2 peers registered for PADDLE_NNODES 3 (job {name})" in leader, leader
    nodes = run.lines_with("paddle node")
    assert len(nodes) == 3 and all(line.endswith("sum 6 (want 6)") for line in nodes), nodes
    assert sorted(line.split("(")[1].split(")")[0] for line in nodes) == pods, nodes
    assert sorted(line.split(" ")[2] for line in nodes) == ["0/3", "1/3", "2/3"], nodes
    assert len({line.split("endpoints ")[1] for line in nodes}) == 1, nodes  # the same list everywhere


def test_mpijob_launcher_job_mpiruns_over_ssh_on_the_hostfile(
    cluster: devcluster.Cluster, workloads: str, operator: LocalOperator
) -> None:
    name, namespace = "mpi-ring", workloads
    run = family_jobs.run_mpijob(cluster, namespace, name)
    record(run, run.lines_with("ssh to") + run.lines_with("allreduce sum"))

    workers = [f"{name}-worker-{i}" for i in range(family_jobs.MPI_WORKERS)]
    launchers = [pod for pod in run.logs if pod.startswith(f"{name}-launcher-")]
    assert sorted(run.logs) == sorted(launchers + workers) and len(launchers) == 1, run.logs.keys()
    launcher_log = run.logs[launchers[0]]
    fqdns = [f"{worker}.{name}.{namespace}.svc" for worker in workers]
    # The hostfile the operator wrote, mounted at /etc/mpi; each FQDN taken over ssh with the
    # Secret's key, then mpirun (its hosts from OMPI_MCA_orte_default_hostfile) started one rank on each.
    assert f"hostfile: {fqdns[0]} slots=1 {fqdns[1]} slots=1" in launcher_log, launcher_log
    for fqdn in fqdns:
        assert f"ssh to {fqdn}: ok after" in launcher_log, launcher_log
    assert run.lines_with("allreduce sum") == [
        f"mpi rank {rank}/2 on {worker}: allreduce sum 3 (want 3)" for rank, worker in enumerate(workers)
    ], launcher_log
    # The launcher is a batch/v1 Job the controller-manager's Job controller ran to completion.
    launcher_job = training.get(cluster, "jobs.batch", f"{name}-launcher", "-n", namespace)
    assert launcher_job is not None and launcher_job["status"].get("succeeded") == 1, launcher_job
    owner = launcher_job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner.get("controller")) == ("MPIJob", name, True)
