"""The Volcano Job decision core, walked through job lives on an in-memory cluster."""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

import pytest
from volcano_helpers import (
    NO_FALLBACK,
    SEED_JOB,
    VOLCANO,
    FakeCluster,
    created,
    deleted,
    env_of,
    later,
    running,
    secret_text,
    seed_body,
    seed_job,
    task,
    vcjob,
)

from jobwarden.core.plan import Event, Observed
from jobwarden.kinds import by_kind
from jobwarden.kinds.volcano import KIND, format_quantity, parse_duration
from jobwarden.kinds.volcano.status import go_duration

MASTER, WORKER = f"{SEED_JOB}-mpimaster-0", f"{SEED_JOB}-mpiworker-0"
RESTART_ON_FAILURE = [{"event": "PodFailed", "action": "RestartJob"}]


# ---------------------------------------------------------------------------------------------
# The seed MPI job, end to end.


def test_seed_job_first_plan_creates_pods_plugin_children_and_admits_the_job() -> None:
    cluster = FakeCluster(seed_job())
    plan = cluster.step()

    assert [(m["kind"], m["metadata"]["name"]) for m in plan.create] == [
        ("Secret", f"{SEED_JOB}-ssh"),
        ("ConfigMap", f"{SEED_JOB}-svc"),
        ("Service", SEED_JOB),
        ("NetworkPolicy", SEED_JOB),  # the svc plugin's, as upstream svc.go
        ("Pod", MASTER),
        ("Pod", WORKER),
    ]
    assert plan.status is not None
    expected_resources = seed_body("response")["status"]["controlledResources"]
    # Record after success: the Secret is recorded once the shell reports it created.
    assert plan.status["controlledResources"] == {
        k: v for k, v in expected_resources.items() if k != "plugin-ssh"
    }
    assert plan.status["state"] == {"phase": "Inqueue", "lastTransitionTime": "2024-05-01T12:00:00Z"}
    assert cluster.phases_seen() == ["Pending", "Inqueue"]
    assert plan.status["pending"] == 2
    assert plan.status["minAvailable"] == 2
    assert plan.status["taskStatusCount"] == {
        "mpimaster": {"phase": {"Pending": 1}},
        "mpiworker": {"phase": {"Pending": 1}},
    }
    assert "running" not in plan.status and "version" not in plan.status  # Go's omitempty

    plan = cluster.step()
    assert plan.create == [] and plan.status is not None
    assert plan.status["controlledResources"] == expected_resources


def test_the_ssh_secret_is_asked_for_until_it_is_observed_then_recorded() -> None:
    cluster = FakeCluster(vcjob(task("worker"), plugins={"ssh": []}))
    plan = cluster.plan()
    assert list(created(plan, "Secret")) == ["job-ssh"]
    assert plan.status is not None and "controlledResources" not in plan.status
    # Not created (say, the shell failed): asked for again.
    assert list(created(cluster.plan(later(1)), "Secret")) == ["job-ssh"]

    cluster.step(later(2))  # created: the shell reports it in observed.children["Secret"]
    plan = cluster.step(later(3))

    assert created(plan, "Secret") == {}
    assert plan.status is not None and plan.status["controlledResources"] == {"plugin-ssh": "ssh"}
    cluster.children["Secret"].clear()  # a restarted shell no longer reports it: the record is enough
    assert created(cluster.plan(later(4)), "Secret") == {}


def test_the_planned_ssh_secret_carries_no_key_and_materialize_makes_one() -> None:
    (secret,) = created(FakeCluster(seed_job()).plan(), "Secret").values()
    assert set(secret["data"]) == {"config"}
    assert secret["metadata"]["annotations"] == {"jobwarden.dev/generate": "ssh-keypair"}
    assert KIND.plan(FakeCluster(seed_job()).observe()) == FakeCluster(seed_job()).plan()  # deterministic

    made = KIND.materialize(secret)

    assert set(made["data"]) == {"id_rsa", "id_rsa.pub", "authorized_keys", "config"}
    assert "annotations" not in made["metadata"] and made["data"]["config"] == secret["data"]["config"]
    assert set(secret["data"]) == {"config"}  # the plan's manifest is left as it was
    pod = created(FakeCluster(seed_job()).plan(), "Pod")[MASTER]
    assert KIND.materialize(pod) == pod


def test_seed_pod_carries_upstream_labels_annotations_and_owner() -> None:
    worker = created(FakeCluster(seed_job()).step(), "Pod")[WORKER]
    meta = worker["metadata"]

    assert meta["namespace"] == "zjh-gpu"
    assert meta["labels"] == {
        "volcano.sh/task-index": "0",
        "volcano.sh/job-name": SEED_JOB,
        "volcano.sh/task-spec": "mpiworker",
        "volcano.sh/job-namespace": "zjh-gpu",
        "volcano.sh/queue-name": "default",
        "app.kubernetes.io/managed-by": "jobwarden",
    }
    assert meta["annotations"] == {
        "volcano.sh/task-index": "0",
        "volcano.sh/task-spec": "mpiworker",
        "scheduling.k8s.io/group-name": f"{SEED_JOB}-3bdba739-a3b3-11e9-8865-501d93440997",
        "volcano.sh/job-name": SEED_JOB,
        "volcano.sh/queue-name": "default",
        "volcano.sh/job-version": "0",
        "volcano.sh/template-uid": f"{SEED_JOB}-mpiworker",
        "volcano.sh/job-retry-count": "0",
    }
    (owner,) = meta["ownerReferences"]
    assert owner == {
        "apiVersion": "batch.volcano.sh/v1alpha1",
        "kind": "Job",
        "name": SEED_JOB,
        "uid": "3bdba739-a3b3-11e9-8865-501d93440997",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_seed_pod_gets_the_plugins_env_volumes_and_dns_name() -> None:
    worker = created(FakeCluster(seed_job()).step(), "Pod")[WORKER]
    spec = worker["spec"]
    (container,) = spec["containers"]

    assert spec["hostname"] == WORKER and spec["subdomain"] == SEED_JOB
    assert spec["schedulerName"] == "default-scheduler"  # the job asks for volcano, which is not installed
    assert spec["restartPolicy"] == "OnFailure" and spec["imagePullSecrets"] == [{"name": "default-secret"}]
    env = env_of(container)
    assert env["VK_TASK_INDEX"] == env["VC_TASK_INDEX"] == "0"
    hosts_ref = {"configMapKeyRef": {"name": f"{SEED_JOB}-svc", "key": "VC_MPIWORKER_HOSTS"}}
    assert env["VC_MPIWORKER_HOSTS"] == hosts_ref
    assert set(env) >= {"VC_MPIMASTER_HOSTS", "VC_MPIMASTER_NUM", "VC_MPIWORKER_NUM"}
    assert {"name": f"{SEED_JOB}-svc", "mountPath": "/etc/volcano"} in container["volumeMounts"]
    ssh_mount = {"name": f"{SEED_JOB}-ssh", "mountPath": "/root/.ssh", "subPath": ".ssh"}
    assert ssh_mount in container["volumeMounts"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[f"{SEED_JOB}-svc"]["configMap"] == {"name": f"{SEED_JOB}-svc"}
    assert volumes[f"{SEED_JOB}-ssh"]["secret"]["defaultMode"] == 0o600


def test_seed_children_hostfile_service_and_ssh_secret() -> None:
    cluster = FakeCluster(seed_job())
    plan = cluster.step()

    hostfile = created(plan, "ConfigMap")[f"{SEED_JOB}-svc"]["data"]
    assert hostfile["mpiworker.host"] == f"{WORKER}.{SEED_JOB}"  # /etc/volcano/mpiworker.host
    assert hostfile["VC_MPIMASTER_NUM"] == "1"
    service = created(plan, "Service")[SEED_JOB]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {
        "volcano.sh/job-name": SEED_JOB,
        "volcano.sh/job-namespace": "zjh-gpu",
    }
    secret = cluster.children["Secret"][f"{SEED_JOB}-ssh"]  # materialized by the shell
    assert secret_text(secret, "id_rsa").startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    assert secret_text(secret, "authorized_keys") == secret_text(secret, "id_rsa.pub")
    assert f"Host {WORKER}\n  HostName {WORKER}.{SEED_JOB}\n  Port 22\n" in secret_text(secret, "config")


def test_seed_job_replanned_is_a_noop_and_running_pods_make_it_running() -> None:
    cluster = FakeCluster(seed_job())
    cluster.step()
    cluster.step()  # records the ssh Secret the first plan created
    assert cluster.plan(later(1)).is_noop  # same pods, same status: no write, no event, no ssh key

    cluster.run_all()
    plan = cluster.step(later(5))

    assert plan.status is not None
    assert plan.status["state"] == {"phase": "Running", "lastTransitionTime": "2024-05-01T12:00:05Z"}
    assert plan.status["running"] == 2 and "pending" not in plan.status
    assert plan.events == [] and plan.create == []
    assert cluster.plan(later(60)).is_noop


def test_seed_put_scales_the_worker_up_and_rewrites_the_hostfile_for_the_whole_job() -> None:
    cluster = running(seed_job(worker_replicas=1))
    cluster.job["spec"] = seed_body("request")["spec"]  # the seed PUT: mpiworker replicas 1 -> 2
    seen_version = cluster.children["ConfigMap"][f"{SEED_JOB}-svc"]["metadata"]["resourceVersion"]

    plan = cluster.step(later(10))

    assert list(created(plan, "Pod")) == [f"{SEED_JOB}-mpiworker-1"]
    assert created(plan, "Secret") == {}  # recorded in controlledResources: never made twice
    (hostfile,) = plan.replace
    assert hostfile["metadata"]["resourceVersion"] == seen_version  # a racing writer makes it a 409
    assert hostfile["data"]["mpiworker.host"] == f"{WORKER}.{SEED_JOB}\n{SEED_JOB}-mpiworker-1.{SEED_JOB}"
    assert hostfile["data"]["VC_MPIWORKER_NUM"] == "2"
    assert plan.status is not None
    assert plan.status["state"]["phase"] == "Running"  # 2 running still meets minAvailable 2
    assert plan.status["pending"] == 1 and plan.status["running"] == 2
    assert "version" not in plan.status  # scaling does not bump the version
    assert cluster.plan(later(11)).is_noop


def test_seed_master_success_completes_the_job_then_ttl_deletes_it() -> None:
    job = seed_job(worker_replicas=2)
    job["spec"]["ttlSecondsAfterFinished"] = 100
    cluster = running(job, graceful=True)

    cluster.set_phase(MASTER, "Succeeded", exit_code=0)
    plan = cluster.step(later(20))

    assert plan.events == [Event("Normal", "ExecuteAction", "Start to execute action CompleteJob ")]
    assert deleted(plan, "Pod") == [WORKER, f"{SEED_JOB}-mpiworker-1"]  # the master keeps its logs
    assert deleted(plan, "Secret") == [f"{SEED_JOB}-ssh"]
    assert set(deleted(plan, "ConfigMap") + deleted(plan, "Service")) == {f"{SEED_JOB}-svc", SEED_JOB}
    assert plan.status is not None
    assert plan.status["state"]["phase"] == "Completing"
    assert plan.status["state"]["reason"] == "CompleteJob"
    assert plan.status["terminating"] == 2 and plan.status["version"] == 1
    assert "controlledResources" not in plan.status
    assert cluster.plan(later(21)).status is None  # still terminating: nothing new to say

    cluster.finish_deletions()
    plan = cluster.step(later(30))

    assert plan.status is not None and plan.status["state"]["phase"] == "Completed"
    assert plan.status["succeeded"] == 1 and "terminating" not in plan.status
    assert plan.wake_at == later(130)
    assert not cluster.step(later(129)).delete_job
    assert cluster.step(later(130)).delete_job


# ---------------------------------------------------------------------------------------------
# Policies and the state machine.


def test_pod_failure_restarts_the_whole_job_until_max_retry_then_fails() -> None:
    cluster = running(vcjob(task("worker", 2), policies=RESTART_ON_FAILURE, maxRetry=2))

    cluster.set_phase("job-worker-0", "Failed", exit_code=1)
    plan = cluster.step(later(10))
    assert plan.status is not None
    assert plan.status["state"] == {
        "phase": "Restarting",
        "reason": "RestartJob",
        "message": "Pod job-worker-0 failed with exit code 1",
        "lastTransitionTime": "2024-05-01T12:00:10Z",
    }
    assert plan.status["retryCount"] == 1 and plan.status["version"] == 1
    assert sorted(deleted(plan, "Pod")) == ["job-worker-0", "job-worker-1"]  # K(None): the failed one too

    cluster.settle(later(11))
    assert cluster.phase == "Inqueue"
    pod = cluster.pods["job-worker-0"]
    assert pod["metadata"]["annotations"]["volcano.sh/job-version"] == "1"
    assert pod["metadata"]["annotations"]["volcano.sh/job-retry-count"] == "1"

    cluster.run_all()
    cluster.settle(later(20))
    cluster.set_phase("job-worker-1", "Failed", exit_code=2)
    plan = cluster.step(later(30))
    assert plan.status is not None and plan.status["retryCount"] == 2
    # The last allowed restart keeps finished pods (upstream's retain override): the job fails next.
    assert deleted(plan, "Pod") == ["job-worker-0"]

    cluster.settle(later(31))
    assert cluster.phase == "Failed"
    assert cluster.status["state"]["reason"] == "MaxRetryReached"
    assert list(cluster.pods) == ["job-worker-1"]
    assert cluster.phases_seen()[-3:] == [
        "Running",
        "Restarting",
        "Failed",
    ]  # one entry per phase, latest last


def test_a_handled_failure_is_not_handled_again_while_the_cache_lags() -> None:
    policies = [{"event": "PodFailed", "action": "RestartPod"}]
    cluster = running(vcjob(task("worker", 2), policies=policies, minAvailable=1))
    cluster.set_phase("job-worker-1", "Failed", exit_code=1)
    stale_view = cluster.observe(later(10))
    plan = cluster.step(later(10))
    assert deleted(plan, "Pod") == ["job-worker-1"]
    assert plan.status is not None and plan.status["retryCount"] == 1 and "version" not in plan.status

    # The job's status write arrived, the pod deletion not yet: the failed pod shows again.
    lagging = dict(copy.deepcopy(stale_view.job))
    lagging["status"] = plan.status
    again = KIND.plan(Observed(lagging, stale_view.children, later(11), stale_view.settings))
    # Stays Restarting although one pod is enough for minAvailable 1: Pending would see it fail again.
    assert again.status is None and again.events == []
    assert deleted(again, "Pod") == ["job-worker-1"]  # deleting again is harmless

    cluster.settle(later(12))
    assert cluster.phase == "Running" and cluster.status["retryCount"] == 1
    assert cluster.pods["job-worker-1"]["status"] == {"phase": "Pending"}  # recreated, same name


def test_a_pod_of_an_older_job_version_never_triggers_a_policy() -> None:
    cluster = running(vcjob(task("worker", 2), policies=RESTART_ON_FAILURE))
    cluster.set_phase("job-worker-0", "Failed", exit_code=1)
    failed_pod = copy.deepcopy(cluster.pods["job-worker-0"])
    cluster.step(later(10))  # RestartJob: version 1, both pods deleted
    cluster.step(later(11))  # Restarting -> Pending
    assert cluster.phase == "Pending" and cluster.pods == {}

    cluster.pods["job-worker-0"] = failed_pod  # the pod cache lags: the old failed pod shows again
    plan = cluster.step(later(12))

    assert plan.events == [] and deleted(plan, "Pod") == ["job-worker-0"]
    assert cluster.status["retryCount"] == 1 and cluster.phase == "Inqueue"
    assert list(created(plan, "Pod")) == ["job-worker-1"]  # its name is free once the old pod is gone


def test_exit_code_policy_and_task_policies_come_before_job_policies() -> None:
    worker = task("worker", 2, policies=[{"exitCode": 3, "action": "AbortJob"}])
    cluster = running(vcjob(worker, policies=RESTART_ON_FAILURE))

    cluster.set_phase("job-worker-0", "Failed", exit_code=3)
    plan = cluster.step(later(10))

    assert plan.status is not None and plan.status["state"]["phase"] == "Aborting"
    assert deleted(plan, "Pod") == ["job-worker-1"]  # the failed pod is kept (retain Soft)
    cluster.settle(later(11))
    assert cluster.phase == "Aborted"
    assert cluster.status["failed"] == 1


def test_restart_partition_restarts_the_failed_pods_partition_only() -> None:
    partitioned = task(
        "worker",
        4,
        partitionPolicy={"totalPartitions": 2, "partitionSize": 2},
        policies=[{"event": "PodFailed", "action": "RestartPartition"}],
    )
    cluster = running(vcjob(partitioned))
    assert [p["metadata"]["labels"]["volcano.sh/partition-id"] for p in cluster.pods.values()] == [
        "0",
        "0",
        "1",
        "1",
    ]

    cluster.set_phase("job-worker-3", "Failed", exit_code=1)
    plan = cluster.step(later(10))

    assert sorted(deleted(plan, "Pod")) == ["job-worker-2", "job-worker-3"]
    assert plan.status is not None and plan.status["state"]["reason"] == "RestartPartition"


def test_an_unknown_podgroup_raises_the_unknown_event() -> None:
    cluster = FakeCluster(
        vcjob(task("worker", 2), policies=[{"event": "Unknown", "action": "AbortJob"}]), VOLCANO
    )
    cluster.step()
    cluster.set_podgroup_phase("Inqueue")
    cluster.settle(later(1))

    cluster.set_podgroup_phase("Unknown")
    plan = cluster.step(later(2))

    assert plan.status is not None and plan.status["state"]["phase"] == "Aborting"
    assert plan.status["state"]["message"] == "PodGroup job-uid-1 is Unknown"
    assert deleted(plan, "PodGroup") == ["job-uid-1"]


def test_aborted_job_is_never_deleted_by_ttl() -> None:
    job = vcjob(
        task("worker"), policies=[{"event": "PodFailed", "action": "AbortJob"}], ttlSecondsAfterFinished=0
    )
    cluster = running(job)
    cluster.set_phase("job-worker-0", "Failed", exit_code=1)
    cluster.settle(later(10))

    assert cluster.phase == "Aborted"
    assert not cluster.step(later(10_000)).delete_job


def test_evicted_pod_matches_pod_evicted_before_pod_failed() -> None:
    policies = [
        {"event": "PodEvicted", "action": "TerminateJob"},
        {"event": "PodFailed", "action": "AbortJob"},
    ]
    cluster = running(vcjob(task("worker", 2), policies=policies))

    cluster.set_phase("job-worker-1", "Failed", reason="Evicted")
    cluster.settle(later(10))

    assert cluster.phases_seen()[-2:] == ["Terminating", "Terminated"]
    assert cluster.status["state"]["message"] == "Pod job-worker-1 was evicted"


def test_task_failed_from_container_restarts() -> None:
    worker = task("worker", 2, maxRetry=4, policies=[{"event": "TaskFailed", "action": "TerminateJob"}])
    cluster = running(vcjob(worker))

    cluster.set_phase("job-worker-0", "Running", restarts=3)
    assert cluster.step(later(10)).status is None  # 3 restarts < maxRetry 4
    cluster.set_phase("job-worker-1", "Running", restarts=1)
    plan = cluster.step(later(11))

    assert plan.status is not None and plan.status["state"]["phase"] == "Terminating"
    assert plan.status["state"]["message"] == "Task worker restarted containers 4 times (maxRetry 4)"


def test_pending_timeout_restarts_the_pod_at_its_due_time() -> None:
    worker = task("worker", 2, policies=[{"event": "PodPending", "action": "RestartPod", "timeout": "10m"}])
    cluster = FakeCluster(vcjob(worker, minAvailable=1), graceful=True)
    cluster.settle()
    cluster.set_phase("job-worker-0", "Running")

    plan = cluster.step(later(60))
    assert plan.wake_at == later(600)  # job-worker-1 pending since NOW
    assert cluster.plan(later(599)).delete == []

    plan = cluster.step(later(600))
    assert deleted(plan, "Pod") == ["job-worker-1"]
    assert plan.status is not None and plan.status["state"]["phase"] == "Restarting"
    assert plan.status["retryCount"] == 1

    # Still terminating, but one pod left meets minAvailable 1: back to Pending, without restarting again.
    plan = cluster.step(later(601))
    assert plan.status is not None and plan.status["state"]["phase"] == "Pending"
    assert plan.status["retryCount"] == 1 and plan.delete == [] and plan.create == []

    cluster.finish_deletions()
    cluster.settle(later(602))
    assert cluster.phase == "Running"
    assert cluster.pods["job-worker-1"]["metadata"]["creationTimestamp"] == "2024-05-01T12:10:02Z"
    assert cluster.plan(later(603)).wake_at == later(1202)  # the new pod's own timeout


def test_a_pod_that_leaves_the_state_cancels_its_delayed_action() -> None:
    worker = task("worker", 2, policies=[{"event": "PodFailed", "action": "RestartJob", "timeout": "1m"}])
    cluster = running(vcjob(worker))
    cluster.set_phase("job-worker-0", "Failed", exit_code=1, finished_at=later(10))

    assert cluster.step(later(20)).wake_at == later(70)
    cluster.set_phase("job-worker-0", "Running")
    plan = cluster.step(later(70))

    assert plan.wake_at is None and plan.events == [] and plan.delete == []
    assert cluster.phase == "Running" and cluster.status["running"] == 2


def test_min_success_completes_the_job_and_stops_the_rest() -> None:
    cluster = running(vcjob(task("worker", 3), minSuccess=2))
    cluster.set_phase("job-worker-0", "Succeeded", exit_code=0)
    assert cluster.step(later(10)).status is not None  # counts only
    cluster.set_phase("job-worker-2", "Succeeded", exit_code=0)

    plan = cluster.step(later(11))

    assert plan.status is not None and plan.status["state"]["phase"] == "Completed"
    assert deleted(plan, "Pod") == ["job-worker-1"]


@pytest.mark.parametrize(
    ("outcomes", "phase"),
    [
        (["Succeeded", "Succeeded"], "Completed"),
        (["Succeeded", "Failed"], "Failed"),  # every task's minAvailable must succeed
    ],
)
def test_all_pods_finished_without_policies(outcomes: list[str], phase: str) -> None:
    cluster = running(vcjob(task("worker", 2)))
    for index, outcome in enumerate(outcomes):
        cluster.set_phase(f"job-worker-{index}", outcome, exit_code=0 if outcome == "Succeeded" else 1)

    cluster.settle(later(10))

    assert cluster.phase == phase


def test_all_finished_with_a_lower_job_min_available_completes_on_enough_successes() -> None:
    cluster = running(vcjob(task("worker", 3), minAvailable=2))
    for index, outcome in enumerate(["Succeeded", "Failed", "Succeeded"]):
        cluster.set_phase(f"job-worker-{index}", outcome, exit_code=0 if outcome == "Succeeded" else 1)

    cluster.settle(later(10))

    assert cluster.phase == "Completed"


def test_min_available_not_met_stays_inqueue_and_running_falls_back_when_pods_go_pending() -> None:
    cluster = FakeCluster(vcjob(task("worker", 3), minAvailable=2))
    cluster.settle()
    cluster.set_phase("job-worker-0", "Running")
    cluster.settle(later(5))
    assert cluster.phase == "Inqueue"

    cluster.set_phase("job-worker-1", "Running")
    cluster.settle(later(6))
    assert cluster.phase == "Running"

    cluster.set_phase("job-worker-1", "Pending")  # pending 2 > 3 - minAvailable 2
    cluster.settle(later(7))
    assert cluster.phase == "Inqueue"


def test_restart_job_waits_for_enough_pods_to_go_before_pending_again() -> None:
    cluster = running(vcjob(task("worker", 2), policies=RESTART_ON_FAILURE), graceful=True)
    cluster.set_phase("job-worker-0", "Failed", exit_code=1)
    cluster.step(later(10))

    assert cluster.step(later(11)).status is None  # both terminating: 2 - 2 < minAvailable 2
    cluster.finish_deletions()
    plan = cluster.step(later(12))

    assert plan.status is not None and plan.status["state"]["phase"] == "Pending"
    assert plan.create == []  # Pending creates on the next plan
    plan = cluster.step(later(13))
    assert sorted(created(plan, "Pod")) == ["job-worker-0", "job-worker-1"]


def test_whole_job_restart_recreates_the_plugin_children_with_a_new_key() -> None:
    job = vcjob(task("worker", 2), policies=RESTART_ON_FAILURE, plugins={"ssh": [], "svc": []})
    cluster = running(job)
    first_key = secret_text(cluster.children["Secret"]["job-ssh"], "id_rsa")

    cluster.set_phase("job-worker-0", "Failed", exit_code=1)
    plan = cluster.step(later(10))
    assert sorted(ref.kind for ref in plan.delete) == [
        "ConfigMap",
        "NetworkPolicy",
        "Pod",
        "Pod",
        "Secret",
        "Service",
    ]
    cluster.settle(later(11))

    assert cluster.status["controlledResources"] == {"plugin-ssh": "ssh", "plugin-svc": "svc"}
    assert set(cluster.children["ConfigMap"]) == {"job-svc"} and set(cluster.children["Service"]) == {"job"}
    assert secret_text(cluster.children["Secret"]["job-ssh"], "id_rsa") != first_key


# ---------------------------------------------------------------------------------------------
# Updates.


def test_scale_down_deletes_the_highest_indices_first_and_rewrites_the_hostfile() -> None:
    cluster = running(vcjob(task("worker", 4), minAvailable=1, plugins={"svc": []}))
    cluster.job["spec"]["tasks"][0]["replicas"] = 2

    plan = cluster.step(later(10))

    assert deleted(plan, "Pod") == ["job-worker-3", "job-worker-2"]
    (hostfile,) = plan.replace
    assert hostfile["data"]["worker.host"] == "job-worker-0.job\njob-worker-1.job"
    assert plan.status is not None and plan.status["terminating"] == 2 and plan.status["running"] == 2
    cluster.settle(later(11))
    assert sorted(cluster.pods) == ["job-worker-0", "job-worker-1"]
    assert cluster.status["running"] == 2 and "terminating" not in cluster.status


def test_a_template_change_applies_only_to_pods_created_afterwards() -> None:
    cluster = running(vcjob(task("worker", 1), minAvailable=1))
    template = cluster.job["spec"]["tasks"][0]["template"]
    template["spec"]["containers"][0]["image"] = "registry.example/app:2"
    assert cluster.step(later(10)).is_noop  # the running pod is left alone

    cluster.job["spec"]["tasks"][0]["replicas"] = 2
    plan = cluster.step(later(11))

    assert created(plan, "Pod")["job-worker-1"]["spec"]["containers"][0]["image"] == "registry.example/app:2"
    assert cluster.pods["job-worker-0"]["spec"]["containers"][0]["image"] == "registry.example/app:1"


# ---------------------------------------------------------------------------------------------
# Scheduling with and without Volcano.


def test_scheduler_fallback_warns_once_in_the_jobs_life() -> None:
    cluster = FakeCluster(vcjob(task("worker", 1), policies=RESTART_ON_FAILURE))
    cluster.settle()
    cluster.run_all()
    cluster.set_phase("job-worker-0", "Failed", exit_code=1)
    cluster.settle(later(10))  # restarted, admitted again

    assert cluster.status["retryCount"] == 1 and cluster.phase == "Inqueue"
    assert cluster.event_reasons() == ["SchedulerFallback", "ExecuteAction"]
    assert 'requesting scheduler "volcano"' in cluster.events[0].message


def test_fallback_keeps_a_template_scheduler_that_is_not_volcano_and_then_does_not_warn() -> None:
    worker = task("worker")
    worker["template"]["spec"]["schedulerName"] = "my-scheduler"
    plan = FakeCluster(vcjob(worker)).step()

    assert created(plan, "Pod")["job-worker-0"]["spec"]["schedulerName"] == "my-scheduler"
    assert plan.events == []


def test_without_volcano_and_without_fallback_the_job_stays_pending() -> None:
    cluster = FakeCluster(vcjob(task("worker", 2)), NO_FALLBACK)
    plan = cluster.step()

    assert created(plan, "Pod") == {}
    assert plan.status is not None and plan.status["state"]["phase"] == "Pending"
    assert plan.status["state"]["reason"] == "VolcanoNotInstalled"
    assert [e.reason for e in plan.events] == ["VolcanoNotInstalled"]
    assert cluster.plan(later(60)).is_noop  # warned once


def test_with_volcano_a_podgroup_is_created_and_pods_wait_for_it_to_be_inqueue() -> None:
    worker = task("worker", 2, minAvailable=1)
    worker["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "250m", "memory": "1Gi"}}
    master = task("master", 1)
    master["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": 1, "memory": "512Mi"}}
    cluster = FakeCluster(vcjob(master, worker, priorityClassName="high"), VOLCANO)

    plan = cluster.step()
    assert created(plan, "Pod") == {}
    group = created(plan, "PodGroup")["job-uid-1"]
    assert group["apiVersion"] == "scheduling.volcano.sh/v1beta1"
    assert group["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert group["spec"] == {
        "minMember": 2,  # defaulted: master 1 + worker 1
        "minTaskMember": {"master": 1, "worker": 1},
        "queue": "default",
        "priorityClassName": "high",
        # upstream's keys (GetPodQuotaUsage): one master (limits only: no request) and one worker
        "minResources": {
            "count/pods": "2",
            "pods": "2",
            "cpu": "250m",
            "requests.cpu": "250m",
            "memory": "1Gi",
            "requests.memory": "1Gi",
            "limits.cpu": "1",
            "limits.memory": "512Mi",
        },
    }
    assert cluster.plan(later(1)).is_noop

    unschedulable = {"type": "Unschedulable", "status": "True", "message": "0/3 nodes are available"}
    cluster.set_podgroup_phase("Pending", [unschedulable])
    plan = cluster.step(later(2))
    assert plan.events == [
        Event("Warning", "PodGroupPending", "PodGroup ns:job unschedulable, reason: 0/3 nodes are available")
    ]
    assert cluster.plan(later(3)).is_noop

    cluster.set_podgroup_phase("Inqueue")
    plan = cluster.step(later(4))
    pods = created(plan, "Pod")
    assert sorted(pods) == ["job-master-0", "job-worker-0", "job-worker-1"]
    assert {p["spec"]["schedulerName"] for p in pods.values()} == {"volcano"}
    assert {p["spec"]["priorityClassName"] for p in pods.values()} == {"high"}
    assert plan.status is not None and plan.status["state"] == {
        "phase": "Inqueue",
        "lastTransitionTime": "2024-05-01T12:00:04Z",
    }


def test_with_volcano_a_scale_updates_the_podgroup_and_a_kill_deletes_it() -> None:
    job = vcjob(task("worker", 2), policies=[{"event": "PodFailed", "action": "AbortJob"}])
    cluster = FakeCluster(job, VOLCANO)
    cluster.step()
    cluster.set_podgroup_phase("Inqueue")
    cluster.settle(later(1))
    cluster.job["spec"]["tasks"][0]["replicas"] = 3

    plan = cluster.step(later(2))
    (group,) = plan.patch  # a merge patch of the spec jobwarden owns: the scheduler's status is untouched
    assert (
        plan.replace == []
        and "status" not in group
        and group["metadata"] == {"name": "job-uid-1", "namespace": "ns"}
    )
    assert group["spec"]["minMember"] == 3
    # minTaskMember defaulted from replicas keeps its value at creation, as upstream stores the default
    assert group["spec"]["minTaskMember"] == {"worker": 2}
    assert cluster.children["PodGroup"]["job-uid-1"]["status"] == {"phase": "Inqueue"}

    cluster.set_phase("job-worker-0", "Failed", exit_code=1)
    plan = cluster.step(later(3))
    assert deleted(plan, "PodGroup") == ["job-uid-1"]


# ---------------------------------------------------------------------------------------------
# Everything else.


def test_depends_on_creates_a_task_once_its_dependency_is_ready() -> None:
    cluster = FakeCluster(vcjob(task("master"), task("worker", 2, dependsOn={"name": ["master"]})))
    plan = cluster.step()
    assert list(created(plan, "Pod")) == ["job-master-0"]

    cluster.set_phase("job-master-0", "Running", ready=False)
    assert created(cluster.step(later(1)), "Pod") == {}
    cluster.set_phase("job-master-0", "Running")
    assert list(created(cluster.step(later(2)), "Pod")) == ["job-worker-0", "job-worker-1"]


def test_unsupported_plugins_warn_on_the_first_plan_only() -> None:
    cluster = FakeCluster(vcjob(task("worker"), plugins={"env": [], "ray": ["--head=h"]}))
    plan = cluster.step()

    assert (
        Event("Warning", "PluginError", "plugin ray is not supported by jobwarden and is ignored")
        in plan.events
    )
    # ray implies svc, as Volcano's mutating webhook adds it
    assert plan.status is not None and plan.status["controlledResources"] == {
        "plugin-env": "env",
        "plugin-svc": "svc",
    }
    cluster.run_all()
    assert cluster.step(later(1)).events == []


def test_a_job_being_deleted_is_left_to_the_garbage_collector() -> None:
    job = vcjob(task("worker"))
    job["metadata"]["deletionTimestamp"] = "2024-05-01T12:00:00Z"

    assert FakeCluster(job).step().is_noop


def test_job_volumes_are_mounted_and_claims_from_volume_claim_are_created() -> None:
    """Upstream `pkg/controllers/job/job_controller_actions.go` createJobIOIfNotExist and createPVC: a
    `volumeClaim` becomes the PVC `<job>-pvc-<12 [0-9a-z]>` (helpers.go GenPVCName), owned by the job;
    every claim is recorded as `volume-pvc-<name>` and mounted into every container."""
    claim_spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    volumes = [
        {"mountPath": "/data", "volumeClaimName": "shared"},
        {"mountPath": "/new", "volumeClaim": claim_spec},
    ]
    cluster = FakeCluster(vcjob(task("worker"), volumes=volumes))
    plan = cluster.step()
    pod = created(plan, "Pod")["job-worker-0"]
    ((name, pvc),) = created(plan, "PersistentVolumeClaim").items()

    assert re.fullmatch(r"job-pvc-[0-9a-z]{12}", name)
    assert pvc["spec"] == claim_spec and pvc["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert not [e for e in plan.events if e.reason == "PVCError"]
    assert pod["spec"]["volumes"][-2:] == [
        {"name": "volcano-pvc-0", "persistentVolumeClaim": {"claimName": "shared"}},
        {"name": "volcano-pvc-1", "persistentVolumeClaim": {"claimName": name}},
    ]
    assert pod["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "volcano-pvc-0", "mountPath": "/data"},
        {"name": "volcano-pvc-1", "mountPath": "/new"},
    ]
    assert plan.status is not None and plan.status["controlledResources"] == {"volume-pvc-shared": "shared"}
    # Recorded once it is there; the same name on every plan, never created twice.
    second = cluster.step(later(1))
    assert created(second, "PersistentVolumeClaim") == {}
    assert cluster.status["controlledResources"][f"volume-pvc-{name}"] == name
    other = vcjob(task("worker"), volumes=volumes)
    other["metadata"]["uid"] = "uid-2"
    assert list(created(FakeCluster(other).step(), "PersistentVolumeClaim")) != [name]


def test_a_volume_without_any_claim_is_reported() -> None:
    plan = FakeCluster(vcjob(task("worker"), volumes=[{"mountPath": "/x"}])).step()

    message = "the volume at /x has neither volumeClaimName nor volumeClaim: not mounted"
    assert Event("Warning", "PVCError", message) in plan.events


def test_kind_metadata_and_admission_delegation() -> None:
    assert by_kind("batch.volcano.sh/v1alpha1", "Job") is KIND
    assert KIND.resource.plural == "jobs" and KIND.job_name_label == "volcano.sh/job-name"
    assert "spec.tasks[*].replicas" in KIND.updatable_fields()
    assert KIND.validate(seed_job()) == []
    bad: dict[str, Any] = seed_job()
    bad["spec"]["tasks"] = []
    assert KIND.validate(bad) != []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("1h30m", 5400), ("1.5h", 5400), ("0", 0), ("250ms", 0.25), ("5", None)],
)
def test_go_durations(text: str, seconds: float | None) -> None:
    parsed = parse_duration(text)
    assert (parsed.total_seconds() if parsed is not None else None) == seconds


def test_quantities_are_formatted_short_and_exact() -> None:
    from fractions import Fraction

    assert [format_quantity(Fraction(v)) for v in ("3", "0.75", "3221225472", "1000", "1/3000")] == [
        "3",
        "750m",
        "3Gi",
        "1000",
        "333333n",
    ]


def test_now_is_only_read_when_something_changes() -> None:
    cluster = running(vcjob(task("worker")))
    stamp = cluster.status["state"]["lastTransitionTime"]
    cluster.set_phase("job-worker-0", "Running", restarts=1)  # not a phase change

    cluster.step(later(100))

    assert cluster.status["state"]["lastTransitionTime"] == stamp == "2024-05-01T12:00:05Z"


def test_every_known_phase_has_one_handler() -> None:
    from jobwarden.kinds.volcano.phases import HANDLERS
    from jobwarden.kinds.volcano.spec import KNOWN_PHASES

    assert set(HANDLERS) == KNOWN_PHASES


# ---------------------------------------------------------------------------------------------
# Queues (issue 14, 4b): a PodGroup Pending because of its queue says which queue and its state.


def queue(name: str, state: str | None) -> dict[str, Any]:
    return {"metadata": {"name": name}, **({"status": {"state": state}} if state else {})}


@pytest.mark.parametrize(
    ("queues", "reason", "message"),
    [
        (
            {},
            "QueueNotFound",
            "Queue default does not exist: PodGroup job-uid-1 stays Pending until it is created",
        ),
        (
            {"default": queue("default", "Closed")},
            "QueueNotOpen",
            "Queue default is Closed: PodGroup job-uid-1 stays Pending until it is Open",
        ),
        (
            {"default": queue("default", None)},
            "QueueNotOpen",
            "Queue default has no state yet (not opened by Volcano's queue controller): "
            "PodGroup job-uid-1 stays Pending until it is Open",
        ),
    ],
)
def test_a_pending_podgroup_names_its_queue_and_state(
    queues: dict[str, Any], reason: str, message: str
) -> None:
    """vc-scheduler admits nothing from a queue that is not Open (volcano `pkg/scheduler/actions/enqueue`
    skips closed queues; `pkg/controllers/queue` opens a new one): status and a Warning say why."""
    cluster = FakeCluster(vcjob(task("worker")), VOLCANO)
    cluster.step()
    observed = cluster.observe(later(1))
    plan = KIND.plan(dataclasses.replace(observed, queues=queues))

    assert plan.status is not None
    assert plan.status["state"]["phase"] == "Pending"
    assert (plan.status["state"]["reason"], plan.status["state"]["message"]) == (reason, message)
    assert Event("Warning", reason, message) in plan.events
    assert created(plan, "Pod") == {}


def test_an_open_queue_or_an_admitted_podgroup_is_no_reason_to_wait() -> None:
    cluster = FakeCluster(vcjob(task("worker")), VOLCANO)
    cluster.step()
    open_queue = dataclasses.replace(cluster.observe(later(1)), queues={"default": queue("default", "Open")})
    plan = KIND.plan(open_queue)
    assert plan.status is None or plan.status["state"].get("reason", "") == ""

    cluster.set_podgroup_phase("Inqueue")
    closed = dataclasses.replace(cluster.observe(later(2)), queues={"default": queue("default", "Closed")})
    assert list(created(KIND.plan(closed), "Pod")) == ["job-worker-0"]  # admitted before it closed


def test_podgroup_min_resources_keys_as_upstream_quota_usage() -> None:
    """volcano `pkg/controllers/util/util.go` GetPodQuotaUsage on Kubernetes' `pkg/quota/v1/evaluator/
    core/pods.go` PodUsageFunc: containers summed, init containers as a maximum, overhead added;
    extended resources and hugepages as `requests.<name>` and bare."""
    worker = task("worker", 2)
    spec = worker["template"]["spec"]
    spec["containers"][0]["resources"] = {
        "requests": {"cpu": "1", "nvidia.com/gpu": 1, "hugepages-2Mi": "4Mi"},
        "limits": {"cpu": "2", "nvidia.com/gpu": 1},
    }
    spec["containers"].append({"name": "side", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}})
    spec["initContainers"] = [{"name": "init", "resources": {"requests": {"cpu": "3"}}}]
    spec["overhead"] = {"memory": "64Mi"}
    plan = FakeCluster(vcjob(worker), VOLCANO).step()

    assert created(plan, "PodGroup")["job-uid-1"]["spec"]["minResources"] == {
        "count/pods": "2",
        "pods": "2",
        "cpu": "6",  # max(1 + 0.5, 3) per pod
        "requests.cpu": "6",
        "limits.cpu": "4",
        "memory": "2176Mi",  # (1Gi + 64Mi) per pod
        "requests.memory": "2176Mi",
        "limits.memory": "128Mi",  # the overhead counts toward limits too
        "hugepages-2Mi": "8Mi",
        "requests.hugepages-2Mi": "8Mi",
        "nvidia.com/gpu": "2",
        "requests.nvidia.com/gpu": "2",
    }


def test_running_duration_is_written_when_the_job_is_killed_as_upstream() -> None:
    """volcano `pkg/controllers/job/job_controller_actions.go` killJob: runningDuration = the state's
    lastTransitionTime - creationTimestamp (metav1.Duration, Go's duration text), kept afterwards."""
    cluster = running(vcjob(task("worker")))
    assert "runningDuration" not in cluster.status
    cluster.set_phase("job-worker-0", "Succeeded", exit_code=0)
    cluster.settle(later(95))

    assert cluster.phase == "Completed"
    assert cluster.status["runningDuration"] == "1m35s"
    assert cluster.plan(later(4000)).is_noop


def test_running_duration_is_dropped_by_the_sync_after_a_resume_as_upstream() -> None:
    """Issue 25: upstream's syncJob, once the PodGroup is admitted, writes a status built without
    runningDuration; the kills of Aborting, Aborted and Restarting write it. So a resumed job shows
    it while Restarting and runs again without it (it was kept stale before)."""
    cluster = running(vcjob(task("worker")))
    cluster.command("AbortJob")
    cluster.settle(later(30))
    assert (cluster.phase, cluster.status["runningDuration"]) == ("Aborted", "30s")
    cluster.command("ResumeJob")
    cluster.step(later(60))
    assert (cluster.phase, cluster.status["runningDuration"]) == ("Restarting", "1m0s")
    statuses = [cluster.step(later(70)).status, cluster.step(later(70)).status]
    assert [s and s["state"]["phase"] for s in statuses] == ["Pending", "Inqueue"]
    assert [s and s.get("runningDuration") for s in statuses] == ["1m10s", None]  # killed, then synced
    cluster.run_all()
    cluster.settle(later(80))
    assert cluster.phase == "Running" and "runningDuration" not in cluster.status


def test_running_duration_is_kept_while_the_podgroup_waits() -> None:
    """Upstream's syncJob with the PodGroup not admitted only moves the phase: runningDuration stays."""
    cluster = running(vcjob(task("worker")), VOLCANO)
    cluster.command("RestartJob")
    cluster.settle(later(20))
    cluster.set_podgroup_phase("Pending")
    cluster.settle(later(25))
    assert cluster.phase == "Pending" and cluster.status["runningDuration"] == "20s"


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (45, "45s"), (90, "1m30s"), (7205, "2h0m5s")])
def test_go_duration_text(seconds: int, text: str) -> None:
    assert go_duration(seconds) == text


def test_a_kill_removes_what_exists_and_carries_a_plugin_label_not_what_status_recorded() -> None:
    """Issue 27: controlledResources is bookkeeping a restart clears. A kill removes the plugins'
    children that exist (the caches hold only the job's own), and any child of the job labelled by a
    plugin (e.g. one made under an older name); one already being deleted is left to finish."""
    cluster = running(vcjob(task("worker", 1), plugins={"svc": []}))
    assert cluster.children["Service"]["job"]["metadata"]["labels"]["jobwarden.dev/plugin"] == "svc"
    older = copy.deepcopy(cluster.children["ConfigMap"]["job-svc"])
    older["metadata"]["name"] = "job-hosts"
    cluster.children["ConfigMap"]["job-hosts"] = older
    cluster.children["NetworkPolicy"]["job"]["metadata"]["deletionTimestamp"] = "2024-05-01T12:00:01Z"
    cluster.job["status"].pop("controlledResources")
    cluster.set_phase("job-worker-0", "Failed", exit_code=1)

    plan = cluster.step(later(10))

    assert plan.status is not None and plan.status["state"]["phase"] == "Failed"
    assert sorted(deleted(plan, "ConfigMap")) == ["job-hosts", "job-svc"]
    assert deleted(plan, "Service") == ["job"] and deleted(plan, "NetworkPolicy") == []
