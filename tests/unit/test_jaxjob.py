"""JAXJob: upstream v1.9.4's own expectations (rewritten from `jax/envvar_test.go`,
`jaxjob_controller_test.go` and `webhooks/jax/jaxjob_webhook_test.go`), then roles and success."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubeflow_helpers import (
    FakeCluster,
    check_a_suspended_job_creates_nothing,
    check_suspend_deletes_and_resume_restarts,
    created,
    env_entries,
    later,
    masters,
    running,
)

from jobwarden.core.plan import Event
from jobwarden.kinds.kubeflow import jaxjob

JAX = jaxjob.KIND


def jax_job(
    workers: int = 1, name: str = "test-jaxjob", ports: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """envvar_test.go's validJAXJob: one Worker, a `jax` container with `jaxjob-port` 6666."""
    container = {
        "name": "jax",
        "image": "docker.io/kubeflow/jaxjob-dist-spmd-mnist:latest",
        "ports": [{"name": "jaxjob-port", "containerPort": 6666}] if ports is None else ports,
        "imagePullPolicy": "Always",
        "command": ["python", "train.py"],
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "JAXJob",
        "metadata": {"name": name, "namespace": "ns", "uid": "uid-1"},
        "spec": {
            "jaxReplicaSpecs": {
                "Worker": {"replicas": workers, "template": {"spec": {"containers": [container]}}}
            }
        },
    }


# --- jax/envvar_test.go TestSetPodEnv -----------------------------------------------------------


def test_upstream_successful_environment_variable_setup() -> None:
    pod = created(FakeCluster(JAX, jax_job()).step(), "Pod")["test-jaxjob-worker-0"]
    assert env_entries(pod["spec"]["containers"][0]) == [
        ("PYTHONUNBUFFERED", "1"),
        ("COORDINATOR_PORT", "6666"),
        ("COORDINATOR_ADDRESS", "test-jaxjob-worker-0"),
        ("NUM_PROCESSES", "1"),
        ("PROCESS_ID", "0"),
    ]


def test_upstream_invalid_index_for_process_id_cannot_happen() -> None:
    """Upstream's case feeds the index "invalid" and expects errorFailedToRecognizeRank. Here the index
    is the pod slot's integer, never parsed from text: every Worker gets its own number."""
    pods = created(FakeCluster(JAX, jax_job(workers=3)).step(), "Pod")
    ids = [
        dict(env_entries(pods[f"test-jaxjob-worker-{i}"]["spec"]["containers"][0]))["PROCESS_ID"]
        for i in range(3)
    ]
    assert ids == ["0", "1", "2"]


def test_upstream_missing_container_port_gets_the_default_port() -> None:
    """Upstream's case calls setPodEnv on a job whose `jax` container has only `wrong-port` and expects
    errorDefaulContainerPortNotExposed. Its controller defaults the job first, which adds `jaxjob-port`
    6666, so a real job never meets that error; jobwarden always reads the defaulted view."""
    job = jax_job(ports=[{"name": "wrong-port", "containerPort": 0}])
    pod = created(FakeCluster(JAX, job).step(), "Pod")["test-jaxjob-worker-0"]
    container = pod["spec"]["containers"][0]
    assert container["ports"] == [
        {"name": "wrong-port", "containerPort": 0},
        {"name": "jaxjob-port", "containerPort": 6666},
    ]
    assert dict(env_entries(container))["COORDINATOR_PORT"] == "6666"


# --- jaxjob_controller_test.go -------------------------------------------------------------------


def test_upstream_shouldnt_create_resources_if_suspended() -> None:
    check_a_suspended_job_creates_nothing(JAX, jax_job(workers=2, name="test-job"))


def test_upstream_suspend_deletes_resources_and_resume_restarts_the_job() -> None:
    check_suspend_deletes_and_resume_restarts(JAX, jax_job(workers=1, name="test-job"), {"test-job-worker-0"})


# --- webhooks/jax/jaxjob_webhook_test.go TestValidateV1JAXJob ------------------------------------


def with_containers(containers: list[dict[str, Any]]) -> dict[str, Any]:
    job = jax_job(name="test")
    job["spec"]["jaxReplicaSpecs"]["Worker"]["template"]["spec"]["containers"] = containers
    return job


@pytest.mark.parametrize(
    ("case", "job", "paths"),
    [
        ("valid JAXJob", jax_job(name="test"), []),
        ("jaxJob name does not meet DNS1035", jax_job(name="0-test"), ["metadata.name"]),
        ("no containers", with_containers([]), ["spec.jaxReplicaSpecs.Worker.template.spec.containers"]),
        (
            "image is empty",
            with_containers([{"name": "jax", "image": ""}]),
            ["spec.jaxReplicaSpecs.Worker.template.spec.containers[0].image"],
        ),
        (
            "jaxJob default container name doesn't present",
            with_containers([{"name": "", "image": "gcr.io/kubeflow-ci/jaxjob:1"}]),
            None,
        ),
        ("replicaSpec is nil", {**jax_job(name="test"), "spec": {}}, ["spec.jaxReplicaSpecs"]),
    ],
)
def test_upstream_webhook_cases(case: str, job: dict[str, Any], paths: list[str] | None) -> None:
    found = JAX.validate(job)
    if paths is None:  # the container's empty name has its own error before the one upstream names
        assert str(found[-1]) == (
            "spec.jaxReplicaSpecs.Worker.template.spec.containers: Required value: "
            "must have at least one container with name jax"
        ), case
    else:
        assert [e.path for e in found] == paths, case


def test_only_workers_exist() -> None:
    job = jax_job()
    job["spec"]["jaxReplicaSpecs"]["Master"] = job["spec"]["jaxReplicaSpecs"]["Worker"]
    assert [str(e) for e in JAX.validate(job)] == [
        'spec.jaxReplicaSpecs.Master: Unsupported value: "Master": supported values: "Worker"'
    ]


def test_the_family_update_contract_applies() -> None:
    """Upstream's JAX webhook compares nothing on update; jobwarden's contract is the family's."""
    old = jax_job(workers=2)
    new = copy.deepcopy(old)
    new["spec"]["jaxReplicaSpecs"]["Worker"]["replicas"] = 3
    assert [e.path for e in JAX.check_update(old, new)] == ["spec.jaxReplicaSpecs.Worker.replicas"]
    new = copy.deepcopy(old)
    new["spec"]["runPolicy"] = {"ttlSecondsAfterFinished": 60}
    assert JAX.check_update(old, new) == []


# --- roles and success ---------------------------------------------------------------------------


def test_env_for_several_workers_and_the_master_role_on_worker_zero() -> None:
    plan = FakeCluster(JAX, jax_job(workers=3)).step()
    assert masters(plan) == {"test-jaxjob-worker-0"}
    env = dict(env_entries(created(plan, "Pod")["test-jaxjob-worker-2"]["spec"]["containers"][0]))
    assert (env["COORDINATOR_ADDRESS"], env["NUM_PROCESSES"], env["PROCESS_ID"]) == (
        "test-jaxjob-worker-0",
        "3",
        "2",
    )
    assert created(plan, "Pod")["test-jaxjob-worker-2"]["spec"]["restartPolicy"] == "Never"


def test_every_worker_must_succeed() -> None:
    cluster = running(JAX, jax_job(workers=2))
    cluster.set_phase("test-jaxjob-worker-0", "Succeeded")
    cluster.step(later(10))
    assert cluster.condition("Succeeded") is None
    cluster.set_phase("test-jaxjob-worker-1", "Succeeded")
    plan = cluster.step(later(15))
    assert Event("Normal", "JAXJobSucceeded", "JAXJob test-jaxjob is successfully completed.") in plan.events
