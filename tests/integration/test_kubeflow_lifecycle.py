"""TFJob, PyTorchJob and MXJob through their whole lifecycle against the real control plane and the
operator subprocess: children, env, status and conditions, the cleanPodPolicy, TTL and deadline
(both run-policy layouts), failure paths, updates by `kubectl replace` of the seed body, an operator
killed mid-way, and the events on the job.

Pods never finish by themselves (kwok): a test finishes them with `devcluster.pods`, as a kubelet
would report it. Each test runs in its own namespace."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from devcluster.cluster import Cluster
from devcluster.operator import LocalOperator
from kubeflow_steps import (
    JOB_NAME_LABEL,
    JOB_ROLE_LABEL,
    KINDS,
    LAYOUTS,
    MX,
    OPERATOR_NAME_LABEL,
    PYTORCH,
    REPLICA_INDEX_LABEL,
    REPLICA_TYPE_LABEL,
    TF,
    Job,
    KubeflowKind,
    condition,
    create,
    env_of,
    replica_spec,
    resource_version,
    sleep_until,
    with_run_policy,
)
from kubernetes import client

from testlib import creatable, load_seed

NewJob = Callable[[KubeflowKind, dict[str, Any]], Job]

# Captured output is shown only for a failing test: the operator log path is printed for each.
pytestmark = pytest.mark.usefixtures("operator_log_hint")


@pytest.fixture
def new_job(
    cluster: Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator: LocalOperator,
) -> NewJob:
    def make(kind: KubeflowKind, body: dict[str, Any]) -> Job:
        return create(cluster, core, custom, operator.logs, kind, body)

    return make


def seed_body(kind: KubeflowKind, namespace: str) -> dict[str, Any]:
    return creatable(load_seed(kind.seed), namespace)


def start(new_job: NewJob, kind: KubeflowKind, body: dict[str, Any]) -> tuple[Job, dict[str, Any]]:
    """Create the job and wait until all its pods run and it says Running; returns the pods."""
    job = new_job(kind, body)
    pods = job.wait_pods_running()
    job.wait_condition("Running")
    return job, pods


# ---------------------------------------------------------------------------------------------
# 1. The happy path of each kind, from the seed body.


def check_tf_env(job: Job, pods: dict[str, Any]) -> None:
    hosts = {slug: [f"{job.pod_name(slug + '-0')}.{job.namespace}.svc:2222"] for slug in ("ps", "worker")}
    for slug in ("ps", "worker"):
        config = json.loads(env_of(pods[job.pod_name(slug + "-0")], "tensorflow")["TF_CONFIG"])
        assert config == {"cluster": hosts, "task": {"type": slug, "index": 0}, "environment": "cloud"}


def check_pytorch_env(job: Job, pods: dict[str, Any]) -> None:
    for slot, rank in (("master-0", "0"), ("worker-0", "1")):
        env = env_of(pods[job.pod_name(slot)], "pytorch")
        assert {k: env.get(k) for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")} == {
            "MASTER_ADDR": "pytorch-test-master-0",
            "MASTER_PORT": "23456",
            "WORLD_SIZE": "2",
            "RANK": rank,
        }
        assert env["PYTHONUNBUFFERED"] == "1"


def check_mx_env(job: Job, pods: dict[str, Any]) -> None:
    slugs = ("scheduler", "server", "worker")
    cluster = {slug: [{"url": f"mxnet-job-{slug}-0", "port": 9091}] for slug in slugs}
    for slug in slugs:
        env = env_of(pods[job.pod_name(slug + "-0")], "mxnet")
        assert json.loads(env.pop("MX_CONFIG")) == {
            "cluster": cluster,
            "labels": dict.fromkeys(slugs, ""),
            "task": {"type": slug, "index": 0},
        }
        assert env == {
            "DMLC_PS_ROOT_PORT": "9091",
            "DMLC_PS_ROOT_URI": "mxnet-job-scheduler-0",
            "DMLC_NUM_SERVER": "1",
            "DMLC_NUM_WORKER": "1",
            "DMLC_ROLE": slug,
            "DMLC_USE_KUBERNETES": "1",
            **({"DMLC_WORKER_ID": "0"} if slug == "worker" else {}),
        }


CHECK_ENV = {"TFJob": check_tf_env, "PyTorchJob": check_pytorch_env, "MXJob": check_mx_env}
# Pods (and services) left once the deciding pod succeeded: TF's default cleanPodPolicy Running stops
# the PS; PyTorch's default None keeps all; the MX seed says Running (its default All: see below).
LEFT_AFTER_SUCCESS = {
    "TFJob": {"worker-0"},
    "PyTorchJob": {"master-0", "worker-0"},
    "MXJob": {"scheduler-0"},
}


def check_children(job: Job, pods: dict[str, Any]) -> None:
    uid = job.body()["metadata"]["uid"]
    kind = job.kind
    names = {job.pod_name(s) for s in kind.slots}
    assert set(pods) == names
    # A pod may run before the operator got to its service (kwok starts pods at once).
    services = job.wait_services()
    for replica_type, slug in kind.replicas:
        name = job.pod_name(f"{slug}-0")
        pod, service = pods[name], services[name]
        selector = {
            JOB_NAME_LABEL: job.name,
            REPLICA_TYPE_LABEL: slug,
            REPLICA_INDEX_LABEL: "0",
            OPERATOR_NAME_LABEL: kind.operator_name,
        }
        role = {JOB_ROLE_LABEL: "master"} if f"{slug}-0" == kind.master else {}
        kubeflow_labels = {k: v for k, v in pod.metadata.labels.items() if k.startswith(LABEL_PREFIX)}
        assert kubeflow_labels == {**selector, **role}, replica_type
        for child in (pod, service):
            [owner] = child.metadata.owner_references
            assert (owner.api_version, owner.kind, owner.name, owner.uid) == (
                "kubeflow.org/v1",
                kind.kind,
                job.name,
                uid,
            )
            assert owner.controller is True
        container = next(c for c in pod.spec.containers if c.name == kind.container)
        assert (kind.port_name, kind.port) in {(p.name, p.container_port) for p in container.ports}
        assert service.spec.cluster_ip == "None", "a headless service"
        assert service.spec.selector == selector
        assert [(p.name, p.port) for p in service.spec.ports] == [(kind.port_name, kind.port)]


LABEL_PREFIX = "training.kubeflow.org/"


def kubectl_state(job: Job) -> str:
    lines = job.cluster.kubectl("get", job.kind.plural, job.name, "-n", job.namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "AGE"]
    name, state, _age = lines[1].split()
    assert name == job.name
    return state


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_lifecycle_from_the_seed(new_job: NewJob, namespace: str, kind: KubeflowKind) -> None:
    job = new_job(kind, seed_body(kind, namespace))

    pods = job.wait_pods_running()
    check_children(job, pods)
    CHECK_ENV[kind.kind](job, pods)

    running = job.wait_condition("Running")
    assert running["status"]["startTime"]
    running_condition = condition(running, "Running") or {}
    assert (running_condition["reason"], running_condition["message"]) == (
        f"{kind.kind}Running",
        f"{kind.kind} {job.name} is running.",
    )
    all_active = {replica_type: {"active": 1} for replica_type, _ in kind.replicas}
    job.wait(lambda: job.status().get(kind.status_key) == all_active, f"{kind.status_key} all active")
    if kind is MX:
        assert "replicaStatuses" not in job.status()
    assert kubectl_state(job) == "Running"

    job.finish(kind.decider, exit_code=0)
    done = job.wait_condition("Succeeded")
    succeeded = condition(done, "Succeeded") or {}
    assert (succeeded["reason"], succeeded["message"]) == (
        f"{kind.kind}Succeeded",
        f"{kind.kind} {job.name} is successfully completed.",
    )
    status = done["status"]
    assert status["completionTime"] >= status["startTime"]
    assert condition(done, "Running") is None, "Running is flipped to False"
    assert status[kind.status_key] == {t: {"succeeded": 1} for t, _ in kind.replicas}, "active retired"

    left = LEFT_AFTER_SUCCESS[kind.kind]
    job.wait_children(pods=left, services=left)
    assert job.pod_phases()[job.pod_name(kind.decider)] == "Succeeded"
    assert kubectl_state(job) == "Succeeded"

    job.merge_patch({"spec": {"ttlSecondsAfterFinished": 1}})
    job.wait_deleted()
    job.wait_garbage_collected()


def test_mxjob_default_clean_pod_policy_is_all(new_job: NewJob, namespace: str) -> None:
    body = seed_body(MX, namespace)
    del body["spec"]["cleanPodPolicy"]
    job, _ = start(new_job, MX, body)
    job.finish("scheduler-0")
    job.wait_condition("Succeeded")
    job.wait_children(pods=set(), services=set())


# ---------------------------------------------------------------------------------------------
# 2. Failure paths.

# For each kind, a pod under restartPolicy Never that fails, and what the cleanPodPolicy leaves:
# TF (both templates made Never; default Running), PyTorch (the seed's Master is Never; default None),
# MX (all Never in the seed; the seed's Running).
NEVER_FAILS = {
    "TFJob": ("worker-0", "Worker", {"worker-0"}),
    "PyTorchJob": ("master-0", "Master", {"master-0", "worker-0"}),
    "MXJob": ("worker-0", "Worker", {"worker-0"}),
}


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_a_failed_pod_under_never_fails_the_job(new_job: NewJob, namespace: str, kind: KubeflowKind) -> None:
    body = seed_body(kind, namespace)
    if kind is TF:
        for replica_type, _ in kind.replicas:
            replica_spec(body, kind, replica_type)["template"]["spec"]["restartPolicy"] = "Never"
    slot, replica_type, left = NEVER_FAILS[kind.kind]
    job, pods = start(new_job, kind, body)
    assert pods[job.pod_name(slot)].spec.restart_policy == "Never"

    job.finish(slot, exit_code=1)
    failed = condition(job.wait_condition("Failed"), "Failed") or {}
    assert (failed["reason"], failed["message"]) == (
        f"{kind.kind}Failed",
        f"{kind.kind} {job.name} has failed because 1 {replica_type} replica(s) failed.",
    )
    status = job.status()
    assert status["completionTime"]
    assert status[kind.status_key][replica_type] == {"failed": 1}
    job.wait_children(pods=left, services=left)
    assert job.pod_phases()[job.pod_name(slot)] == "Failed", "the failed pod is kept for its logs"


@pytest.mark.parametrize("first_restart", ["in-place", "re-created"])
def test_on_failure_restarts_until_the_backoff_limit_then_fails_keeping_pods(
    new_job: NewJob, namespace: str, first_restart: str
) -> None:
    body = seed_body(TF, namespace)  # both replicas restartPolicy OnFailure
    body["spec"].update(backoffLimit=2, cleanPodPolicy="None")
    job, pods = start(new_job, TF, body)
    uids = {name: pod.metadata.uid for name, pod in pods.items()}
    ps = job.pod_name("ps-0")

    # Restart 1 of 2, the job keeps running: either kubelet restarted worker-0's container in place,
    # or the PS pod failed and the operator re-created it (counted in status.restarts).
    if first_restart == "in-place":
        assert job.restart_container("worker-0", exit_code=1) == 1
        sleep_until(time.monotonic() + 3)
    else:
        job.finish("ps-0", exit_code=1)
        job.wait(lambda: job.status().get("restarts") == 1, "status.restarts == 1")
        uids[ps] = job.wait(
            lambda: (pod := job.pods().get(ps)) and pod.metadata.uid != uids[ps] and pod.metadata.uid,
            "ps-0 re-created",
        )
        job.wait_pods_running()
        job.wait_condition("Running")
    assert condition(job.body(), "Failed") is None
    assert job.pod_phases() == {job.pod_name(s): "Running" for s in TF.slots}

    # Restart 2 of 2: the PS pod fails (again): the limit is reached.
    job.finish("ps-0", exit_code=1)
    failed = condition(job.wait_condition("Failed"), "Failed") or {}
    assert failed["reason"] == "TFJobFailed"
    assert (
        failed["message"] == "TFJob tfjob-test has failed because it has reached the specified backoff limit"
    )
    # cleanPodPolicy None: every pod and service stays, the failed PS is not re-created.
    stayed = set(TF.slots)
    job.wait_children(pods=stayed, services=stayed)
    sleep_until(time.monotonic() + 2)
    after = job.pods()
    assert {name: pod.metadata.uid for name, pod in after.items()} == uids
    assert {name: pod.status.phase for name, pod in after.items()} == {
        ps: "Failed",
        job.pod_name("worker-0"): "Running",
    }


def test_backoff_limit_1_fails_on_the_first_in_place_restart_keeping_pods(
    new_job: NewJob, namespace: str
) -> None:
    body = seed_body(TF, namespace)
    body["spec"].update(backoffLimit=1, cleanPodPolicy="None")
    job, pods = start(new_job, TF, body)

    job.restart_container("ps-0", exit_code=1)
    failed = condition(job.wait_condition("Failed"), "Failed") or {}
    assert (
        failed["message"] == "TFJob tfjob-test has failed because it has reached the specified backoff limit"
    )
    sleep_until(time.monotonic() + 2)
    after = job.pods()
    assert {n: p.metadata.uid for n, p in after.items()} == {n: p.metadata.uid for n, p in pods.items()}
    assert {p.status.phase for p in after.values()} == {"Running"}, "cleanPodPolicy None stops nothing"
    assert set(job.services()) == set(pods)


def exit_code_body(namespace: str) -> dict[str, Any]:
    body = seed_body(PYTORCH, namespace)
    replica_spec(body, PYTORCH, "Worker")["restartPolicy"] = "ExitCode"
    return body


def test_exit_code_policy_recreates_a_pod_killed_by_a_signal(new_job: NewJob, namespace: str) -> None:
    job, pods = start(new_job, PYTORCH, exit_code_body(namespace))
    worker = job.pod_name("worker-0")
    old_uid = pods[worker].metadata.uid
    assert pods[worker].spec.restart_policy == "Never", "ExitCode is decided by the operator, not kubelet"
    before = job.body()["metadata"]["resourceVersion"]

    job.finish("worker-0", exit_code=137)  # SIGKILL, e.g. OOM: retryable
    again = job.wait(
        lambda: (
            (pod := job.pods().get(worker)) is not None
            and pod.metadata.uid != old_uid
            and pod.status.phase == "Running"
            and pod
        ),
        "worker-0 re-created under the same name and Running",
    )
    assert env_of(again, "pytorch")["RANK"] == "1"
    job.wait(lambda: job.status().get("restarts") == 1, "status.restarts == 1")
    job.wait_condition("Running")
    current = job.body()
    assert condition(current, "Failed") is None
    assert current["status"]["restarts"] == 1, "counted once"

    seen = [condition(version, "Restarting") for version in job.history(before)]
    restarting = next((c for c in seen if c), None)
    assert restarting is not None, "the job went through a Restarting condition"
    assert restarting["reason"] == "PyTorchJobRestarting"
    assert restarting["message"] == (
        "PyTorchJob pytorch-test is restarting because 1 Worker replica(s) failed."
    )
    [event] = [e for e in job.wait_events("PyTorchJobRestarting") if e.reason == "PyTorchJobRestarting"]
    assert event.type == "Warning"


def test_exit_code_policy_fails_the_job_on_a_permanent_exit_code(new_job: NewJob, namespace: str) -> None:
    job, pods = start(new_job, PYTORCH, exit_code_body(namespace))
    worker = job.pod_name("worker-0")

    job.finish("worker-0", exit_code=1)  # the program's own error: permanent
    failed = condition(job.wait_condition("Failed"), "Failed") or {}
    assert failed["reason"] == "PyTorchJobFailed"
    assert failed["message"] == "PyTorchJob pytorch-test has failed because 1 Worker replica(s) failed."
    assert job.pods()[worker].metadata.uid == pods[worker].metadata.uid, "not re-created"
    assert "restarts" not in job.status()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deadline_exceeded_fails_the_job_and_stops_its_pods(
    new_job: NewJob, namespace: str, layout: str
) -> None:
    # PyTorch's default cleanPodPolicy None would keep the pods; a passed deadline stops them anyway.
    body = with_run_policy(seed_body(PYTORCH, namespace), layout, {"activeDeadlineSeconds": 3})
    job = new_job(PYTORCH, body)
    job.wait_pods_running()

    done = job.wait_condition("Failed")
    failed = condition(done, "Failed") or {}
    assert failed["reason"] == "PyTorchJobFailed"
    assert "active longer than specified deadline" in failed["message"]
    assert done["status"]["completionTime"]
    assert done["status"]["replicaStatuses"] == {"Master": {}, "Worker": {}}, "active dropped on failure"
    job.wait_children(pods=set(), services=set())


# ---------------------------------------------------------------------------------------------
# 3 and 4. TTL and deadline changed by `kubectl replace` of the seed body, in both run-policy layouts
# (and moved from the seeds' top level to `spec.runPolicy` by the replace itself).

LAYOUT_CHANGES = [("top", "top"), ("runPolicy", "runPolicy"), ("top", "runPolicy"), ("runPolicy", "top")]


def layout_id(change: tuple[str, str]) -> str:
    created, replaced = change
    return created if created == replaced else f"{created}-to-{replaced}"


@pytest.mark.parametrize("layouts", LAYOUT_CHANGES, ids=layout_id)
def test_replace_with_a_short_ttl_deletes_the_finished_job(
    new_job: NewJob, namespace: str, layouts: tuple[str, str]
) -> None:
    created, replaced = layouts
    body = with_run_policy(seed_body(PYTORCH, namespace), created, {})  # the seed's ttl: 3000 s
    job, _ = start(new_job, PYTORCH, body)
    job.finish("master-0")
    job.wait_condition("Succeeded")
    sleep_until(time.monotonic() + 2)
    assert job.get() is not None, "kept for ttlSecondsAfterFinished 3000"

    job.replace(with_run_policy(load_seed(PYTORCH.seed), replaced, {"ttlSecondsAfterFinished": 2}))
    job.wait_deleted(timeout=10)
    job.wait_garbage_collected()


@pytest.mark.parametrize("layouts", LAYOUT_CHANGES, ids=layout_id)
def test_replace_with_a_longer_deadline_keeps_the_job_running(
    new_job: NewJob, namespace: str, layouts: tuple[str, str]
) -> None:
    created, replaced = layouts
    created_at = time.monotonic()
    job, pods = start(
        new_job, TF, with_run_policy(seed_body(TF, namespace), created, {"activeDeadlineSeconds": 4})
    )

    job.replace(with_run_policy(load_seed(TF.seed), replaced, {"activeDeadlineSeconds": 3600}))
    # startTime has second precision: the old deadline could fall as early as 3 s after creation.
    assert time.monotonic() - created_at < 3, "too slow to replace before the old deadline"
    sleep_until(created_at + 8)
    current = job.body()
    assert condition(current, "Failed") is None
    assert condition(current, "Running") is not None
    assert {n: p.metadata.uid for n, p in job.pods().items()} == {n: p.metadata.uid for n, p in pods.items()}
    assert set(job.pod_phases().values()) == {"Running"}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_replace_with_a_longer_ttl_keeps_the_finished_job(
    new_job: NewJob, namespace: str, layout: str
) -> None:
    body = with_run_policy(seed_body(PYTORCH, namespace), layout, {"ttlSecondsAfterFinished": 4})
    job, _ = start(new_job, PYTORCH, body)
    job.finish("master-0")
    job.wait_condition("Succeeded")
    finished_at = time.monotonic()

    job.replace(with_run_policy(load_seed(PYTORCH.seed), layout, {"ttlSecondsAfterFinished": 3000}))
    assert time.monotonic() - finished_at < 3, "too slow to replace before the old TTL"
    sleep_until(finished_at + 8)
    assert job.get() is not None
    assert set(job.pods()) == {job.pod_name(s) for s in PYTORCH.slots}, "cleanPodPolicy None keeps them"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_replace_with_a_passed_deadline_fails_the_running_job(
    new_job: NewJob, namespace: str, layout: str
) -> None:
    body = with_run_policy(seed_body(MX, namespace), layout, {"activeDeadlineSeconds": 3600})
    job, _ = start(new_job, MX, body)
    sleep_until(time.monotonic() + 2)

    job.replace(with_run_policy(load_seed(MX.seed), layout, {"activeDeadlineSeconds": 1}))
    failed = condition(job.wait_condition("Failed", timeout=10), "Failed") or {}
    assert (
        failed["message"] == "MXJob mxnet-job has failed because it was active longer than specified deadline"
    )
    job.wait_children(pods=set(), services=set())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_replace_with_a_clean_pod_policy_applies_to_the_finished_job(
    new_job: NewJob, namespace: str, layout: str
) -> None:
    job, _ = start(new_job, PYTORCH, with_run_policy(seed_body(PYTORCH, namespace), layout, {}))
    job.finish("master-0")
    job.wait_condition("Succeeded")
    everything = set(PYTORCH.slots)
    job.wait_children(pods=everything, services=everything)  # the default None

    job.replace(with_run_policy(load_seed(PYTORCH.seed), layout, {"cleanPodPolicy": "Running"}))
    job.wait_children(pods={"master-0"}, services={"master-0"})
    assert condition(job.body(), "Succeeded") is not None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ttl_deletes_the_finished_job_in_either_layout(new_job: NewJob, namespace: str, layout: str) -> None:
    body = with_run_policy(seed_body(TF, namespace), layout, {"ttlSecondsAfterFinished": 3})
    job, _ = start(new_job, TF, body)
    job.finish("worker-0")
    job.wait_condition("Succeeded")
    succeeded_at = time.monotonic()
    job.wait_deleted()
    # Not early: completionTime has second precision, so at worst the 3 s shrink by 1 s.
    assert time.monotonic() - succeeded_at > 1.5
    job.wait_garbage_collected()


# ---------------------------------------------------------------------------------------------
# 5. The operator killed (SIGKILL) mid-lifecycle.


def test_operator_killed_mid_lifecycle_duplicates_nothing_and_catches_up(
    new_job: NewJob, namespace: str, operator: LocalOperator
) -> None:
    job, pods = start(new_job, TF, seed_body(TF, namespace))
    all_active = {"PS": {"active": 1}, "Worker": {"active": 1}}
    job.wait(lambda: job.status().get("replicaStatuses") == all_active, "replicaStatuses all active")
    before = job.status()
    uids = {name: pod.metadata.uid for name, pod in pods.items()}

    job_version = job.body()["metadata"]["resourceVersion"]
    children_version = resource_version(job.core, namespace)

    operator.restart()
    # Over 3 s the new operator lists and reconciles everything: any write would show in the watch.
    assert [version["status"] for version in job.history(job_version, seconds=3)] in ([], [before])
    assert job.status() == before, "status not regressed nor rewritten"
    assert job.child_history(children_version) == [], "no child deleted or created"
    assert {name: pod.metadata.uid for name, pod in job.pods().items()} == uids, "no pod re-created"
    assert set(job.services()) == set(uids)

    with operator.stopped():
        job.finish("worker-0")  # while nobody is looking
        sleep_until(time.monotonic() + 2)
        assert condition(job.body(), "Succeeded") is None
    done = job.wait_condition("Succeeded")["status"]
    assert done["startTime"] == before["startTime"]
    kept = {c["type"]: c["lastTransitionTime"] for c in before["conditions"]}
    assert {c["type"]: c["lastTransitionTime"] for c in done["conditions"] if c["type"] in kept} == kept
    job.wait_children(pods={"worker-0"}, services={"worker-0"})  # TF default cleanPodPolicy Running
    assert job.pods()[job.pod_name("worker-0")].metadata.uid == uids[job.pod_name("worker-0")]
    reasons = job.wait_events("TFJobCreated", "TFJobRunning", "TFJobSucceeded")
    lifecycle = sorted(e.reason for e in reasons if e.reason.startswith("TFJob"))
    assert lifecycle == ["TFJobCreated", "TFJobRunning", "TFJobSucceeded"]
    # Upstream's per-child events, one per child made (issue 14): each pod and service named once.
    made = [e.message for e in reasons if e.reason in ("SuccessfulCreatePod", "SuccessfulCreateService")]
    assert sorted(made) == sorted(
        f"Created {kind}: {name}" for name in uids for kind in ("pod", "service")
    ), "one event per child, none twice"


def test_operator_killed_right_after_create_makes_each_child_once(
    new_job: NewJob, namespace: str, core: client.CoreV1Api, operator: LocalOperator
) -> None:
    children_version = resource_version(core, namespace)
    job = new_job(MX, seed_body(MX, namespace))
    operator.restart()  # SIGKILL while it is creating the 3 pods and 3 services (or just after)

    job.wait_pods_running()
    job.wait_condition("Running")
    assert sorted(job.child_history(children_version)) == sorted(
        ("ADDED", kind, job.pod_name(slot)) for kind in ("Pod", "Service") for slot in MX.slots
    ), "each child created once, none deleted"
    assert [c["type"] for c in job.status()["conditions"]] == ["Created", "Running"]


def test_a_deadline_due_while_the_operator_is_down_is_applied_when_it_is_back(
    new_job: NewJob, namespace: str, operator: LocalOperator
) -> None:
    created_at = time.monotonic()
    body = with_run_policy(seed_body(PYTORCH, namespace), "runPolicy", {"activeDeadlineSeconds": 5})
    job, _ = start(new_job, PYTORCH, body)

    with operator.stopped():
        assert time.monotonic() - created_at < 4, "too slow to stop the operator before the deadline"
        sleep_until(created_at + 7)
        assert condition(job.body(), "Failed") is None, "nobody there to fail it"
        assert set(job.pod_phases().values()) == {"Running"}
    failed = condition(job.wait_condition("Failed"), "Failed") or {}
    assert "active longer than specified deadline" in failed["message"]
    job.wait_children(pods=set(), services=set())


def test_success_seen_after_the_deadline_still_honours_the_clean_pod_policy(
    new_job: NewJob, namespace: str, operator: LocalOperator
) -> None:
    # The same end state as with the operator up: the master succeeded before the deadline, so the
    # job Succeeded and PyTorch's default cleanPodPolicy None keeps the worker running.
    created_at = time.monotonic()
    body = with_run_policy(seed_body(PYTORCH, namespace), "top", {"activeDeadlineSeconds": 5})
    job, pods = start(new_job, PYTORCH, body)

    with operator.stopped():
        job.finish("master-0")
        assert time.monotonic() - created_at < 4, "too slow to finish the master before the deadline"
        sleep_until(created_at + 7)
    done = job.wait_condition("Succeeded")
    assert condition(done, "Failed") is None, "success is checked before the deadline"
    sleep_until(time.monotonic() + 3)  # a few more passes (the status write's own event at least)
    worker = job.pod_name("worker-0")
    after = job.pods()
    assert set(after) == set(pods), "cleanPodPolicy None: both pods stay"
    assert after[worker].metadata.uid == pods[worker].metadata.uid
    assert after[worker].status.phase == "Running"


def test_a_ttl_due_while_the_operator_is_down_is_applied_when_it_is_back(
    new_job: NewJob, namespace: str, operator: LocalOperator
) -> None:
    body = with_run_policy(seed_body(MX, namespace), "runPolicy", {"ttlSecondsAfterFinished": 3})
    job, _ = start(new_job, MX, body)
    job.finish("scheduler-0")
    job.wait_condition("Succeeded")

    with operator.stopped():
        sleep_until(time.monotonic() + 5)
        assert job.get() is not None, "nobody there to delete it"
    job.wait_deleted()
    job.wait_garbage_collected()


# ---------------------------------------------------------------------------------------------
# 6. Events on the job.


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_events_on_the_job(new_job: NewJob, namespace: str, kind: KubeflowKind) -> None:
    job, _ = start(new_job, kind, seed_body(kind, namespace))
    job.finish(kind.decider)
    job.wait_condition("Succeeded")
    expected = {
        f"{kind.kind}Created": f"{kind.kind} {job.name} is created.",
        f"{kind.kind}Running": f"{kind.kind} {job.name} is running.",
        f"{kind.kind}Succeeded": f"{kind.kind} {job.name} is successfully completed.",
    }
    events = job.wait_events(*expected)
    uid = job.body()["metadata"]["uid"]
    for event in events:
        if event.reason.startswith("Successful"):  # upstream's per-child events (issue 14)
            assert event.message.split(": ")[0] in (
                "Created pod",
                "Created service",
                "Deleted pod",
                "Deleted service",
            )
            continue
        assert (event.type, event.message) == ("Normal", expected[event.reason])
        assert event.involved_object.uid == uid
        assert event.source.component == "jobwarden"

    described = job.cluster.kubectl("describe", kind.resource, job.name, "-n", namespace).stdout
    section = described.split("\nEvents:", 1)[1]
    rows = [line.split() for line in section.splitlines()]
    for reason, message in expected.items():
        assert any(row[:2] == ["Normal", reason] and " ".join(row).endswith(message) for row in rows), (
            f"{reason} in kubectl describe:\n{section}"
        )
    listed = job.cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        f"--field-selector=involvedObject.name={job.name}",
        "-o",
        "jsonpath={.items[*].reason}",
    ).stdout.split()
    assert set(expected) <= set(listed)
