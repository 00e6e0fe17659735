"""TFJob specifics: the seed's children, TF_CONFIG, master role, success rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubeflow_helpers import FakeCluster, created, env_of, fresh, kubeflow_job, later, masters, running, seed

from jobwarden.core.plan import Settings
from jobwarden.kinds.kubeflow import tfjob
from jobwarden.kinds.kubeflow.kind import JOB_ROLE_LABEL

TF = tfjob.KIND


def tf_config(pod: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(env_of(pod["spec"]["containers"][0])["TF_CONFIG"])
    return parsed


def test_seed_job_gets_a_pod_and_a_service_per_replica_with_canonical_status_keys() -> None:
    cluster = FakeCluster(TF, fresh(seed("tfjob-put")))  # spec key `Ps`
    plan = cluster.step()
    assert (
        set(created(plan, "Pod"))
        == set(created(plan, "Service"))
        == {"tfjob-test-ps-0", "tfjob-test-worker-0"}
    )
    ps = created(plan, "Pod")["tfjob-test-ps-0"]
    assert ps["metadata"]["namespace"] == "kube-test"
    assert ps["metadata"]["labels"]["training.kubeflow.org/replica-type"] == "ps"
    assert ps["spec"]["restartPolicy"] == "OnFailure"  # from the template, as the seed sets it
    assert ps["spec"]["imagePullSecrets"] == [{"name": "imagepull-secret"}]
    assert cluster.status["replicaStatuses"] == {"PS": {}, "Worker": {}}


def test_seed_tf_config_is_the_upstream_normal_form() -> None:
    pods = created(FakeCluster(TF, fresh(seed("tfjob-put"))).step(), "Pod")
    worker_env = env_of(pods["tfjob-test-worker-0"]["spec"]["containers"][0])
    assert worker_env == {
        "TF_CONFIG": '{"cluster":{"ps":["tfjob-test-ps-0.kube-test.svc:2222"],'
        '"worker":["tfjob-test-worker-0.kube-test.svc:2222"]},'
        '"task":{"type":"worker","index":0},"environment":"cloud"}'
    }
    assert tf_config(pods["tfjob-test-ps-0"])["task"] == {"type": "ps", "index": 0}


def test_the_seed_as_stored_with_its_pods_running_needs_nothing() -> None:
    cluster = running(TF, fresh(seed("tfjob-put")))
    cluster.job = seed("tfjob-put")  # status: Created, Running, PS/Worker active 1
    plan = cluster.step(later(3600))
    assert plan.is_noop
    assert plan.wake_at is None  # no deadline; ttl counts only once finished


def test_cluster_covers_every_type_and_index_with_each_types_port_and_the_cluster_domain() -> None:
    job = kubeflow_job(TF, {"Chief": 1, "PS": 1, "Worker": 2, "Evaluator": 1})
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    worker["ports"] = [{"name": "tfjob-port", "containerPort": 3000}]
    pods = created(FakeCluster(TF, job, Settings(cluster_domain="cluster.local")).step(), "Pod")
    config = tf_config(pods["job-evaluator-0"])
    assert config == {
        "cluster": {
            "chief": ["job-chief-0.ns.svc.cluster.local:2222"],
            "evaluator": ["job-evaluator-0.ns.svc.cluster.local:2222"],
            "ps": ["job-ps-0.ns.svc.cluster.local:2222"],
            "worker": ["job-worker-0.ns.svc.cluster.local:3000", "job-worker-1.ns.svc.cluster.local:3000"],
        },
        "task": {"type": "evaluator", "index": 0},
        "environment": "cloud",
    }
    assert list(config["cluster"]) == ["chief", "evaluator", "ps", "worker"]  # sorted, as Go marshals maps
    assert tf_config(pods["job-worker-1"])["task"] == {"type": "worker", "index": 1}


def test_a_single_process_job_gets_no_tf_config() -> None:
    pod = created(FakeCluster(TF, kubeflow_job(TF, {"Worker": 1})).step(), "Pod")["job-worker-0"]
    assert "env" not in pod["spec"]["containers"][0]


def test_tf_config_goes_only_into_the_tensorflow_container() -> None:
    job = kubeflow_job(TF, {"Worker": 2})
    containers = job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    containers.insert(0, {"name": "log-shipper", "image": "fluent"})
    sidecar, framework = created(FakeCluster(TF, job).step(), "Pod")["job-worker-0"]["spec"]["containers"]
    assert "env" not in sidecar
    assert set(env_of(framework)) == {"TF_CONFIG"}


@pytest.mark.parametrize(
    ("replicas", "expected"),
    [
        ({"Chief": 1, "PS": 1, "Worker": 2}, {"job-chief-0"}),
        ({"Master": 1, "Worker": 2}, {"job-master-0"}),
        ({"PS": 1, "Worker": 2}, {"job-worker-0"}),
    ],
)
def test_master_role_is_the_chief_or_master_else_worker_zero(
    replicas: dict[str, int], expected: set[str]
) -> None:
    plan = FakeCluster(TF, kubeflow_job(TF, replicas)).step()
    assert masters(plan) == expected
    assert all(
        JOB_ROLE_LABEL not in service["metadata"]["labels"] for service in created(plan, "Service").values()
    )


def test_with_a_chief_the_chief_decides() -> None:
    cluster = running(TF, kubeflow_job(TF, {"Chief": 1, "Worker": 2}))
    cluster.set_phase("job-worker-0", "Succeeded", exit_code=0)
    cluster.step(later(10))
    assert cluster.condition("Succeeded") is None
    cluster.set_phase("job-chief-0", "Succeeded", exit_code=0)
    cluster.step(later(20))
    succeeded = cluster.condition("Succeeded")
    assert succeeded is not None
    assert (succeeded["reason"], succeeded["message"]) == (
        "TFJobSucceeded",
        "TFJob job is successfully completed.",
    )


def test_running_follows_the_chief() -> None:
    cluster = FakeCluster(TF, kubeflow_job(TF, {"Chief": 1, "Worker": 1}))
    cluster.step()
    cluster.set_phase("job-worker-0", "Running")
    cluster.step(later(5))
    assert cluster.condition("Running") is None
    cluster.set_phase("job-chief-0", "Running")
    cluster.step(later(6))
    assert cluster.condition("Running") is not None


def test_without_a_chief_worker_zero_decides_unless_all_workers_must_finish() -> None:
    """training-operator release-1.9 `pkg/controller.v1/tensorflow/tfjob_controller.go` UpdateJobStatus:
    without Chief/Master, Succeeded when worker 0 completed, or under `successPolicy: AllWorkers` only
    when every worker succeeded."""
    default = running(TF, kubeflow_job(TF, {"PS": 1, "Worker": 2}))
    default.set_phase("job-worker-0", "Succeeded", exit_code=0)
    default.step(later(10))
    assert default.condition("Succeeded") is not None

    all_workers = running(TF, kubeflow_job(TF, {"PS": 1, "Worker": 2}, successPolicy="AllWorkers"))
    all_workers.set_phase("job-worker-0", "Succeeded", exit_code=0)
    all_workers.step(later(10))
    assert all_workers.condition("Succeeded") is None
    all_workers.set_phase("job-worker-1", "Succeeded", exit_code=0)
    all_workers.step(later(20))
    assert all_workers.condition("Succeeded") is not None
    assert all_workers.status["replicaStatuses"] == {"PS": {"succeeded": 1}, "Worker": {"succeeded": 2}}


def test_a_failed_evaluator_fails_the_job() -> None:
    cluster = running(TF, kubeflow_job(TF, {"Chief": 1, "Evaluator": 1}))
    cluster.set_phase("job-evaluator-0", "Failed", exit_code=2)
    cluster.step(later(10))
    failed = cluster.condition("Failed")
    assert failed is not None
    assert failed["message"] == "TFJob job has failed because 1 Evaluator replica(s) failed."


def test_dynamic_worker_tf_config_is_sparse() -> None:
    """training-operator release-1.9 `pkg/controller.v1/tensorflow/tensorflow.go` (genTFConfigJSONStr
    with EnableDynamicWorker, convertClusterSpecToSparseClusterSpec): a Worker sees itself keyed by
    its index and every PS, a PS only itself, other types an empty cluster; keys `worker` then `ps`,
    no `environment`."""
    job = kubeflow_job(TF, {"Chief": 1, "PS": 2, "Worker": 3}, enableDynamicWorker=True)
    pods = created(FakeCluster(TF, job).step(), "Pod")
    assert env_of(pods["job-worker-2"]["spec"]["containers"][0])["TF_CONFIG"] == (
        '{"cluster":{"worker":{"2":"job-worker-2.ns.svc:2222"},'
        '"ps":["job-ps-0.ns.svc:2222","job-ps-1.ns.svc:2222"]},'
        '"task":{"type":"worker","index":2}}'
    )
    assert tf_config(pods["job-ps-1"]) == {
        "cluster": {"worker": {}, "ps": ["job-ps-1.ns.svc:2222"]},
        "task": {"type": "ps", "index": 1},
    }
    assert tf_config(pods["job-chief-0"])["cluster"] == {"worker": {}, "ps": []}


def test_a_dynamic_worker_without_ps_gets_an_empty_ps_list_not_null() -> None:
    """Upstream marshals a nil slice (`"ps":null`), which TensorFlow's ClusterSpec refuses."""
    pods = created(FakeCluster(TF, kubeflow_job(TF, {"Worker": 2}, enableDynamicWorker=True)).step(), "Pod")
    assert tf_config(pods["job-worker-1"])["cluster"] == {
        "worker": {"1": "job-worker-1.ns.svc:2222"},
        "ps": [],
    }


def test_enable_dynamic_worker_false_keeps_the_normal_form() -> None:
    pods = created(FakeCluster(TF, kubeflow_job(TF, {"Worker": 2}, enableDynamicWorker=False)).step(), "Pod")
    assert tf_config(pods["job-worker-1"])["environment"] == "cloud"
