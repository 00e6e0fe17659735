"""The shared Kubeflow decision core (`jobwarden.kinds.kubeflow`), exercised through TFJob and
PyTorchJob: children, restart policies, status machine, run policy, idempotence."""

from __future__ import annotations

import pytest
from kubeflow_helpers import (
    NOW,
    FakeCluster,
    created,
    deleted,
    env_of,
    fresh,
    in_phase,
    kubeflow_job,
    later,
    running,
    seed,
)

from jobwarden.core.plan import ChildRef, Event, Observed
from jobwarden.kinds.kubeflow import pytorchjob, tfjob
from jobwarden.kinds.kubeflow import validation as kubeflow_validation

TF = tfjob.KIND
TORCH = pytorchjob.KIND


def condition_types(cluster: FakeCluster) -> list[tuple[str, str]]:
    return [(c["type"], c["status"]) for c in cluster.status.get("conditions") or []]


# --- first pass and idempotence -----------------------------------------------------------------


def test_first_plan_creates_pods_and_services_and_marks_the_job_created() -> None:
    plan = FakeCluster(TF, fresh(seed("tfjob-put"))).step()
    assert [(m["kind"], m["metadata"]["name"]) for m in plan.create] == [
        ("Pod", "tfjob-test-ps-0"),
        ("Service", "tfjob-test-ps-0"),
        ("Pod", "tfjob-test-worker-0"),
        ("Service", "tfjob-test-worker-0"),
    ]
    assert plan.events == [Event("Normal", "TFJobCreated", "TFJob tfjob-test is created.")]
    assert plan.status == {
        "conditions": [
            {
                "type": "Created",
                "status": "True",
                "reason": "TFJobCreated",
                "message": "TFJob tfjob-test is created.",
                "lastUpdateTime": "2024-05-01T12:00:00Z",
                "lastTransitionTime": "2024-05-01T12:00:00Z",
            }
        ],
        "startTime": "2024-05-01T12:00:00Z",
        "replicaStatuses": {"PS": {}, "Worker": {}},
    }
    assert (plan.delete, plan.delete_job, plan.wake_at) == ([], False, None)


def test_the_same_observation_planned_twice_changes_nothing_the_second_time() -> None:
    job = fresh(seed("tfjob-put"))
    first = TF.plan(Observed(job, {}, NOW))
    assert first.status is not None
    again = TF.plan(Observed({**job, "status": first.status}, {}, later(30)))
    assert again.status is None
    assert again.events == []
    # Names are deterministic: re-sent creations are AlreadyExists for the shell, never duplicates.
    assert again.create == first.create


def test_a_running_job_replanned_is_a_noop() -> None:
    cluster = running(TF, fresh(seed("tfjob-put")))
    plan = cluster.step(later(60))
    assert plan.is_noop
    assert plan.status is None


# --- children --------------------------------------------------------------------------------


def test_pod_copies_the_template_and_operator_labels_win() -> None:
    job = kubeflow_job(TORCH, {"Master": 1})
    template = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
    template["metadata"] = {
        "labels": {"app": "mnist", "training.kubeflow.org/replica-type": "bogus"},
        "annotations": {"sidecar.istio.io/inject": "false"},
        "finalizers": ["example.com/keep"],
    }
    template["spec"]["nodeSelector"] = {"disk": "ssd"}
    pod = created(FakeCluster(TORCH, job).step(), "Pod")["job-master-0"]
    assert pod["metadata"]["labels"] == {
        "app": "mnist",
        "training.kubeflow.org/operator-name": "pytorchjob-controller",
        "training.kubeflow.org/job-name": "job",
        "training.kubeflow.org/replica-type": "master",
        "training.kubeflow.org/replica-index": "0",
        "training.kubeflow.org/job-role": "master",
        "app.kubernetes.io/managed-by": "jobwarden",
    }
    assert pod["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert pod["metadata"]["finalizers"] == ["example.com/keep"]
    assert pod["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "name": "job",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd"}
    # The template in the job is left alone.
    assert "env" not in template["spec"]["containers"][0]


def test_service_is_headless_one_port_per_framework_port_and_selects_its_pod() -> None:
    job = kubeflow_job(TF, {"Worker": 2})
    container = job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    container["ports"] = [{"name": "tfjob-port", "containerPort": 3333}, {"containerPort": 6006}]
    plan = FakeCluster(TF, job).step()
    service = created(plan, "Service")["job-worker-1"]
    pod = created(plan, "Pod")["job-worker-1"]
    assert service["spec"] == {
        "clusterIP": "None",
        "selector": {
            "training.kubeflow.org/operator-name": "tfjob-controller",
            "training.kubeflow.org/job-name": "job",
            "training.kubeflow.org/replica-type": "worker",
            "training.kubeflow.org/replica-index": "1",
        },
        "ports": [{"name": "tfjob-port", "port": 3333}, {"name": "port-6006", "port": 6006}],
    }
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "jobwarden"
    assert service["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_default_port_goes_to_the_framework_container_only_when_missing() -> None:
    job = kubeflow_job(TORCH, {"Master": 1, "Worker": 1})
    specs = job["spec"]["pytorchReplicaSpecs"]
    specs["Master"]["template"]["spec"]["containers"].insert(0, {"name": "sidecar", "image": "s"})
    specs["Worker"]["template"]["spec"]["containers"][0]["ports"] = [
        {"name": "metrics", "containerPort": 9100}
    ]
    pods = created(FakeCluster(TORCH, job).step(), "Pod")
    sidecar, master = pods["job-master-0"]["spec"]["containers"]
    assert "ports" not in sidecar
    assert master["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456}]
    assert pods["job-worker-0"]["spec"]["containers"][0]["ports"] == [
        {"name": "metrics", "containerPort": 9100},
        {"name": "pytorchjob-port", "containerPort": 23456},
    ]


@pytest.mark.parametrize(
    ("replica_policy", "template_policy", "pod_policy"),
    [
        ("ExitCode", None, "Never"),
        ("Always", None, "Always"),
        (None, "OnFailure", "OnFailure"),
        (None, None, "Never"),  # TFJob's default
    ],
)
def test_pod_restart_policy(replica_policy: str | None, template_policy: str | None, pod_policy: str) -> None:
    job = kubeflow_job(TF, {"Worker": 1}, restart_policy=replica_policy)
    if template_policy:
        job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["restartPolicy"] = template_policy
    plan = FakeCluster(TF, job).step()
    assert created(plan, "Pod")["job-worker-0"]["spec"]["restartPolicy"] == pod_policy
    assert all(e.reason != "SetPodTemplateRestartPolicy" for e in plan.events)


def test_overriding_a_template_restart_policy_warns_once_per_plan_and_only_on_creation() -> None:
    job = kubeflow_job(TF, {"Worker": 3}, restart_policy="ExitCode")
    job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    cluster = FakeCluster(TF, job)
    warning = Event(
        "Warning",
        "SetPodTemplateRestartPolicy",
        "Restart policy in pod template will be overwritten by restart policy in replica spec",
    )
    assert cluster.step().events.count(warning) == 1
    assert warning not in cluster.step(later(1)).events


def test_user_env_wins_over_the_operators() -> None:
    job = kubeflow_job(TORCH, {"Master": 1})
    container = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "PYTHONUNBUFFERED", "value": "0"}, {"name": "MY_VAR", "value": "x"}]
    pod = created(FakeCluster(TORCH, job).step(), "Pod")["job-master-0"]
    env = pod["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env].count("PYTHONUNBUFFERED") == 1
    assert env[:2] == container["env"]
    assert env_of(pod["spec"]["containers"][0])["MASTER_ADDR"] == "job-master-0"


def test_scale_down_deletes_pods_and_services_above_replicas_only() -> None:
    cluster = running(TF, kubeflow_job(TF, {"Worker": 3}))
    cluster.job["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] = 1
    cluster.pods["unrelated"] = in_phase(cluster.pods["job-worker-0"], "Running")
    cluster.pods["job-worker-01"] = in_phase(cluster.pods["job-worker-0"], "Running")
    plan = cluster.step(later(10))
    assert set(plan.delete) == {
        ChildRef("Pod", "job-worker-1"),
        ChildRef("Pod", "job-worker-2"),
        ChildRef("Service", "job-worker-1"),
        ChildRef("Service", "job-worker-2"),
    }
    assert plan.create == []


def test_a_terminating_pod_is_neither_counted_nor_recreated() -> None:
    cluster = running(TF, kubeflow_job(TF, {"Worker": 2}))
    cluster.pods["job-worker-1"] = in_phase(cluster.pods["job-worker-1"], "Running", terminating=True)
    plan = cluster.step(later(10))
    assert plan.create == []
    assert plan.delete == []
    assert cluster.status["replicaStatuses"] == {"Worker": {"active": 1}}


# --- status machine ----------------------------------------------------------------------------


def test_running_pods_set_running_with_an_event_and_count_active() -> None:
    cluster = FakeCluster(TF, fresh(seed("tfjob-put")))
    cluster.step()
    cluster.run_all()
    plan = cluster.step(later(5))
    assert plan.events == [Event("Normal", "TFJobRunning", "TFJob tfjob-test is running.")]
    running = cluster.condition("Running")
    assert running is not None
    assert running["lastTransitionTime"] == "2024-05-01T12:00:05Z"
    assert cluster.status["replicaStatuses"] == {"PS": {"active": 1}, "Worker": {"active": 1}}


def test_success_sets_completion_time_folds_active_and_applies_clean_pod_policy() -> None:
    cluster = running(TF, fresh(seed("tfjob-put")))  # TFJob default cleanPodPolicy: Running
    cluster.set_phase("tfjob-test-worker-0", "Succeeded", exit_code=0)
    plan = cluster.step(later(100))
    assert plan.events == [Event("Normal", "TFJobSucceeded", "TFJob tfjob-test is successfully completed.")]
    assert condition_types(cluster) == [("Created", "True"), ("Running", "False"), ("Succeeded", "True")]
    assert cluster.status["completionTime"] == "2024-05-01T12:01:40Z"
    assert cluster.status["replicaStatuses"] == {"PS": {"succeeded": 1}, "Worker": {"succeeded": 1}}
    assert set(plan.delete) == {ChildRef("Pod", "tfjob-test-ps-0"), ChildRef("Service", "tfjob-test-ps-0")}
    # The Worker pod and its Service stay for its logs.
    assert set(cluster.pods) == set(cluster.services) - {"tfjob-test-ps-0"} == {"tfjob-test-worker-0"}


@pytest.mark.parametrize(
    ("layout", "policy", "deleted_pods", "deleted_services"),
    [
        ("top", "All", {"job-ps-0", "job-worker-0"}, {"job-ps-0", "job-worker-0"}),
        ("nested", "All", {"job-ps-0", "job-worker-0"}, {"job-ps-0", "job-worker-0"}),
        ("nested", "Running", {"job-ps-0"}, {"job-ps-0"}),
        ("top", "None", set(), set()),
    ],
)
def test_clean_pod_policy_in_either_layout(
    layout: str, policy: str, deleted_pods: set[str], deleted_services: set[str]
) -> None:
    run_policy = {"cleanPodPolicy": policy} if layout == "top" else {"runPolicy": {"cleanPodPolicy": policy}}
    cluster = running(TF, kubeflow_job(TF, {"PS": 1, "Worker": 1}, **run_policy))
    cluster.set_phase("job-worker-0", "Succeeded", exit_code=0)
    plan = cluster.step(later(100))
    assert (deleted(plan, "Pod"), deleted(plan, "Service")) == (deleted_pods, deleted_services)


def test_a_finished_job_creates_nothing_and_keeps_its_status() -> None:
    cluster = running(TF, kubeflow_job(TF, {"Worker": 2}, cleanPodPolicy="None"))
    cluster.set_phase("job-worker-0", "Succeeded", exit_code=0)
    cluster.step(later(100))
    cluster.pods.pop("job-worker-1")
    plan = cluster.step(later(200))
    assert plan.is_noop


def test_a_finished_job_keeps_applying_its_clean_pod_policy() -> None:
    cluster = running(TF, kubeflow_job(TF, {"Worker": 2}, cleanPodPolicy="Running"))
    cluster.set_phase("job-worker-0", "Succeeded", exit_code=0)
    cluster.step(later(100))
    # A stale cache (or a deletion that failed) still shows the running pod.
    cluster.pods["job-worker-1"] = in_phase(cluster.pods["job-worker-0"], "Running")
    plan = cluster.step(later(101))
    assert plan.delete == [ChildRef("Pod", "job-worker-1")]
    assert (plan.status, plan.events) == (None, [])


def test_never_policy_failed_pod_fails_the_job() -> None:
    cluster = running(TF, kubeflow_job(TF, {"Worker": 2}, restart_policy="Never"))
    cluster.set_phase("job-worker-1", "Failed", exit_code=1)
    plan = cluster.step(later(50))
    message = "TFJob job has failed because 1 Worker replica(s) failed."
    assert plan.events == [Event("Warning", "TFJobFailed", message)]
    failed = cluster.condition("Failed")
    assert failed is not None
    assert (failed["reason"], failed["message"]) == ("TFJobFailed", message)
    assert cluster.status["completionTime"] == "2024-05-01T12:00:50Z"
    assert cluster.status["replicaStatuses"] == {"Worker": {"failed": 1}}
    assert "restarts" not in cluster.status
    # cleanPodPolicy Running (TFJob default): the still running worker is stopped, the failed one kept.
    assert deleted(plan, "Pod") == {"job-worker-0"}


# --- restarts and backoffLimit --------------------------------------------------------------------


def test_on_failure_deletes_the_failed_pod_then_recreates_it_under_the_same_name() -> None:
    job = kubeflow_job(TORCH, {"Master": 1, "Worker": 2}, restart_policy="OnFailure")
    cluster = running(TORCH, job)
    cluster.set_phase("job-worker-1", "Failed", exit_code=1)
    plan = cluster.step(later(50))
    message = "PyTorchJob job is restarting because 1 Worker replica(s) failed."
    assert plan.delete == [ChildRef("Pod", "job-worker-1")]
    assert plan.events == [Event("Warning", "PyTorchJobRestarting", message)]
    assert condition_types(cluster) == [("Created", "True"), ("Restarting", "True")]
    assert cluster.status["restarts"] == 1
    assert cluster.status["replicaStatuses"] == {"Master": {"active": 1}, "Worker": {"active": 1}}

    recreate = cluster.step(later(51))
    assert [m["metadata"]["name"] for m in recreate.create] == ["job-worker-1"]
    # The Master decides and still runs, so the job is Running again while the replacement starts.
    assert recreate.events == [Event("Normal", "PyTorchJobRunning", "PyTorchJob job is running.")]
    assert condition_types(cluster) == [("Created", "True"), ("Running", "True")]
    cluster.set_phase("job-worker-1", "Running")
    assert cluster.step(later(60)).events == []
    assert cluster.status["restarts"] == 1
    assert cluster.status["replicaStatuses"] == {"Master": {"active": 1}, "Worker": {"active": 2}}


def test_failures_in_one_pass_restart_together_with_one_event() -> None:
    cluster = running(TF, kubeflow_job(TF, {"Chief": 1, "PS": 1, "Worker": 2}, restart_policy="OnFailure"))
    for name in ("job-ps-0", "job-worker-0", "job-worker-1"):
        cluster.set_phase(name, "Failed", exit_code=1)
    plan = cluster.step(later(10))
    message = "TFJob job is restarting because 1 PS and 2 Worker replica(s) failed."
    assert plan.events == [Event("Warning", "TFJobRestarting", message)]
    assert deleted(plan, "Pod") == {"job-ps-0", "job-worker-0", "job-worker-1"}
    assert cluster.status["restarts"] == 3
    assert cluster.status["replicaStatuses"] == {"PS": {}, "Worker": {}, "Chief": {"active": 1}}


def test_backoff_limit_counts_recreations_and_honours_clean_pod_policy_none() -> None:
    job = kubeflow_job(TORCH, {"Master": 1, "Worker": 1}, restart_policy="OnFailure", backoffLimit=2)
    cluster = running(TORCH, job)  # PyTorchJob default cleanPodPolicy: None
    cluster.set_phase("job-worker-0", "Failed", exit_code=1)
    assert cluster.step(later(10)).delete == [ChildRef("Pod", "job-worker-0")]
    cluster.step(later(11))
    cluster.set_phase("job-worker-0", "Failed", exit_code=1)
    plan = cluster.step(later(20))
    message = "PyTorchJob job has failed because it has reached the specified backoff limit"
    assert plan.events == [Event("Warning", "PyTorchJobFailed", message)]
    assert plan.delete == []
    assert set(cluster.pods) == {"job-master-0", "job-worker-0"}
    assert cluster.status["restarts"] == 1
    assert cluster.status["completionTime"] == "2024-05-01T12:00:20Z"


def test_backoff_limit_zero_fails_on_the_first_retryable_failure() -> None:
    cluster = running(TF, kubeflow_job(TF, {"Worker": 2}, restart_policy="OnFailure", backoffLimit=0))
    cluster.set_phase("job-worker-1", "Failed", exit_code=137)
    plan = cluster.step(later(10))
    assert [e.reason for e in plan.events] == ["TFJobFailed"]
    assert "restarts" not in cluster.status
    assert deleted(plan, "Pod") == {"job-worker-0"}  # cleanPodPolicy Running


def test_backoff_limit_counts_in_place_restarts_of_running_pods() -> None:
    cluster = running(TF, kubeflow_job(TF, {"Worker": 2}, restart_policy="OnFailure", backoffLimit=3))
    cluster.set_phase("job-worker-0", "Running", restart_count=1)
    cluster.set_phase("job-worker-1", "Running", restart_count=1)
    assert cluster.step(later(10)).status is None
    cluster.set_phase("job-worker-1", "Running", restart_count=2)
    cluster.step(later(20))
    failed = cluster.condition("Failed")
    assert failed is not None
    assert failed["message"] == "TFJob job has failed because it has reached the specified backoff limit"


@pytest.mark.parametrize(
    ("exit_code", "restarted"),
    [(137, True), (128, True), (143, True), (None, True), (1, False), (127, False)],
)
def test_exit_code_policy_retries_only_codes_from_128(exit_code: int | None, restarted: bool) -> None:
    cluster = running(TF, kubeflow_job(TF, {"Worker": 2}, restart_policy="ExitCode"))
    cluster.set_phase("job-worker-1", "Failed", exit_code=exit_code)
    plan = cluster.step(later(10))
    assert (ChildRef("Pod", "job-worker-1") in plan.delete) is restarted
    assert (cluster.condition("Failed") is not None) is not restarted
    assert (cluster.condition("Restarting") is not None) is restarted


def test_exit_code_is_read_from_the_framework_container() -> None:
    cluster = running(TF, kubeflow_job(TF, {"Worker": 2}, restart_policy="ExitCode"))
    failed = in_phase(cluster.pods["job-worker-1"], "Failed")
    failed["status"]["containerStatuses"] = [
        {"name": "sidecar", "state": {"terminated": {"exitCode": 1}}},
        {"name": "tensorflow", "state": {"terminated": {"exitCode": 137}}},
    ]
    cluster.pods["job-worker-1"] = failed
    assert cluster.step(later(10)).delete == [ChildRef("Pod", "job-worker-1")]


# --- deadline and TTL ------------------------------------------------------------------------------


def test_deadline_wakes_the_operator_then_fails_the_job_and_stops_active_pods() -> None:
    job = kubeflow_job(TORCH, {"Master": 1, "Worker": 3}, activeDeadlineSeconds=600, cleanPodPolicy="None")
    cluster = FakeCluster(TORCH, job)
    assert cluster.step().wake_at == later(600)
    cluster.set_phase("job-master-0", "Running")
    cluster.set_phase("job-worker-0", "Running")
    cluster.set_phase("job-worker-1", "Succeeded", exit_code=0)
    before = cluster.step(later(599))
    assert before.wake_at == later(600) and not before.deadline_exceeded

    plan = cluster.step(later(600))
    message = "PyTorchJob job has failed because it was active longer than specified deadline"
    assert plan.events == [Event("Warning", "PyTorchJobFailed", message)]
    assert plan.deadline_exceeded  # the decision the shell counts (jobwarden_deadline_failures_total)
    assert not cluster.step(later(601)).deadline_exceeded  # counted once: already Failed
    # Running and Pending pods stop even under cleanPodPolicy None; the finished one stays.
    assert (
        deleted(plan, "Pod") == deleted(plan, "Service") == {"job-master-0", "job-worker-0", "job-worker-2"}
    )
    assert set(cluster.pods) == {"job-worker-1"}
    assert cluster.status["completionTime"] == "2024-05-01T12:10:00Z"
    assert plan.wake_at is None


def test_deadline_is_counted_from_the_recorded_start_time() -> None:
    job = kubeflow_job(TF, {"Worker": 1}, runPolicy={"activeDeadlineSeconds": 60})
    job["status"] = {"startTime": "2024-05-01T11:59:30Z"}
    plan = TF.plan(Observed(job, {}, NOW))
    assert plan.wake_at == later(30)
    assert plan.status is not None
    assert plan.status["startTime"] == "2024-05-01T11:59:30Z"


def test_a_job_failed_by_its_deadline_keeps_stopping_stale_running_pods() -> None:
    job = kubeflow_job(TF, {"Worker": 1}, activeDeadlineSeconds=60, cleanPodPolicy="None")
    cluster = running(TF, job)
    stale = cluster.pods["job-worker-0"]
    cluster.step(later(60))
    cluster.pods["job-worker-0"] = stale
    assert cluster.step(later(61)).delete == [ChildRef("Pod", "job-worker-0")]


def test_a_success_seen_after_the_deadline_instant_keeps_its_pods_under_clean_pod_policy_none() -> None:
    job = kubeflow_job(TORCH, {"Master": 1, "Worker": 1}, activeDeadlineSeconds=60, cleanPodPolicy="None")
    cluster = running(TORCH, job)
    cluster.set_phase("job-master-0", "Succeeded", exit_code=0)
    finishing = cluster.step(later(61))  # the success rule wins over the passed deadline
    assert cluster.condition("Succeeded") is not None and cluster.condition("Failed") is None
    assert finishing.delete == []
    again = cluster.step(later(62))  # and stays a success: nothing is stopped afterwards either
    assert (again.delete, again.status) == ([], None)
    assert set(cluster.pods) == {"job-master-0", "job-worker-0"}


def test_ttl_wakes_at_expiry_then_deletes_the_job() -> None:
    cluster = running(TORCH, fresh(seed("pytorchjob-put")))  # ttlSecondsAfterFinished: 3000
    cluster.set_phase("pytorch-test-master-0", "Succeeded", exit_code=0)
    finishing = cluster.step(later(100))
    assert (finishing.wake_at, finishing.delete_job) == (later(3100), False)
    waiting = cluster.step(later(3099))
    assert (waiting.wake_at, waiting.delete_job, waiting.status) == (later(3100), False, None)
    due = cluster.step(later(3100))
    assert (due.wake_at, due.delete_job, due.status) == (None, True, None)


def test_ttl_zero_deletes_in_the_finishing_plan() -> None:
    cluster = running(TF, kubeflow_job(TF, {"Worker": 1}, ttlSecondsAfterFinished=0))
    cluster.set_phase("job-worker-0", "Succeeded", exit_code=0)
    plan = cluster.step(later(10))
    assert plan.status is not None
    assert plan.delete_job


# --- the JobKind protocol ------------------------------------------------------------------------


def test_admission_is_delegated_to_kubeflow_validation() -> None:
    job = kubeflow_job(TF, {"Worker": 1})
    changed = {**job, "spec": {**job["spec"], "successPolicy": "AllWorkers"}}
    assert TF.validate(job) == kubeflow_validation.validate_kubeflow(tfjob.TFJOB_SHAPE, job)
    assert TF.check_update(job, changed) == kubeflow_validation.check_kubeflow_update(
        tfjob.TFJOB_SHAPE, job, changed
    )
    assert TF.check_update(job, changed)  # successPolicy is immutable
    assert TF.updatable_fields() == list(kubeflow_validation.KUBEFLOW_UPDATABLE)
    assert TF.job_name_label == "training.kubeflow.org/job-name"
