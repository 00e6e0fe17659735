"""PyTorchJob specifics: the seed's children, torch.distributed env, Master-led status."""

from __future__ import annotations

from kubeflow_helpers import FakeCluster, created, deleted, env_of, fresh, kubeflow_job, later, seed

from jobwarden.core.plan import ChildRef, Event
from jobwarden.kinds import pytorchjob

TORCH = pytorchjob.KIND


def seed_cluster() -> FakeCluster:
    cluster = FakeCluster(TORCH, fresh(seed("pytorchjob-put")))
    cluster.step()
    return cluster


def test_seed_job_gets_master_and_worker_with_their_restart_policies_and_default_port() -> None:
    plan = FakeCluster(TORCH, fresh(seed("pytorchjob-put"))).step()
    pods = created(plan, "Pod")
    assert set(pods) == set(created(plan, "Service")) == {"pytorch-test-master-0", "pytorch-test-worker-0"}
    assert pods["pytorch-test-master-0"]["spec"]["restartPolicy"] == "Never"
    assert pods["pytorch-test-worker-0"]["spec"]["restartPolicy"] == "OnFailure"
    master = pods["pytorch-test-master-0"]["spec"]["containers"][0]
    assert master["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456}]
    assert master["resources"]["limits"] == {"cpu": 2, "memory": "4Gi"}
    assert created(plan, "Service")["pytorch-test-master-0"]["spec"]["ports"] == [
        {"name": "pytorchjob-port", "port": 23456}
    ]


def test_seed_env_points_every_process_at_the_master() -> None:
    pods = created(FakeCluster(TORCH, fresh(seed("pytorchjob-put"))).step(), "Pod")
    common = {
        "PYTHONUNBUFFERED": "1",
        "MASTER_PORT": "23456",
        "PET_MASTER_PORT": "23456",
        "MASTER_ADDR": "pytorch-test-master-0",
        "PET_MASTER_ADDR": "pytorch-test-master-0",
        "WORLD_SIZE": "2",
        "PET_NNODES": "2",
    }
    assert env_of(pods["pytorch-test-master-0"]["spec"]["containers"][0]) == {
        **common,
        "RANK": "0",
        "PET_NODE_RANK": "0",
    }
    assert env_of(pods["pytorch-test-worker-0"]["spec"]["containers"][0]) == {
        **common,
        "RANK": "1",
        "PET_NODE_RANK": "1",
    }


def test_env_reaches_every_container_and_world_size_counts_processes_per_node() -> None:
    job = kubeflow_job(TORCH, {"Master": 1, "Worker": 3}, nprocPerNode="2")
    containers = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    containers.append({"name": "helper", "image": "h"})
    framework, helper = created(FakeCluster(TORCH, job).step(), "Pod")["job-worker-2"]["spec"]["containers"]
    assert env_of(framework) == env_of(helper)
    assert {k: env_of(helper)[k] for k in ("WORLD_SIZE", "RANK", "PET_NPROC_PER_NODE", "PET_NNODES")} == {
        "WORLD_SIZE": "8",
        "RANK": "3",
        "PET_NPROC_PER_NODE": "2",
        "PET_NNODES": "4",
    }


def test_symbolic_nproc_per_node_leaves_the_world_size_to_torchrun() -> None:
    job = kubeflow_job(TORCH, {"Master": 1, "Worker": 1}, nprocPerNode="auto")
    env = env_of(created(FakeCluster(TORCH, job).step(), "Pod")["job-master-0"]["spec"]["containers"][0])
    assert (env["WORLD_SIZE"], env["PET_NPROC_PER_NODE"]) == ("2", "auto")


def test_without_a_master_there_is_no_rendezvous_env_and_all_workers_decide() -> None:
    cluster = FakeCluster(TORCH, kubeflow_job(TORCH, {"Worker": 2}))
    pod = created(cluster.step(), "Pod")["job-worker-0"]
    assert env_of(pod["spec"]["containers"][0]) == {"PYTHONUNBUFFERED": "1", "PET_NNODES": "2"}
    assert pod["metadata"]["labels"]["training.kubeflow.org/job-role"] == "master"
    cluster.run_all()
    cluster.step(later(5))
    cluster.set_phase("job-worker-0", "Succeeded", exit_code=0)
    cluster.step(later(10))
    assert cluster.condition("Succeeded") is None
    cluster.set_phase("job-worker-1", "Succeeded", exit_code=0)
    cluster.step(later(20))
    assert cluster.condition("Succeeded") is not None


def test_the_stored_seed_keeps_its_created_condition_while_the_master_is_pending() -> None:
    cluster = seed_cluster()
    cluster.job = seed("pytorchjob-put")  # status: Created only, `"Master": {}`
    cluster.step(later(30))
    assert cluster.status["conditions"] == seed("pytorchjob-put")["status"]["conditions"]
    assert cluster.status["startTime"] == "2019-07-24T10:36:26Z"
    assert cluster.status["replicaStatuses"] == {"Master": {}, "Worker": {}}


def test_the_master_decides_running_and_success_and_clean_pod_policy_none_keeps_pods() -> None:
    cluster = seed_cluster()
    cluster.set_phase("pytorch-test-worker-0", "Running")
    cluster.step(later(5))
    assert cluster.condition("Running") is None
    cluster.set_phase("pytorch-test-master-0", "Running")
    assert cluster.step(later(6)).events == [
        Event("Normal", "PyTorchJobRunning", "PyTorchJob pytorch-test is running.")
    ]
    cluster.set_phase("pytorch-test-master-0", "Succeeded", exit_code=0)
    plan = cluster.step(later(100))
    assert plan.events == [
        Event("Normal", "PyTorchJobSucceeded", "PyTorchJob pytorch-test is successfully completed.")
    ]
    assert plan.delete == []
    assert cluster.status["replicaStatuses"] == {"Master": {"succeeded": 1}, "Worker": {"succeeded": 1}}


def test_seed_worker_restarts_but_a_failed_master_fails_the_job() -> None:
    cluster = seed_cluster()
    cluster.run_all()
    cluster.step(later(5))
    cluster.set_phase("pytorch-test-worker-0", "Failed", exit_code=1)
    assert cluster.step(later(10)).delete == [ChildRef("Pod", "pytorch-test-worker-0")]
    cluster.step(later(11))
    cluster.set_phase("pytorch-test-master-0", "Failed", exit_code=1)
    plan = cluster.step(later(20))
    message = "PyTorchJob pytorch-test has failed because 1 Master replica(s) failed."
    assert plan.events == [Event("Warning", "PyTorchJobFailed", message)]
    assert deleted(plan, "Pod") == set()
    assert cluster.status["replicaStatuses"] == {"Master": {"failed": 1}, "Worker": {}}
