"""PaddleJob: upstream v1.9.4's own expectations (rewritten from `paddlepaddle_controller_test.go` and
`webhooks/paddlepaddle/paddlepaddle_webhook_test.go`), then both env modes, roles and success rules."""

from __future__ import annotations

from typing import Any

from kubeflow_helpers import (
    FakeCluster,
    check_a_suspended_job_creates_nothing,
    check_suspend_deletes_and_resume_restarts,
    created,
    deleted,
    env_entries,
    kubeflow_job,
    later,
    masters,
    running,
)

from jobwarden.core.plan import Event
from jobwarden.kinds.kubeflow import paddlejob

PADDLE = paddlejob.KIND
POD_IP = {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def paddle_job(
    masters_: int = 1, workers: int = 2, port: int = 8080, name: str = "test-job"
) -> dict[str, Any]:
    """Upstream's controller-test job: `paddle` containers declaring port `master` 8080 (TCP)."""

    def replica(count: int) -> dict[str, Any]:
        ports = [{"name": "master", "containerPort": port, "protocol": "TCP"}]
        container = {"name": "paddle", "image": "test-image", "ports": ports}
        return {"replicas": count, "template": {"spec": {"containers": [container]}}}

    specs = (
        {"Master": replica(masters_), "Worker": replica(workers)}
        if masters_
        else {"Worker": replica(workers)}
    )
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PaddleJob",
        "metadata": {"name": name, "namespace": "ns", "uid": "uid-1"},
        "spec": {"paddleReplicaSpecs": specs},
    }


# --- paddlepaddle_controller_test.go -------------------------------------------------------------


def test_upstream_should_get_the_corresponding_resources() -> None:
    cluster = FakeCluster(PADDLE, paddle_job())
    plan = cluster.step()
    pod = created(plan, "Pod")["test-job-master-0"]
    service = created(plan, "Service")["test-job-master-0"]
    container = pod["spec"]["containers"][0]
    assert {"name": "master", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert ("PADDLE_MASTER", "$(POD_IP_DUMMY):8080") in env_entries(container)
    assert service["spec"]["ports"][0]["port"] == 8080
    owner = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PaddleJob",
        "name": "test-job",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert owner in pod["metadata"]["ownerReferences"]
    assert owner in service["metadata"]["ownerReferences"]
    cluster.set_phase("test-job-master-0", "Succeeded")
    cluster.step(later(5))
    assert cluster.status["replicaStatuses"]["Master"]["succeeded"] == 1
    succeeded = cluster.condition("Succeeded")
    assert succeeded is not None and succeeded["status"] == "True"


def test_upstream_shouldnt_create_resources_if_suspended() -> None:
    check_a_suspended_job_creates_nothing(PADDLE, paddle_job(workers=1))


def test_upstream_suspend_deletes_resources_and_resume_restarts_the_job() -> None:
    check_suspend_deletes_and_resume_restarts(
        PADDLE, paddle_job(workers=1), {"test-job-master-0", "test-job-worker-0"}
    )


# --- webhooks/paddlepaddle/paddlepaddle_webhook_test.go ------------------------------------------


def upstream_webhook_job(name: str = "test") -> dict[str, Any]:
    """validPaddleReplicaSpecs: Worker (2) with a `paddle` container and its `master` port 37777."""
    job = paddle_job(masters_=0, workers=2, port=37777, name=name)
    job["spec"]["paddleReplicaSpecs"]["Worker"]["restartPolicy"] = "OnFailure"
    return job


def worker_containers(containers: list[dict[str, Any]]) -> dict[str, Any]:
    job = upstream_webhook_job()
    job["spec"]["paddleReplicaSpecs"] = {
        "Worker": {"replicas": 1, "template": {"spec": {"containers": containers}}}
    }
    return job


def errors(job: dict[str, Any]) -> list[str]:
    return [str(e) for e in PADDLE.validate(job)]


def test_upstream_webhook_valid_job() -> None:
    job = upstream_webhook_job()
    job["spec"]["runPolicy"] = {"managedBy": "kubeflow.org/training-operator"}
    assert errors(job) == []


def test_upstream_webhook_name_must_be_dns_1035() -> None:
    assert [e.path for e in PADDLE.validate(upstream_webhook_job("__test"))] == ["metadata.name"]


def test_upstream_webhook_no_containers() -> None:
    assert [e.path for e in PADDLE.validate(worker_containers([]))] == [
        "spec.paddleReplicaSpecs.Worker.template.spec.containers"
    ]


def test_upstream_webhook_image_is_empty() -> None:
    assert [e.path for e in PADDLE.validate(worker_containers([{"name": "paddle", "image": ""}]))] == [
        "spec.paddleReplicaSpecs.Worker.template.spec.containers[0].image"
    ]


def test_upstream_webhook_default_container_name_not_found() -> None:
    found = errors(worker_containers([{"name": "", "image": "gcr.io/kubeflow-ci/paddle:1"}]))
    assert found[-1] == (
        "spec.paddleReplicaSpecs.Worker.template.spec.containers: Required value: "
        "must have at least one container with name paddle"
    )


def test_upstream_webhook_replica_specs_nil() -> None:
    job = upstream_webhook_job()
    del job["spec"]["paddleReplicaSpecs"]
    assert [e.path for e in PADDLE.validate(job)] == ["spec.paddleReplicaSpecs"]


def test_upstream_webhook_unsupported_managed_by() -> None:
    job = upstream_webhook_job()
    job["spec"]["runPolicy"] = {"managedBy": "other-job-controller"}
    assert [e.path for e in PADDLE.validate(job)] == ["spec.runPolicy.managedBy"]


def test_several_masters_are_allowed_as_upstream() -> None:
    """Masters are the parameter servers: upstream sets no replica limit, nor does jobwarden."""
    assert PADDLE.validate(paddle_job(masters_=2)) == []


# --- env (envvar.go setPodEnv), roles, success ---------------------------------------------------


def test_collective_mode_env_in_upstreams_order() -> None:
    pods = created(FakeCluster(PADDLE, paddle_job(masters_=0, workers=3)).step(), "Pod")
    common = [("PYTHONUNBUFFERED", "1"), ("PADDLE_JOB_ID", "test-job"), ("PADDLE_NNODES", "3")]
    first = pods["test-job-worker-0"]["spec"]["containers"][0]
    assert env_entries(first) == [
        *common,
        ("POD_IP_DUMMY", POD_IP),
        ("PADDLE_MASTER", "$(POD_IP_DUMMY):8080"),
    ]
    other = pods["test-job-worker-2"]["spec"]["containers"][0]
    assert env_entries(other) == [*common, ("PADDLE_MASTER", "test-job-worker-0:8080")]


def test_parameter_server_mode_env_uses_the_masters_port() -> None:
    job = paddle_job(masters_=2, workers=2, port=8080)
    worker = job["spec"]["paddleReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    worker["ports"] = [{"name": "master", "containerPort": 9000}]
    worker_env = [("PADDLE_MASTER", "test-job-master-0:8080"), ("PADDLE_TRAINER_NUM", "1")]
    pods = created(FakeCluster(PADDLE, job).step(), "Pod")
    common = [("PYTHONUNBUFFERED", "1"), ("PADDLE_JOB_ID", "test-job"), ("PADDLE_NNODES", "4")]
    assert env_entries(pods["test-job-master-0"]["spec"]["containers"][0]) == [
        *common,
        ("POD_IP_DUMMY", POD_IP),
        ("PADDLE_MASTER", "$(POD_IP_DUMMY):8080"),
        ("PADDLE_SERVER_NUM", "1"),
    ]
    assert env_entries(pods["test-job-master-1"]["spec"]["containers"][0]) == [
        *common,
        ("PADDLE_MASTER", "test-job-master-0:8080"),
        ("PADDLE_SERVER_NUM", "1"),
    ]
    assert env_entries(pods["test-job-worker-0"]["spec"]["containers"][0]) == [*common, *worker_env]


def test_every_pod_gets_its_own_pod_ip_reference() -> None:
    pods = created(FakeCluster(PADDLE, paddle_job(masters_=0, workers=1)).step(), "Pod")
    env = pods["test-job-worker-0"]["spec"]["containers"][0]["env"]
    assert env[3]["valueFrom"] is not paddlejob.POD_IP["valueFrom"]


def test_defaults_on_failure_and_the_master_port() -> None:
    job = kubeflow_job(PADDLE, {"Worker": 1})
    pod = created(FakeCluster(PADDLE, job).step(), "Pod")["job-worker-0"]
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    assert pod["spec"]["containers"][0]["ports"] == [{"name": "master", "containerPort": 36543}]


def test_master_pods_carry_the_master_role_else_worker_zero() -> None:
    assert masters(FakeCluster(PADDLE, paddle_job(masters_=2)).step()) == {
        "test-job-master-0",
        "test-job-master-1",
    }
    assert masters(FakeCluster(PADDLE, paddle_job(masters_=0)).step()) == {"test-job-worker-0"}


def test_without_a_master_every_worker_must_succeed() -> None:
    cluster = running(PADDLE, paddle_job(masters_=0, workers=2))
    cluster.set_phase("test-job-worker-0", "Succeeded")
    cluster.step(later(10))
    assert cluster.condition("Succeeded") is None
    cluster.set_phase("test-job-worker-1", "Succeeded")
    plan = cluster.step(later(15))
    assert (
        Event("Normal", "PaddleJobSucceeded", "PaddleJob test-job is successfully completed.") in plan.events
    )


def test_a_failed_pod_under_on_failure_is_recreated() -> None:
    cluster = running(PADDLE, paddle_job(masters_=0, workers=2))
    cluster.set_phase("test-job-worker-1", "Failed", exit_code=1)
    plan = cluster.step(later(10))
    assert deleted(plan, "Pod") == {"test-job-worker-1"}
    restarting = cluster.condition("Restarting")
    assert restarting is not None
    assert restarting["message"] == "PaddleJob test-job is restarting because 1 Worker replica(s) failed."
