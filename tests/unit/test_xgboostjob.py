"""XGBoostJob: upstream v1.9.4's own expectations (rewritten from `xgboost_defaults_test.go`,
`xgboostjob_controller_test.go` and `webhooks/xgboost/xgboostjob_webhook_test.go`), then the env,
success rule and the places where jobwarden differs on purpose (docs/behaviour.md)."""

from __future__ import annotations

from typing import Any

import pytest
from kubeflow_helpers import (
    NOW,
    FakeCluster,
    check_a_suspended_job_creates_nothing,
    check_suspend_deletes_and_resume_restarts,
    created,
    deleted,
    env_entries,
    env_of,
    kubeflow_job,
    later,
    masters,
    running,
    suspended,
)

from jobwarden.core.plan import Event
from jobwarden.kinds.kubeflow import xgboostjob

XGB = xgboostjob.KIND
IMAGE = "docker.io/kubeflow/xgboost-dist-iris:latest"


def xgb_job(name: str = "test-job", workers: int = 2, port: int | None = 9999) -> dict[str, Any]:
    """Upstream's controller-test job: a Master and Workers whose `xgboost` container declares the port."""

    def replica(count: int) -> dict[str, Any]:
        container: dict[str, Any] = {"name": "xgboost", "image": IMAGE}
        if port is not None:
            container["ports"] = [{"name": "xgboostjob-port", "containerPort": port, "protocol": "TCP"}]
        return {"replicas": count, "template": {"spec": {"containers": [container]}}}

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "XGBoostJob",
        "metadata": {"name": name, "namespace": "ns", "uid": "uid-1"},
        "spec": {"xgbReplicaSpecs": {"Master": replica(1), "Worker": replica(workers)}},
    }


# --- xgboost_defaults_test.go TestSetDefaults_XGBoostJob (defaults as the pods show them) -----------


def worker_only(**replica: Any) -> dict[str, Any]:
    job = kubeflow_job(XGB, {"Worker": 1})
    spec = job["spec"]["xgbReplicaSpecs"]["Worker"]
    spec.pop("replicas")
    spec.update(replica)
    return job


@pytest.mark.parametrize(
    ("case", "replica", "pods", "restart_policy", "ports"),
    [
        ("set spec with minimum setting", {}, 1, "Never", [("xgboostjob-port", 9999)]),
        (
            "Set spec with restart policy",
            {"restartPolicy": "OnFailure"},
            1,
            "OnFailure",
            [("xgboostjob-port", 9999)],
        ),
        ("Set spec with replicas", {"replicas": 3}, 3, "Never", [("xgboostjob-port", 9999)]),
        (
            "Set spec with default node port name and port",
            {"port": 9999},
            1,
            "Never",
            [("xgboostjob-port", 9999)],
        ),
        ("Set spec with node port", {"port": 9999}, 1, "Never", [("xgboostjob-port", 9999)]),
        ("set spec with cleanpod policy", {}, 1, "Never", [("xgboostjob-port", 9999)]),
    ],
)
def test_upstream_defaults(
    case: str, replica: dict[str, Any], pods: int, restart_policy: str, ports: list[tuple[str, int]]
) -> None:
    port = replica.pop("port", None)
    job = worker_only(**replica)
    if port is not None:
        container = job["spec"]["xgbReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
        container["ports"] = [{"name": "xgboostjob-port", "containerPort": port}]
    made = created(FakeCluster(XGB, job).step(), "Pod")
    assert sorted(made) == [f"job-worker-{i}" for i in range(pods)], case
    pod = made["job-worker-0"]
    assert pod["spec"]["restartPolicy"] == restart_policy
    assert [(p["name"], p["containerPort"]) for p in pod["spec"]["containers"][0]["ports"]] == ports


def test_upstream_default_port_is_added_beside_a_custom_named_one() -> None:
    """expectedXGBoostJob's `portName != XGBoostJobDefaultPortName` branch: the default is appended."""
    job = worker_only()
    container = job["spec"]["xgbReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    container["ports"] = [{"name": "metrics", "containerPort": 8000}]
    pod = created(FakeCluster(XGB, job).step(), "Pod")["job-worker-0"]
    assert pod["spec"]["containers"][0]["ports"] == [
        {"name": "metrics", "containerPort": 8000},
        {"name": "xgboostjob-port", "containerPort": 9999},
    ]


def test_upstream_default_clean_pod_policy_is_none() -> None:
    cluster = running(XGB, xgb_job())
    cluster.set_phase("test-job-master-0", "Succeeded")
    plan = cluster.step(later(10))
    assert cluster.condition("Succeeded") is not None
    assert deleted(plan, "Pod") == deleted(plan, "Service") == set()


# --- xgboostjob_controller_test.go ---------------------------------------------------------------


def test_upstream_shouldnt_create_resources_if_suspended() -> None:
    check_a_suspended_job_creates_nothing(XGB, xgb_job())


def test_upstream_suspend_deletes_resources_and_resume_restarts_the_job() -> None:
    check_suspend_deletes_and_resume_restarts(
        XGB, xgb_job(workers=1), {"test-job-master-0", "test-job-worker-0"}
    )


def test_upstream_a_job_managed_by_an_external_controller_is_not_reconciled() -> None:
    job = xgb_job()
    job["spec"]["runPolicy"] = {"managedBy": "kueue.x-k8s.io/multikueue", "suspend": True}
    cluster = FakeCluster(XGB, job)
    assert cluster.step().is_noop
    assert cluster.status == {} and cluster.pods == {}
    cluster.job = suspended(cluster.job, False)
    assert cluster.step(later(5)).is_noop
    assert cluster.status == {} and cluster.pods == {}


# --- webhooks/xgboost/xgboostjob_webhook_test.go TestValidateXGBoostJob ---------------------------


def valid_upstream_job(name: str = "test") -> dict[str, Any]:
    """validXGBoostReplicaSpecs: Master (1, Never) and Worker (2, ExitCode), port 9991."""
    job = xgb_job(name, workers=2, port=9991)
    specs = job["spec"]["xgbReplicaSpecs"]
    specs["Master"]["restartPolicy"], specs["Worker"]["restartPolicy"] = "Never", "ExitCode"
    return job


def with_replicas(specs: dict[str, Any]) -> dict[str, Any]:
    job = valid_upstream_job()
    job["spec"]["xgbReplicaSpecs"] = specs
    return job


def master_with(containers: list[dict[str, Any]], replicas: int = 1) -> dict[str, Any]:
    return {"Master": {"replicas": replicas, "template": {"spec": {"containers": containers}}}}


def paths(job: dict[str, Any]) -> list[str]:
    return [e.path for e in XGB.validate(job)]


def test_upstream_webhook_valid_job() -> None:
    job = valid_upstream_job()
    job["spec"]["runPolicy"] = {"managedBy": "kubeflow.org/training-operator"}
    assert XGB.validate(job) == []


def test_upstream_webhook_name_must_be_dns_1035() -> None:
    job = valid_upstream_job("-test")
    assert paths(job) == ["metadata.name"]


def test_upstream_webhook_empty_containers() -> None:
    """Upstream reports the path twice (no containers, and so no `xgboost` container); once here."""
    assert paths(with_replicas(master_with([]))) == ["spec.xgbReplicaSpecs.Master.template.spec.containers"]


def test_upstream_webhook_image_is_empty() -> None:
    job = with_replicas(master_with([{"name": "xgboost", "image": ""}]))
    assert paths(job) == ["spec.xgbReplicaSpecs.Master.template.spec.containers[0].image"]


def test_upstream_webhook_default_container_name_not_present() -> None:
    job = with_replicas(master_with([{"name": "", "image": IMAGE}]))
    errors = [str(e) for e in XGB.validate(job)]
    assert errors[-1] == (
        "spec.xgbReplicaSpecs.Master.template.spec.containers: Required value: "
        "must have at least one container with name xgboost"
    )
    assert all(e.startswith("spec.xgbReplicaSpecs.Master.template.spec.containers") for e in errors)


def test_upstream_webhook_master_replicas_other_than_1() -> None:
    job = with_replicas(master_with([{"name": "xgboost", "image": IMAGE}], replicas=2))
    assert [str(e) for e in XGB.validate(job)] == [
        "spec.xgbReplicaSpecs.Master.replicas: Invalid value: 2: must be 1"
    ]


def test_upstream_webhook_master_must_exist() -> None:
    job = with_replicas({"Worker": master_with([{"name": "xgboost", "image": IMAGE}])["Master"]})
    assert [str(e) for e in XGB.validate(job)] == [
        "spec.xgbReplicaSpecs.Master: Required value: must be present"
    ]


def test_upstream_webhook_unsupported_managed_by() -> None:
    job = valid_upstream_job()
    job["spec"]["runPolicy"] = {"managedBy": "other-job-controller"}
    assert [str(e) for e in XGB.validate(job)] == [
        'spec.runPolicy.managedBy: Unsupported value: "other-job-controller": supported values: '
        '"kubeflow.org/training-operator", "kueue.x-k8s.io/multikueue"'
    ]


def test_a_master_without_replicas_is_the_default_one() -> None:
    """The family's rule (docs/behaviour.md): an unset `replicas` is 1 for every type, so a Master
    without it is the one Master; upstream's webhook refuses it because it validates before defaulting."""
    job = valid_upstream_job()
    job["spec"]["xgbReplicaSpecs"]["Master"].pop("replicas")
    assert XGB.validate(job) == []
    assert "test-master-0" in created(FakeCluster(XGB, job).step(), "Pod")


# --- env, roles, success -----------------------------------------------------------------------


def test_env_in_every_container_in_upstreams_order() -> None:
    job = xgb_job(workers=2, port=9991)
    job["spec"]["xgbReplicaSpecs"]["Worker"]["template"]["spec"]["containers"].append(
        {"name": "sidecar", "image": "busybox"}
    )
    pods = created(FakeCluster(XGB, job).step(), "Pod")
    common = [("MASTER_PORT", "9991"), ("MASTER_ADDR", "test-job-master-0"), ("WORLD_SIZE", "3")]
    workers = [("WORKER_PORT", "9991"), ("WORKER_ADDRS", "test-job-worker-0,test-job-worker-1")]
    master = pods["test-job-master-0"]["spec"]["containers"][0]
    assert env_entries(master) == [*common, ("RANK", "0"), ("PYTHONUNBUFFERED", "1"), *workers]
    for container in pods["test-job-worker-1"]["spec"]["containers"]:
        assert env_entries(container) == [*common, ("RANK", "2"), ("PYTHONUNBUFFERED", "1"), *workers]


def test_a_single_master_gets_no_worker_variables() -> None:
    job = xgb_job()
    del job["spec"]["xgbReplicaSpecs"]["Worker"]
    pod = created(FakeCluster(XGB, job).step(), "Pod")["test-job-master-0"]
    assert [name for name, _ in env_entries(pod["spec"]["containers"][0])] == [
        "MASTER_PORT",
        "MASTER_ADDR",
        "WORLD_SIZE",
        "RANK",
        "PYTHONUNBUFFERED",
    ]


def test_pods_and_headless_services_are_named_and_labelled_as_upstream() -> None:
    plan = FakeCluster(XGB, xgb_job()).step()
    names = {"test-job-master-0", "test-job-worker-0", "test-job-worker-1"}
    assert set(created(plan, "Pod")) == set(created(plan, "Service")) == names
    assert masters(plan) == {"test-job-master-0"}
    labels = created(plan, "Pod")["test-job-worker-1"]["metadata"]["labels"]
    assert {k: v for k, v in labels.items() if k.startswith("training.kubeflow.org/")} == {
        "training.kubeflow.org/operator-name": "xgboostjob-controller",
        "training.kubeflow.org/job-name": "test-job",
        "training.kubeflow.org/replica-type": "worker",
        "training.kubeflow.org/replica-index": "1",
    }
    service = created(plan, "Service")["test-job-master-0"]["spec"]
    assert service["clusterIP"] == "None"
    assert service["ports"] == [{"name": "xgboostjob-port", "port": 9999}]


def test_the_master_decides_success_whatever_the_workers_do() -> None:
    cluster = running(XGB, xgb_job())
    assert cluster.condition("Running") is not None
    cluster.set_phase("test-job-master-0", "Succeeded")
    plan = cluster.step(later(10))
    assert (
        Event("Normal", "XGBoostJobSucceeded", "XGBoostJob test-job is successfully completed.")
        in plan.events
    )
    assert cluster.status["replicaStatuses"] == {"Master": {"succeeded": 1}, "Worker": {"succeeded": 2}}


def test_a_worker_failing_under_never_fails_the_job() -> None:
    cluster = running(XGB, xgb_job())
    cluster.set_phase("test-job-worker-1", "Failed", exit_code=1)
    cluster.step(later(10))
    failed = cluster.condition("Failed")
    assert failed is not None
    assert failed["message"] == "XGBoostJob test-job has failed because 1 Worker replica(s) failed."


def test_the_port_comes_from_the_container_the_default_port_goes_to() -> None:
    """Upstream looks for the port only in a container named `xgboost`; a job stored without one
    (webhook off) stops reconciling there with "failed to found the port". Here the env names the
    port the defaulting put on the pod: the first container's."""
    job = xgb_job(port=None)
    for replica in job["spec"]["xgbReplicaSpecs"].values():
        replica["template"]["spec"]["containers"][0]["name"] = "trainer"
    pods = created(FakeCluster(XGB, job).step(), "Pod")
    container = pods["test-job-worker-0"]["spec"]["containers"][0]
    assert container["ports"] == [{"name": "xgboostjob-port", "containerPort": 9999}]
    assert env_of(container)["MASTER_PORT"] == env_of(container)["WORKER_PORT"] == "9999"


def test_started_at_first_reconcile() -> None:
    cluster = FakeCluster(XGB, xgb_job())
    cluster.step(NOW)
    assert cluster.status["startTime"] == "2024-05-01T12:00:00Z"
