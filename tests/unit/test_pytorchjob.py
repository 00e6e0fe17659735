"""PyTorchJob specifics: the seed's children, torch.distributed env, Master-led status."""

from __future__ import annotations

from kubeflow_helpers import FakeCluster, created, deleted, env_of, fresh, kubeflow_job, later, seed

from jobwarden.core.plan import ChildRef, Event, Settings
from jobwarden.kinds.kubeflow import pytorchjob

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
        "PET_NPROC_PER_NODE": "auto",
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


def test_nproc_per_node_defaults_to_auto_in_every_pod_in_upstreams_order() -> None:
    """v1.9 `pytorch_defaults.go` setDefaultNprocPerNode (`auto` unless spec.nprocPerNode or the
    deprecated elasticPolicy.nProcPerNode is set) and `envvar.go` setPodEnv's order: PYTHONUNBUFFERED,
    the master's variables, WORLD_SIZE, RANK, PET_NODE_RANK, PET_NPROC_PER_NODE, PET_NNODES."""
    job = kubeflow_job(TORCH, {"Master": 1, "Worker": 1})
    pods = created(FakeCluster(TORCH, job).step(), "Pod")
    names = [e["name"] for e in pods["job-worker-0"]["spec"]["containers"][0]["env"]]
    assert names == [
        "PYTHONUNBUFFERED",
        "MASTER_PORT",
        "PET_MASTER_PORT",
        "MASTER_ADDR",
        "PET_MASTER_ADDR",
        "WORLD_SIZE",
        "RANK",
        "PET_NODE_RANK",
        "PET_NPROC_PER_NODE",
        "PET_NNODES",
    ]
    assert env_of(pods["job-master-0"]["spec"]["containers"][0])["PET_NPROC_PER_NODE"] == "auto"
    elastic = kubeflow_job(TORCH, {"Worker": 2}, elasticPolicy={"maxReplicas": 3})
    env = created(FakeCluster(TORCH, elastic).step(), "Pod")["job-worker-1"]["spec"]["containers"][0]["env"]
    assert [e["value"] for e in env if e["name"] == "PET_NPROC_PER_NODE"] == ["auto"]
    deprecated = kubeflow_job(TORCH, {"Worker": 2}, elasticPolicy={"nProcPerNode": 4})
    pod = created(FakeCluster(TORCH, deprecated).step(), "Pod")["job-worker-1"]
    env = pod["spec"]["containers"][0]["env"]
    assert [e["value"] for e in env if e["name"] == "PET_NPROC_PER_NODE"] == ["4"]


def test_without_a_master_there_is_no_rendezvous_env_and_all_workers_decide() -> None:
    cluster = FakeCluster(TORCH, kubeflow_job(TORCH, {"Worker": 2}))
    pod = created(cluster.step(), "Pod")["job-worker-0"]
    assert env_of(pod["spec"]["containers"][0]) == {
        "PYTHONUNBUFFERED": "1",
        "PET_NPROC_PER_NODE": "auto",
        "PET_NNODES": "2",
    }
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


# --- elasticPolicy and init-pytorch (issue 14) --------------------------------------------------


def test_elastic_policy_env_as_upstream_writes_it() -> None:
    """training-operator release-1.9 `pkg/controller.v1/pytorch/elastic.go` (ElasticEnvVarGenerator:
    PET_RDZV_ENDPOINT `<host>:<port>`, PET_RDZV_BACKEND, PET_NNODES `min:max`, PET_MAX_RESTARTS,
    PET_NPROC_PER_NODE, PET_RDZV_ID, PET_RDZV_CONF `k=v,k=v`, PET_STANDALONE "") and `envvar.go`
    (the elastic PET_NNODES replaces the plain one)."""
    elastic = {
        "minReplicas": 1,
        "maxReplicas": 4,
        "rdzvBackend": "etcd-v2",
        "rdzvHost": "etcd.infra",
        "rdzvPort": 2379,
        "rdzvId": "run-7",
        "rdzvConf": [{"key": "timeout", "value": "900"}, {"key": "last_call_timeout", "value": "30"}],
        "maxRestarts": 3,
        "nProcPerNode": 8,
        "standalone": True,
    }
    job = kubeflow_job(TORCH, {"Worker": 2}, elasticPolicy=elastic)
    env = env_of(created(FakeCluster(TORCH, job).step(), "Pod")["job-worker-1"]["spec"]["containers"][0])
    assert env == {
        "PYTHONUNBUFFERED": "1",
        "PET_RDZV_ENDPOINT": "etcd.infra:2379",
        "PET_RDZV_BACKEND": "etcd-v2",
        "PET_NNODES": "1:4",
        "PET_MAX_RESTARTS": "3",
        "PET_NPROC_PER_NODE": "8",
        "PET_RDZV_ID": "run-7",
        "PET_RDZV_CONF": "timeout=900,last_call_timeout=30",
        "PET_STANDALONE": "",
    }


def test_elastic_policy_defaults() -> None:
    """`elastic.go`: endpoint `<job>-worker-0:<the Worker's pytorchjob-port>`, backend c10d;
    `pkg/apis/kubeflow.org/v1/pytorch_defaults.go` setElasticPolicy: a missing bound takes the other's
    value, both missing the Worker replicas."""
    job = kubeflow_job(TORCH, {"Master": 1, "Worker": 3}, elasticPolicy={})
    pods = created(FakeCluster(TORCH, job).step(), "Pod")
    env = env_of(pods["job-worker-0"]["spec"]["containers"][0])
    assert {k: env[k] for k in ("PET_RDZV_ENDPOINT", "PET_RDZV_BACKEND", "PET_NNODES")} == {
        "PET_RDZV_ENDPOINT": "job-worker-0:23456",
        "PET_RDZV_BACKEND": "c10d",
        "PET_NNODES": "3:3",
    }
    assert "PET_MAX_RESTARTS" not in env and "PET_STANDALONE" not in env
    assert env["MASTER_ADDR"] == "job-master-0"  # the master's env is kept beside the elastic one
    only_max = kubeflow_job(TORCH, {"Worker": 2}, elasticPolicy={"maxReplicas": 5})
    env = env_of(created(FakeCluster(TORCH, only_max).step(), "Pod")["job-worker-0"]["spec"]["containers"][0])
    assert env["PET_NNODES"] == "5:5"


def test_workers_wait_for_the_master_in_init_pytorch() -> None:
    """training-operator release-1.9 `pkg/controller.v1/pytorch/initcontainer.go`: only Workers of a job
    with a Master, image `alpine:3.10` (`pkg/config/config.go`), 100 tries 2 s apart, limits cpu 100m
    memory 20Mi, requests cpu 50m memory 10Mi, after the template's own init containers."""
    job = kubeflow_job(TORCH, {"Master": 1, "Worker": 2})
    own = {"name": "fetch-data", "image": "busybox"}
    job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["initContainers"] = [own]
    pods = created(FakeCluster(TORCH, job).step(), "Pod")
    assert "initContainers" not in pods["job-master-0"]["spec"]
    first, init = pods["job-worker-1"]["spec"]["initContainers"]
    assert first == own
    assert init == {
        "name": "init-pytorch",
        "image": "alpine:3.10",
        "imagePullPolicy": "IfNotPresent",
        "resources": {
            "limits": {"cpu": "100m", "memory": "20Mi"},
            "requests": {"cpu": "50m", "memory": "10Mi"},
        },
        "command": [
            "sh",
            "-c",
            "err=1;for i in $(seq 100); do if nslookup job-master-0; then err=0 && break; fi;"
            "echo waiting for master; sleep 2; done; exit $err",
        ],
    }
    workers_only = created(FakeCluster(TORCH, kubeflow_job(TORCH, {"Worker": 2})).step(), "Pod")
    assert all("initContainers" not in pod["spec"] for pod in workers_only.values())


def test_init_pytorch_image_tries_and_resources_are_settings() -> None:
    settings = Settings(
        pytorch_init_image="registry.local/busybox:1.36",
        pytorch_init_max_tries=5,
        pytorch_init_resources=(("requests.cpu", "10m"),),
    )
    job = kubeflow_job(TORCH, {"Master": 1, "Worker": 1})
    (init,) = created(FakeCluster(TORCH, job, settings).step(), "Pod")["job-worker-0"]["spec"][
        "initContainers"
    ]
    assert (init["image"], init["resources"]) == ("registry.local/busybox:1.36", {"requests": {"cpu": "10m"}})
    assert "$(seq 5)" in init["command"][2]
