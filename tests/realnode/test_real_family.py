"""XGBoostJob, PaddleJob and JAXJob really running through jobwarden on the real node: the processes
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
from devcluster import cluster as devcluster
from devcluster.operator import LocalOperator
from family_jobs import ImagesUnavailable, record

# The first test's setup may build the images (cold: minutes) and import them.
pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="session")
def family_images(request: pytest.FixtureRequest, import_image: Callable[[Path], None]) -> dict[str, Path]:
    """The training images, built on first use (progress on the terminal) and imported into the node."""
    capture: Any = request.config.pluginmanager.getplugin("capturemanager")
    try:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print("\n[real family] packaging/training-images.sh", file=sys.stderr, flush=True)
            archives = family_jobs.build_images("training", "training-jax")
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
