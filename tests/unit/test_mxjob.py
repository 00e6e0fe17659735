"""MXJob specifics: the seed's children, MX_CONFIG and DMLC env, Scheduler-led status under
`mxReplicaStatuses`, restarts under OnFailure."""

from __future__ import annotations

import json

from kubeflow_helpers import (
    FakeCluster,
    created,
    deleted,
    env_of,
    fresh,
    kubeflow_job,
    later,
    masters,
    running,
    seed,
)

from jobwarden.core.plan import ChildRef, Event
from jobwarden.kinds.kubeflow import mxjob

MX = mxjob.KIND
NAMES = {"mxnet-job-scheduler-0", "mxnet-job-server-0", "mxnet-job-worker-0"}


def test_seed_job_gets_scheduler_server_and_worker_with_the_scheduler_as_master() -> None:
    plan = FakeCluster(MX, fresh(seed("mxjob-put"))).step()
    pods = created(plan, "Pod")
    assert set(pods) == set(created(plan, "Service")) == NAMES
    assert masters(plan) == {"mxnet-job-scheduler-0"}
    assert pods["mxnet-job-server-0"]["spec"]["containers"][0]["ports"] == [
        {"name": "mxjob-port", "containerPort": 9091}
    ]
    assert plan.status is not None
    assert plan.status["mxReplicaStatuses"] == {"Scheduler": {}, "Server": {}, "Worker": {}}
    assert "replicaStatuses" not in plan.status


def test_seed_env_describes_the_parameter_server_cluster() -> None:
    pods = created(FakeCluster(MX, fresh(seed("mxjob-put"))).step(), "Pod")
    worker = env_of(pods["mxnet-job-worker-0"]["spec"]["containers"][0])
    assert worker["MX_CONFIG"] == (
        '{"cluster":{"scheduler":[{"url":"mxnet-job-scheduler-0","port":9091}],'
        '"server":[{"url":"mxnet-job-server-0","port":9091}],'
        '"worker":[{"url":"mxnet-job-worker-0","port":9091}]},'
        '"labels":{"scheduler":"","server":"","worker":""},'
        '"task":{"type":"worker","index":0}}'
    )
    assert {k: v for k, v in worker.items() if k != "MX_CONFIG"} == {
        "DMLC_PS_ROOT_PORT": "9091",
        "DMLC_PS_ROOT_URI": "mxnet-job-scheduler-0",
        "DMLC_NUM_SERVER": "1",
        "DMLC_NUM_WORKER": "1",
        "DMLC_ROLE": "worker",
        "DMLC_USE_KUBERNETES": "1",
        "DMLC_WORKER_ID": "0",
    }
    server = env_of(pods["mxnet-job-server-0"]["spec"]["containers"][0])
    assert json.loads(server["MX_CONFIG"])["task"] == {"type": "server", "index": 0}
    assert (server["DMLC_ROLE"], "DMLC_WORKER_ID" in server) == ("server", False)


def test_the_stored_seed_with_its_pods_running_needs_nothing() -> None:
    cluster = running(MX, fresh(seed("mxjob-put")))
    cluster.job = seed("mxjob-put")
    assert cluster.step(later(60)).is_noop


def test_scheduler_success_finishes_the_job_and_the_seeds_running_policy_stops_the_rest() -> None:
    cluster = running(MX, fresh(seed("mxjob-put")))
    cluster.set_phase("mxnet-job-scheduler-0", "Succeeded", exit_code=0)
    plan = cluster.step(later(100))
    assert plan.events == [Event("Normal", "MXJobSucceeded", "MXJob mxnet-job is successfully completed.")]
    assert deleted(plan, "Pod") == deleted(plan, "Service") == {"mxnet-job-server-0", "mxnet-job-worker-0"}
    assert cluster.status["mxReplicaStatuses"] == {
        "Scheduler": {"succeeded": 1},
        "Server": {"succeeded": 1},
        "Worker": {"succeeded": 1},
    }
    assert plan.wake_at == later(100 + 10000)  # the seed's ttlSecondsAfterFinished


def test_default_clean_pod_policy_removes_every_pod_and_service() -> None:
    job = fresh(seed("mxjob-put"))
    del job["spec"]["cleanPodPolicy"]
    cluster = FakeCluster(MX, job)
    cluster.step()
    cluster.run_all()
    cluster.set_phase("mxnet-job-scheduler-0", "Succeeded", exit_code=0)
    del cluster.pods["mxnet-job-server-0"]  # e.g. evicted: its Service goes all the same
    plan = cluster.step(later(100))
    assert deleted(plan, "Pod") == NAMES - {"mxnet-job-server-0"}
    assert deleted(plan, "Service") == NAMES


def test_a_failed_worker_under_on_failure_is_restarted_not_fatal() -> None:
    job = kubeflow_job(MX, {"Scheduler": 1, "Server": 1, "Worker": 2}, restart_policy="OnFailure")
    cluster = running(MX, job)
    cluster.set_phase("job-worker-1", "Failed", exit_code=1)
    plan = cluster.step(later(10))
    assert plan.delete == [ChildRef("Pod", "job-worker-1")]
    assert plan.events == [
        Event("Warning", "MXJobRestarting", "MXJob job is restarting because 1 Worker replica(s) failed.")
    ]
    assert cluster.condition("Failed") is None


def test_single_worker_training_is_decided_by_the_worker() -> None:
    cluster = FakeCluster(MX, kubeflow_job(MX, {"Worker": 1}))
    env = env_of(created(cluster.step(), "Pod")["job-worker-0"]["spec"]["containers"][0])
    assert (env["DMLC_PS_ROOT_URI"], env["DMLC_PS_ROOT_PORT"], env["DMLC_NUM_SERVER"]) == ("", "0", "0")
    cluster.set_phase("job-worker-0", "Running")
    cluster.step(later(5))
    assert cluster.condition("Running") is not None
    cluster.set_phase("job-worker-0", "Succeeded", exit_code=0)
    cluster.step(later(10))
    assert cluster.condition("Succeeded") is not None


def test_a_tuning_job_succeeds_when_its_tuner_does() -> None:
    job = kubeflow_job(MX, {"TunerTracker": 1, "TunerServer": 2, "Tuner": 1}, jobMode="MXTune")
    template = job["spec"]["mxReplicaSpecs"]["TunerServer"]["template"]
    template["metadata"] = {"annotations": {"tuner-server-key": "gpu-server"}}
    cluster = FakeCluster(MX, job)
    pods = created(cluster.step(), "Pod")
    config = json.loads(env_of(pods["job-tuner-0"]["spec"]["containers"][0])["MX_CONFIG"])
    # Go marshals map keys sorted.
    assert list(config["labels"].items()) == [
        ("tuner", ""),
        ("tunerserver", "gpu-server"),
        ("tunertracker", ""),
    ]
    assert list(config["cluster"]) == ["tuner", "tunerserver", "tunertracker"]
    assert len(config["cluster"]["tunerserver"]) == 2
    cluster.run_all()
    cluster.step(later(5))
    cluster.set_phase("job-tuner-0", "Succeeded", exit_code=0)
    cluster.step(later(10))
    assert cluster.condition("Succeeded") is not None
