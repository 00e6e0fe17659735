"""The distributed-framework plugins (mpi, pytorch, tensorflow, hcclrank) against the values upstream's
code produces (volcano-sh/volcano `pkg/controllers/job/plugins/distributed-framework/`), and the
plugins Volcano's mutating webhook implies (`pkg/webhooks/admission/jobs/mutate/mutate_job.go`)."""

from __future__ import annotations

import json
import socket
import subprocess
from typing import Any

from volcano_helpers import FakeCluster, created, later, task, vcjob

from jobwarden.core.plan import Manifest
from jobwarden.kinds.volcano import KIND
from jobwarden.plugins.base import JobContext
from jobwarden.plugins.registry import build_plugins


def context(*tasks: dict[str, Any]) -> JobContext:
    return JobContext.of(vcjob(*tasks))


def new_pod(name: str = "job-master-0") -> Manifest:
    return {
        "metadata": {"name": name},
        "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}]},
    }


def plugin(name: str, *args: str) -> Any:
    return build_plugins({name: list(args)}).plugins[0]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "<from>") for e in container.get("env") or []}


def first_plan_pods(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return created(FakeCluster(job).step(), "Pod")


# ---------------------------------------------------------------------------------------------
# mpi


def test_mpi_master_gets_the_worker_hosts_and_every_container_the_port() -> None:
    """Upstream `mpi/mpi.go`: `MPI_HOST` = the worker task's `<pod>.<job>` joined with commas, on the
    master's containers and init containers; port 22 named `mpijob-port` on every container."""
    job = context(task("master"), task("worker", 3))
    pod = new_pod()
    plugin("mpi").on_pod_create(pod, job, "master", 0)

    hosts = "job-worker-0.job,job-worker-1.job,job-worker-2.job"
    for container in [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]:
        assert env_of(container) == {"MPI_HOST": hosts}
        assert container["ports"] == [{"name": "mpijob-port", "containerPort": 22}]


def test_mpi_flags_rename_the_tasks_and_port_and_a_worker_gets_no_hosts() -> None:
    """Upstream `mpi/mpi.go` flags `--master`, `--worker`, `--port`; a declared port is not repeated."""
    job = context(task("launcher"), task("w", 2))
    mpi = plugin("mpi", "--master=launcher", "--worker=w", "--port=2222")
    worker = new_pod("job-w-0")
    worker["spec"]["containers"][0]["ports"] = [{"name": "ssh", "containerPort": 2222}]
    mpi.on_pod_create(worker, job, "w", 0)
    master = new_pod()
    mpi.on_pod_create(master, job, "launcher", 0)

    assert worker["spec"]["containers"][0]["ports"] == [{"name": "ssh", "containerPort": 2222}]
    assert "env" not in worker["spec"]["containers"][1]
    assert env_of(master["spec"]["containers"][0]) == {"MPI_HOST": "job-w-0.job,job-w-1.job"}


def test_mpi_with_a_fixed_worker_hostname_lists_it_once() -> None:
    """Upstream `mpi/mpi.go` generateTaskHosts: a template hostname ends the list after one entry."""
    job = context(task("master"), task("worker", 2, template={"spec": {"hostname": "w", "subdomain": "s"}}))
    pod = new_pod()
    plugin("mpi").on_pod_create(pod, job, "master", 0)

    assert env_of(pod["spec"]["containers"][0]) == {"MPI_HOST": "w.s"}


def test_mpi_job_with_only_a_master_task_runs_without_mpi_host() -> None:
    """volcano-sh/volcano issue 4609 (upstream `mpi/mpi.go` now returns early without a worker task):
    the job runs; the master gets the port and no MPI_HOST."""
    cluster = FakeCluster(vcjob(task("master"), plugins={"mpi": []}))
    pods = created(cluster.step(), "Pod")

    container = pods["job-master-0"]["spec"]["containers"][0]
    assert "MPI_HOST" not in env_of(container)
    assert {"name": "mpijob-port", "containerPort": 22} in container["ports"]


def test_mpi_worker_task_without_replicas_gives_an_empty_host_list() -> None:
    """volcano-sh/volcano issue 4271: a task without `replicas` (0) must not break the plan; upstream's
    generateTaskHosts returns "" for it."""
    worker = task("worker")
    del worker["replicas"]
    pods = first_plan_pods(vcjob(task("master"), worker, plugins={"mpi": []}))

    assert list(pods) == ["job-master-0"]
    assert env_of(pods["job-master-0"]["spec"]["containers"][0])["MPI_HOST"] == ""


def test_mpi_implies_svc_and_ssh_as_the_mutating_webhook_adds_them() -> None:
    """Upstream `mutate_job.go` patchDefaultPlugins: mpi adds svc and ssh."""
    plan = FakeCluster(vcjob(task("master"), task("worker", 2), plugins={"mpi": []})).step()

    assert plan.status is not None
    assert plan.status["controlledResources"] == {"plugin-mpi": "mpi", "plugin-svc": "svc"}
    assert {(m["kind"], m["metadata"]["name"]) for m in plan.create} >= {
        ("ConfigMap", "job-svc"),
        ("Service", "job"),
        ("Secret", "job-ssh"),
    }


def test_mpi_launcher_with_a_user_dependson_starts_once_the_workers_are_ready() -> None:
    """volcano-sh/volcano issue 2402: upstream's automatic dependsOn for mpi is commented out in
    `mutate_job.go`; a user-written `dependsOn` on the master works together with the plugin."""
    master = task("master", dependsOn={"name": ["worker"]})
    cluster = FakeCluster(vcjob(master, task("worker", 2), plugins={"mpi": []}))
    cluster.settle()
    assert sorted(cluster.pods) == ["job-worker-0", "job-worker-1"]
    cluster.set_phase("job-worker-0", "Running")
    assert created(cluster.step(later(1)), "Pod") == {}  # one of two workers is not enough

    cluster.set_phase("job-worker-0", "Running")
    cluster.set_phase("job-worker-1", "Running")
    made = created(cluster.step(later(1)), "Pod")
    assert (
        env_of(made["job-master-0"]["spec"]["containers"][0])["MPI_HOST"]
        == "job-worker-0.job,job-worker-1.job"
    )


# ---------------------------------------------------------------------------------------------
# pytorch


def test_pytorch_env_rank_and_port_as_upstream() -> None:
    """Upstream `pytorch/pytorch.go`: MASTER_ADDR = master replica 0's domain name, MASTER_PORT 23456,
    WORLD_SIZE = master + worker replicas, RANK master 0 / worker index+1, port `pytorchjob-port` on
    containers (not init containers)."""
    job = context(task("master"), task("worker", 2), task("other"))
    pytorch = plugin("pytorch")
    pods = {name: new_pod(f"job-{name}-{i}") for name, i in (("master", 0), ("worker", 1), ("other", 0))}
    pytorch.on_pod_create(pods["master"], job, "master", 0)
    pytorch.on_pod_create(pods["worker"], job, "worker", 1)
    pytorch.on_pod_create(pods["other"], job, "other", 0)

    common = {"MASTER_ADDR": "job-master-0.job", "MASTER_PORT": "23456", "WORLD_SIZE": "3"}
    assert env_of(pods["master"]["spec"]["containers"][1]) == {**common, "RANK": "0"}
    assert env_of(pods["worker"]["spec"]["containers"][0]) == {**common, "RANK": "2"}
    assert env_of(pods["other"]["spec"]["containers"][0]) == common
    assert pods["worker"]["spec"]["containers"][0]["ports"] == [
        {"name": "pytorchjob-port", "containerPort": 23456}
    ]
    assert pods["worker"]["spec"]["initContainers"] == [{"name": "init"}]


def test_pytorch_without_its_master_task_adds_nothing() -> None:
    """Upstream `pytorch/pytorch.go` OnPodCreate returns without changes when the master task is missing."""
    pod = new_pod("job-worker-0")
    plugin("pytorch").on_pod_create(pod, context(task("worker", 2)), "worker", 0)

    assert pod == new_pod("job-worker-0")


def test_pytorch_wait_for_master_init_container_on_workers_only() -> None:
    """Upstream `pytorch/pytorch.go` `--wait-master-enabled`: init container `wait-for-master` on
    worker pods, with the image and timeout flags."""
    job = context(task("master"), task("worker"))
    pytorch = plugin("pytorch", "--wait-master-enabled", "--wait-master-image=img:1", "--port=1234")
    worker, master = new_pod("job-worker-0"), new_pod()
    pytorch.on_pod_create(worker, job, "worker", 0)
    pytorch.on_pod_create(master, job, "master", 0)

    wait = worker["spec"]["initContainers"][-1]
    assert (wait["name"], wait["image"], wait["command"][:2]) == ("wait-for-master", "img:1", ["sh", "-c"])
    assert "nc -z job-master-0.job 1234" in wait["command"][2] and "TIMEOUT=300" in wait["command"][2]
    assert [c["name"] for c in master["spec"]["initContainers"]] == ["init"]


def test_pytorch_wait_for_master_prints_upstreams_messages() -> None:
    """Issue 25: `kubectl logs -c wait-for-master` reads as under Volcano (pytorch.go
    generateWaitForMasterScript). The script runs here against a port nobody listens on, with a 2 s
    timeout: one retry, then the timeout."""
    port = free_port()
    job = context(task("master"), task("worker"))
    pytorch = plugin("pytorch", "--wait-master-enabled", f"--port={port}", "--wait-master-timeout=2")
    worker = new_pod("job-worker-0")
    pytorch.on_pod_create(worker, job, "worker", 0)
    script = worker["spec"]["initContainers"][-1]["command"][2].replace("job-master-0.job", "127.0.0.1")
    ran = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert ran.returncode == 1
    assert ran.stdout.splitlines() == [
        f"Waiting for master node 127.0.0.1:{port} to be ready...",
        "Master not ready yet, retrying in 2 seconds... (elapsed: 0s)",
        "Timeout waiting for master after 2 seconds",
    ]
    assert script.endswith('\ndone\necho "Master node is ready!"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_pytorch_implies_svc() -> None:
    """Upstream `mutate_job.go` patchDefaultPlugins: pytorch adds svc (not ssh)."""
    plan = FakeCluster(vcjob(task("master"), task("worker"), plugins={"pytorch": []})).step()

    assert plan.status is not None
    assert plan.status["controlledResources"] == {"plugin-pytorch": "pytorch", "plugin-svc": "svc"}


# ---------------------------------------------------------------------------------------------
# tensorflow


def test_tensorflow_tf_config_as_upstream_marshals_it() -> None:
    """Upstream `tensorflow/tensorflow.go`: cluster keys ps, worker, chief, evaluator (omitempty),
    `<pod>.<job>:2222`, task type and index; compact JSON on containers only."""
    job = context(task("ps"), task("worker", 2), task("chief"))
    pod = new_pod("job-worker-1")
    plugin("tensorflow").on_pod_create(pod, job, "worker", 1)

    value = env_of(pod["spec"]["containers"][0])["TF_CONFIG"]
    assert value == (
        '{"cluster":{"ps":["job-ps-0.job:2222"],"worker":["job-worker-0.job:2222","job-worker-1.job:2222"],'
        '"chief":["job-chief-0.job:2222"]},"task":{"type":"worker","index":1}}'
    )
    assert "env" not in pod["spec"]["initContainers"][0]


def test_tensorflow_flags_map_task_names_to_roles() -> None:
    """Upstream `tensorflow/tensorflow.go` flags `--ps`, `--worker`, `--chief`, `--evaluator`, `--port`;
    a task naming no role keeps its own name as type."""
    job = context(task("param", 1), task("trainer", 1), task("extra"))
    tf = plugin("tensorflow", "--ps=param", "--worker=trainer", "--port=5000")
    pod, other = new_pod("job-param-0"), new_pod("job-extra-0")
    tf.on_pod_create(pod, job, "param", 0)
    tf.on_pod_create(other, job, "extra", 0)

    config = json.loads(env_of(pod["spec"]["containers"][0])["TF_CONFIG"])
    assert config == {
        "cluster": {"ps": ["job-param-0.job:5000"], "worker": ["job-trainer-0.job:5000"]},
        "task": {"type": "ps", "index": 0},
    }
    assert json.loads(env_of(other["spec"]["containers"][0])["TF_CONFIG"])["task"]["type"] == "extra"


def test_tensorflow_single_replica_job_gets_no_tf_config() -> None:
    """Upstream `tensorflow/tensorflow.go`: one task with one replica is not distributed."""
    pod = new_pod("job-worker-0")
    plugin("tensorflow").on_pod_create(pod, context(task("worker")), "worker", 0)

    assert pod == new_pod("job-worker-0")


# ---------------------------------------------------------------------------------------------
# hcclrank and the registry


def test_hcclrank_annotation_from_rank_or_task_index() -> None:
    """Upstream `hcclrank/hcclrank.go`: `hccl/rankIndex` = RANK env if set, else master index, worker
    `master replicas + index`; other tasks get none; the plugin records nothing."""
    job = context(task("master", 2), task("worker", 3), task("other"))
    hccl = plugin("hcclrank")
    ranked = new_pod()
    ranked["spec"]["containers"][1]["env"] = [{"name": "RANK", "value": "7"}]
    pods = {"worker": new_pod("job-worker-2"), "other": new_pod("job-other-0")}
    hccl.on_pod_create(ranked, job, "master", 1)
    hccl.on_pod_create(pods["worker"], job, "worker", 2)
    hccl.on_pod_create(pods["other"], job, "other", 0)

    assert ranked["metadata"]["annotations"] == {"hccl/rankIndex": "7"}
    assert pods["worker"]["metadata"]["annotations"] == {"hccl/rankIndex": "4"}
    assert pods["other"]["metadata"]["annotations"] == {}
    assert hccl.records_itself is False


def test_hcclrank_reads_the_rank_pytorch_wrote_on_the_same_pod() -> None:
    """Upstream runs plugins in Go's map order; here hcclrank runs after pytorch, so it reads RANK."""
    plan = FakeCluster(
        vcjob(task("master"), task("worker", 2), plugins={"pytorch": [], "hcclrank": []})
    ).step()
    pods = created(plan, "Pod")

    assert pods["job-worker-1"]["metadata"]["annotations"]["hccl/rankIndex"] == "2"
    assert plan.status is not None and "plugin-hcclrank" not in plan.status["controlledResources"]


def test_framework_plugins_are_recorded_and_dropped_by_a_whole_job_kill() -> None:
    """Upstream OnJobAdd records `plugin-<name>`; OnJobDelete removes it (AbortJob here)."""
    job = vcjob(
        task("master"),
        task("worker"),
        plugins={"tensorflow": []},
        policies=[{"event": "PodFailed", "action": "AbortJob"}],
    )
    cluster = FakeCluster(job)
    cluster.settle()
    cluster.run_all()
    cluster.step(later(1))
    assert cluster.job["status"]["controlledResources"] == {
        "plugin-svc": "svc",
        "plugin-tensorflow": "tensorflow",
    }
    cluster.set_phase("job-worker-0", "Failed", exit_code=1)
    cluster.step(later(2))

    assert "controlledResources" not in cluster.job["status"]  # Go omitempty


def test_kind_plans_stay_deterministic_with_every_framework_plugin() -> None:
    job = vcjob(task("master"), task("worker", 2), plugins={"mpi": [], "pytorch": [], "tensorflow": []})

    assert KIND.plan(FakeCluster(job).observe()) == KIND.plan(FakeCluster(job).observe())
