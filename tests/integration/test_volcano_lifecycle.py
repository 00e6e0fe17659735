"""The Volcano Job (`batch.volcano.sh/v1alpha1`) through its lifecycle against the real control plane
and the operator subprocess: seed 003's MPI job end to end (pods with upstream's labels and
annotations, the env/svc/ssh plugins, the scheduler fallback, status, a scale-up by `PUT` of the seed
body, TaskCompleted -> CompleteJob, TTL), the job policies RestartJob and AbortJob, the §5.3 Running
rules around `minAvailable`, scale-down and template changes by replace, an operator restart, and
the webhook refusing a fixed field.

Volcano's scheduler is not installed (no PodGroup CRD), so jobwarden's default fallback applies: the
job is admitted at once and its pods use `default-scheduler`. Pods never finish by themselves (kwok):
a test finishes them with `devcluster.pods`, as a kubelet would report it. Each test runs in its own
namespace."""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from devcluster.operator import LocalOperator
from volcano_steps import (
    API_VERSION,
    DEFAULT_SCHEDULER,
    GROUP_NAME_KEY,
    JOB_NAME_LABEL,
    JOB_NAMESPACE_LABEL,
    JOB_VERSION_KEY,
    MANAGED_BY,
    QUEUE_NAME_KEY,
    RETRY_COUNT_KEY,
    SEED_NAME,
    TASK_INDEX_KEY,
    TASK_SPEC_KEY,
    TEMPLATE_UID_KEY,
    Body,
    NewJob,
    VolcanoJob,
    condition_phases,
    container,
    env_of,
    message_of,
    parse_time,
    phase_of,
    seed_job,
    seed_request,
    sleep_until_wall,
    small_job,
    task,
)

PLUGIN_RESOURCES = {"plugin-env": "env", "plugin-ssh": "ssh", "plugin-svc": "svc"}
SSH_KEYS = ("id_rsa", "id_rsa.pub", "authorized_keys", "config")
# How long to watch for something that must NOT happen (a recreated pod, a TTL deletion...).
QUIET_SECONDS = 3.0

# Captured output is shown only for a failing test: the operator log path is printed for each.
pytestmark = pytest.mark.usefixtures("operator_log_hint")


def fqdn(job: VolcanoJob, task_name: str, index: int) -> str:
    return f"{job.pod_name(task_name, index)}.{job.name}"


def wait_running(job: VolcanoJob, running: int) -> Body:
    """Wait until the job is Running with `running` pods counted as running."""
    return job.wait_status(
        lambda s: (s.get("state") or {}).get("phase") == "Running" and s.get("running") == running,
        f"phase Running with running={running}",
    )


def uids(pods: dict[str, Any]) -> dict[str, str]:
    return {name: pod.metadata.uid for name, pod in pods.items()}


def quiet() -> None:
    """Let QUIET_SECONDS pass: only to prove that something does NOT happen."""
    time.sleep(QUIET_SECONDS)


# ---------------------------------------------------------------------------------------------
# What the pods and the plugins' children look like.


def check_owner(job: VolcanoJob, child: Any, uid: str) -> None:
    [owner] = child.metadata.owner_references
    assert (owner.api_version, owner.kind, owner.name, owner.uid) == (API_VERSION, "Job", job.name, uid)
    assert owner.controller is True
    assert owner.block_owner_deletion is True


def check_pod(
    job: VolcanoJob, pod: Any, task_name: str, index: int, uid: str, tasks: tuple[str, ...], version: int = 0
) -> None:
    """Upstream's labels and annotations, the owner, the scheduler fallback and the three plugins."""
    name = job.pod_name(task_name, index)
    meta = pod.metadata
    assert meta.name == name
    assert meta.labels == {
        TASK_INDEX_KEY: str(index),
        JOB_NAME_LABEL: job.name,
        TASK_SPEC_KEY: task_name,
        JOB_NAMESPACE_LABEL: job.namespace,
        QUEUE_NAME_KEY: "default",
        MANAGED_BY[0]: MANAGED_BY[1],
    }
    assert meta.annotations == {
        TASK_INDEX_KEY: str(index),
        TASK_SPEC_KEY: task_name,
        GROUP_NAME_KEY: f"{job.name}-{uid}",
        JOB_NAME_LABEL: job.name,
        QUEUE_NAME_KEY: "default",
        JOB_VERSION_KEY: str(version),
        TEMPLATE_UID_KEY: f"{job.name}-{task_name}",
        RETRY_COUNT_KEY: "0",
    }
    check_owner(job, pod, uid)
    spec = pod.spec
    assert spec.scheduler_name == DEFAULT_SCHEDULER, "volcano is not installed: the default fallback"
    assert (spec.hostname, spec.subdomain) == (name, job.name), "svc plugin: a stable DNS name"
    assert spec.restart_policy == "OnFailure"
    assert [s.name for s in spec.image_pull_secrets] == ["default-secret"]
    main = spec.containers[0]
    assert main.name == task_name and main.image == "*.*.*.*:20202/swr/openmpi-hello:3.28"
    assert [(p.name, p.container_port) for p in main.ports] == [("mpijob-port", 22)]
    # env plugin, then svc plugin (VC_<TASK>_HOSTS/NUM of every task from the ConfigMap).
    configmap = f"{job.name}-svc"
    from_configmap = [
        (key, (configmap, key)) for t in tasks for key in (f"VC_{t.upper()}_HOSTS", f"VC_{t.upper()}_NUM")
    ]
    assert env_of(pod) == [("VK_TASK_INDEX", str(index)), ("VC_TASK_INDEX", str(index)), *from_configmap]
    volumes = {v.name: v for v in spec.volumes}
    ssh = volumes[f"{job.name}-ssh"].secret
    assert ssh.secret_name == f"{job.name}-ssh"
    assert ssh.default_mode == 0o600
    assert [(i.key, i.path) for i in ssh.items] == [(k, f".ssh/{k}") for k in SSH_KEYS]
    assert volumes[configmap].config_map.name == configmap
    mounts = [(m.name, m.mount_path, m.sub_path) for m in main.volume_mounts if m.name in volumes]
    assert (f"{job.name}-ssh", "/root/.ssh", ".ssh") in mounts
    assert (configmap, "/etc/volcano", None) in mounts


def check_service(job: VolcanoJob, uid: str) -> None:
    service = job.service()
    assert service is not None, "svc plugin: the headless Service named after the job"
    assert service.spec.cluster_ip == "None"
    assert service.spec.selector == {JOB_NAME_LABEL: job.name, JOB_NAMESPACE_LABEL: job.namespace}
    assert not service.spec.publish_not_ready_addresses
    check_owner(job, service, uid)


def hosts_data(job: VolcanoJob, workers: int) -> dict[str, str]:
    masters = [fqdn(job, "mpimaster", 0)]
    workers_ = [fqdn(job, "mpiworker", i) for i in range(workers)]
    return {
        "mpimaster.host": "\n".join(masters),
        "VC_MPIMASTER_HOSTS": ",".join(masters),
        "VC_MPIMASTER_NUM": "1",
        "mpiworker.host": "\n".join(workers_),
        "VC_MPIWORKER_HOSTS": ",".join(workers_),
        "VC_MPIWORKER_NUM": str(workers),
    }


def check_configmap(job: VolcanoJob, uid: str, workers: int) -> None:
    configmap = job.configmap()
    assert configmap is not None, "svc plugin: the ConfigMap <job>-svc"
    assert configmap.data == hosts_data(job, workers)
    check_owner(job, configmap, uid)


def secret_files(secret: Any) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}


def check_secret(job: VolcanoJob, uid: str, workers: int) -> dict[str, str]:
    secret = job.secret()
    assert secret is not None, "ssh plugin: the Secret <job>-ssh"
    assert secret.type == "Opaque"
    files = secret_files(secret)
    assert sorted(files) == sorted(SSH_KEYS)
    assert files["id_rsa"].startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    key = serialization.load_pem_private_key(files["id_rsa"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert files["id_rsa.pub"] == files["authorized_keys"] == public.decode() + "\n"
    hosts = [("mpimaster", 0)] + [("mpiworker", i) for i in range(workers)]
    expected = ["StrictHostKeyChecking no", "UserKnownHostsFile /dev/null"]
    for task_name, index in hosts:
        expected += [f"Host {job.pod_name(task_name, index)}", f"  HostName {fqdn(job, task_name, index)}"]
        expected.append("  Port 22")
    assert files["config"] == "".join(f"{line}\n" for line in expected)
    check_owner(job, secret, uid)
    return files


def kubectl_columns(job: VolcanoJob) -> list[str]:
    lines = job.cluster.kubectl("get", "vcjob", job.name, "-n", job.namespace).stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "STATUS", "MINAVAILABLE", "RUNNINGS"]
    return lines[1].split()[:4]


# ---------------------------------------------------------------------------------------------
# 1. Seed 003 end to end.


def test_seed_job_end_to_end(new_vcjob: NewJob, namespace: str) -> None:
    # Created with mpiworker replicas 1 (the seed's PUT scales it to 2 below) and a TTL, which may
    # be set only at creation.
    job = new_vcjob(seed_job(namespace, workers=1, ttl=3))
    assert job.name == SEED_NAME
    master, worker0, worker1 = (
        job.pod_name(t, i) for t, i in (("mpimaster", 0), ("mpiworker", 0), ("mpiworker", 1))
    )

    pods = job.wait_pods_running(master, worker0)
    running = wait_running(job, 2)
    uid = running["metadata"]["uid"]
    tasks = ("mpimaster", "mpiworker")
    check_pod(job, pods[master], "mpimaster", 0, uid, tasks)
    check_pod(job, pods[worker0], "mpiworker", 0, uid, tasks)
    check_service(job, uid)
    check_configmap(job, uid, workers=1)
    ssh = check_secret(job, uid, workers=1)

    status = running["status"]
    assert status["controlledResources"] == PLUGIN_RESOURCES
    assert (status["minAvailable"], status["running"]) == (2, 2)
    assert status["taskStatusCount"] == {
        "mpimaster": {"phase": {"Running": 1}},
        "mpiworker": {"phase": {"Running": 1}},
    }
    assert not {"pending", "succeeded", "failed", "version", "retryCount"} & status.keys(), "omitempty"
    assert condition_phases(running) == ["Pending", "Inqueue", "Running"]
    assert kubectl_columns(job) == [job.name, "Running", "2", "2"]

    fallback = job.wait_event("SchedulerFallback")
    assert fallback.type == "Warning"
    assert '"default-scheduler"' in fallback.message and "minAvailable 2" in fallback.message
    assert [e.reason for e in job.events()].count("SchedulerFallback") == 1, "only on the first admission"

    # PUT of the seed body (mpiworker replicas 2). The job was created with a TTL, which may not
    # change: the body carries it (test_refused_updates shows the refusal otherwise).
    put = seed_request()
    put["spec"]["ttlSecondsAfterFinished"] = 3
    job.replace(put)
    scaled = job.wait_pods_running(master, worker0, worker1)
    assert uids(scaled)[master] == uids(pods)[master] and uids(scaled)[worker0] == uids(pods)[worker0]
    check_pod(job, scaled[worker1], "mpiworker", 1, uid, tasks)
    job.wait(lambda: job.hostfile() == [fqdn(job, "mpiworker", 0), fqdn(job, "mpiworker", 1)], "hostfile")
    check_configmap(job, uid, workers=2)
    three = wait_running(job, 3)
    assert three["status"]["taskStatusCount"]["mpiworker"] == {"phase": {"Running": 2}}
    assert three["status"]["minAvailable"] == 2
    assert secret_files(job.secret()) == ssh, "the ssh Secret is never rewritten while the job lives"

    # The master finishes: TaskCompleted -> CompleteJob -> Completing -> Completed.
    before = three["metadata"]["resourceVersion"]
    job.finish("mpimaster", 0, exit_code=0)
    completed = job.wait_phase("Completed")
    left = job.pods()
    assert job.get() is not None, "the pods above were listed before any TTL deletion"
    assert left[master].status.phase == "Succeeded", "a finished pod is kept"
    for worker in (worker0, worker1):
        assert worker not in left or left[worker].metadata.deletion_timestamp, f"{worker} is terminated"
    state = completed["status"]["state"]
    # TTL 3 s, counted from the Completed transition (second precision): not before...
    finished_at = parse_time(state["lastTransitionTime"])
    sleep_until_wall(finished_at + 2.5)
    assert job.get() is not None, "deleted before ttlSecondsAfterFinished"
    assert (state["reason"], state["message"]) == ("CompleteJob", "Task mpimaster completed")
    assert completed["status"]["version"] == 1
    assert completed["status"]["succeeded"] == 1
    assert "running" not in completed["status"]
    assert "controlledResources" not in completed["status"], "a finished job drops its plugins' children"
    assert job.phases_since(before) == ["Completing", "Completed"]
    assert condition_phases(completed) == ["Pending", "Inqueue", "Running", "Completing", "Completed"]
    execute = job.wait_event("ExecuteAction")
    assert (execute.type, execute.message) == ("Normal", "Start to execute action CompleteJob ")

    # ...but soon after; the garbage collector removes the children.
    job.wait_deleted(timeout=30)
    job.wait(
        lambda: not job.pods() and job.service() is None and job.configmap() is None and job.secret() is None,
        "pods, Service, ConfigMap and Secret gone (garbage collector)",
        # On a just-started cluster the garbage collector learns of the Job CRD only at its next
        # discovery resync (30 s), so the master pod can outlive its job that long.
        timeout=120,
    )


# ---------------------------------------------------------------------------------------------
# 2. PodFailed -> RestartJob until maxRetry, then Failed.


def test_pod_failed_restarts_the_job_until_max_retry_then_fails(new_vcjob: NewJob, namespace: str) -> None:
    policy = {"event": "PodFailed", "action": "RestartJob"}
    job = new_vcjob(small_job(namespace, "restart-job", 1, policies=[policy], max_retry=2))
    pod = job.pod_name("worker", 0)
    first = job.wait_pods_running(pod)[pod]
    before = wait_running(job, 1)["metadata"]["resourceVersion"]
    key = secret_files(job.secret())

    job.finish("worker", 0, exit_code=1)
    second = job.wait(
        lambda: (
            (p := job.pods().get(pod)) is not None
            and p.metadata.uid != first.metadata.uid
            and p.status.phase == "Running"
            and p
        ),
        "the pod re-created",
    )
    restarted = job.wait_status(
        lambda s: (s.get("state") or {}).get("phase") == "Running" and s.get("retryCount") == 1,
        "Running again with retryCount 1",
    )
    assert restarted["status"]["version"] == 1
    assert second.metadata.annotations[JOB_VERSION_KEY] == "1"
    assert second.metadata.annotations[RETRY_COUNT_KEY] == "1"
    phases = job.phases_since(before)
    assert phases == ["Restarting", "Pending", "Inqueue", "Running"], phases
    execute = job.wait_event("ExecuteAction")
    assert execute.message == "Start to execute action RestartJob "
    # A whole-job restart removes the plugins' children; Pending makes them again (a new key).
    assert restarted["status"]["controlledResources"] == PLUGIN_RESOURCES
    assert secret_files(job.secret())["id_rsa"] != key["id_rsa"]

    job.finish("worker", 0, exit_code=1)
    failed = job.wait_phase("Failed")
    status = failed["status"]
    assert (status["retryCount"], status["version"]) == (2, 2)
    assert status["state"]["reason"] == "MaxRetryReached"
    assert status["state"]["message"] == "The job was restarted 2 times, reaching maxRetry 2"
    assert "Restarting" in condition_phases(failed)
    job.wait_status(lambda s: "controlledResources" not in s, "plugin children dropped")
    quiet()
    left = job.pods()
    assert list(left) == [pod], "no pod is re-created after the last allowed restart"
    assert left[pod].metadata.uid == second.metadata.uid, "the last failed pod is kept"
    assert left[pod].status.phase == "Failed"
    assert phase_of(job.get()) == "Failed"


# ---------------------------------------------------------------------------------------------
# 3. minAvailable and the §5.3 Running rules.


@pytest.mark.parametrize(
    ("min_available", "end"),
    [(3, "Failed"), (2, "Completed")],
    ids=["minAvailable-3-not-met", "minAvailable-2-met"],
)
def test_all_pods_finished_decides_by_min_available(
    new_vcjob: NewJob, namespace: str, min_available: int, end: str
) -> None:
    """3 replicas, no policy: one pod fails, two succeed. With minAvailable 3 (= the task's own
    minimum) the task has fewer successes than it needs: Failed; with 2, succeeded >= minAvailable:
    Completed. While pods still run, the failure alone changes nothing."""
    job = new_vcjob(small_job(namespace, "gang", 3, min_available=min_available, plugins=False))
    names = [job.pod_name("worker", i) for i in range(3)]
    pods = job.wait_pods_running(*names)
    wait_running(job, 3)

    job.finish("worker", 0, exit_code=1)
    still = job.wait_status(lambda s: s.get("failed") == 1 and s.get("running") == 2, "failed 1, running 2")
    assert phase_of(still) == "Running", "no policy: a failed pod alone does not end the job"
    job.finish("worker", 1, exit_code=0)
    job.finish("worker", 2, exit_code=0)

    done = job.wait_phase(end)
    status = done["status"]
    assert (status.get("succeeded"), status.get("failed"), status.get("running")) == (2, 1, None)
    assert status["minAvailable"] == min_available
    assert "reason" not in status["state"], "no action: the counts decided"
    assert uids(job.pods()) == uids(pods), "finished pods are kept, none re-created"
    assert "ExecuteAction" not in [e.reason for e in job.events()]


def test_min_available_not_met_while_a_pod_is_pending(new_vcjob: NewJob, namespace: str) -> None:
    """minAvailable 3 over two tasks, one of whose pods no node accepts: 2 run, 1 stays Pending, so
    the job is admitted (Inqueue) but never Running."""
    body = small_job(namespace, "pending-gang", 2, min_available=3, plugins=False)
    stuck = copy.deepcopy(task(body, "worker"))
    stuck.update(name="stuck", replicas=1)
    stuck["template"]["spec"]["nodeSelector"] = {"jobwarden.dev/no-such-node": "true"}
    body["spec"]["tasks"].append(stuck)
    job = new_vcjob(body)
    running = [job.pod_name("worker", i) for i in range(2)]
    pending = job.pod_name("stuck", 0)

    job.wait(
        lambda: all(job.pods().get(n) and job.pods()[n].status.phase == "Running" for n in running),
        "the worker pods Running",
    )
    inqueue = job.wait_status(
        lambda s: s.get("running") == 2 and s.get("pending") == 1, "running 2 pending 1"
    )
    assert phase_of(inqueue) == "Inqueue"
    quiet()
    status = job.status()
    assert status["state"]["phase"] == "Inqueue", "2 running < minAvailable 3: not Running"
    assert (status["running"], status["pending"], status["minAvailable"]) == (2, 1, 3)
    assert job.pods()[pending].status.phase == "Pending"
    assert "Running" not in condition_phases(job.body())


# ---------------------------------------------------------------------------------------------
# 4. AbortJob.


def test_pod_failed_aborts_the_job_keeping_finished_pods(new_vcjob: NewJob, namespace: str) -> None:
    policy = {"event": "PodFailed", "action": "AbortJob"}
    job = new_vcjob(small_job(namespace, "abort-job", 3, policies=[policy], ttl=1))
    names = [job.pod_name("worker", i) for i in range(3)]
    pods = job.wait_pods_running(*names)
    wait_running(job, 3)

    job.finish("worker", 0, exit_code=0)
    before = job.wait_status(lambda s: s.get("succeeded") == 1, "succeeded 1")["metadata"]["resourceVersion"]
    job.finish("worker", 1, exit_code=1)

    aborted = job.wait_phase("Aborted")
    state = aborted["status"]["state"]
    assert (state["reason"], state["message"]) == (
        "AbortJob",
        "Pod abort-job-worker-1 failed with exit code 1",
    )
    assert aborted["status"]["version"] == 1
    assert "controlledResources" not in aborted["status"]
    assert job.phases_since(before) == ["Aborting", "Aborted"]
    assert job.wait_event("ExecuteAction").message == "Start to execute action AbortJob "
    job.wait(lambda: set(job.pods()) == set(names[:2]), "the running pod deleted, the finished ones kept")
    left = job.pods()
    assert {n: p.status.phase for n, p in left.items()} == {names[0]: "Succeeded", names[1]: "Failed"}
    assert uids(left) == {n: uids(pods)[n] for n in names[:2]}
    job.wait(
        lambda: job.service() is None and job.configmap() is None and job.secret() is None,
        "the plugins' children removed",
    )

    # ttlSecondsAfterFinished 1 does not apply to Aborted.
    sleep_until_wall(parse_time(state["lastTransitionTime"]) + 1 + QUIET_SECONDS)
    assert phase_of(job.get()) == "Aborted", "an Aborted job is never deleted by TTL"
    assert set(job.pods()) == set(names[:2])


# ---------------------------------------------------------------------------------------------
# 5. Scale down by replace.


def test_scale_down_by_replace_deletes_the_highest_index(new_vcjob: NewJob, namespace: str) -> None:
    job = new_vcjob(seed_job(namespace, workers=2))
    master, worker0, worker1 = (
        job.pod_name(t, i) for t, i in (("mpimaster", 0), ("mpiworker", 0), ("mpiworker", 1))
    )
    pods = job.wait_pods_running(master, worker0, worker1)
    before = wait_running(job, 3)["metadata"]["resourceVersion"]
    assert job.hostfile() == [fqdn(job, "mpiworker", 0), fqdn(job, "mpiworker", 1)]

    put = seed_request()
    task(put, "mpiworker")["replicas"] = 1
    job.replace(put)

    left = job.wait_pods_running(master, worker0)
    assert uids(left) == {n: uids(pods)[n] for n in (master, worker0)}, "the others are untouched"
    job.wait(lambda: job.hostfile() == [fqdn(job, "mpiworker", 0)], "the hostfile rewritten")
    check_configmap(job, job.body()["metadata"]["uid"], workers=1)
    status = wait_running(job, 2)["status"]
    assert status["taskStatusCount"]["mpiworker"] == {"phase": {"Running": 1}}
    assert set(job.phases_since(before)) <= {"Running"}, "a scale-down is not a restart"
    assert "version" not in status


# ---------------------------------------------------------------------------------------------
# 6. Template change by replace.


def mode_of(pod: Any) -> str | None:
    return dict(env_of(pod)).get("MODE")


def test_template_change_applies_only_to_pods_created_afterwards(new_vcjob: NewJob, namespace: str) -> None:
    body = seed_job(namespace, workers=1)
    container(body, "mpiworker")["env"] = [{"name": "MODE", "value": "old"}]
    job = new_vcjob(body)
    master, worker0, worker1 = (
        job.pod_name(t, i) for t, i in (("mpimaster", 0), ("mpiworker", 0), ("mpiworker", 1))
    )
    pods = job.wait_pods_running(master, worker0)
    wait_running(job, 2)
    assert mode_of(pods[worker0]) == "old"

    put = seed_request()
    task(put, "mpiworker")["replicas"] = 1
    container(put, "mpiworker")["env"] = [{"name": "MODE", "value": "new"}]
    stored = job.replace(put)
    assert container(stored, "mpiworker")["env"] == [{"name": "MODE", "value": "new"}], "allowed for Volcano"

    quiet()
    same = job.wait_pods_running(master, worker0)
    assert uids(same) == uids(pods), "running pods are not re-created for a template change"
    assert mode_of(same[worker0]) == "old"

    task(put, "mpiworker")["replicas"] = 2
    job.replace(put)
    scaled = job.wait_pods_running(master, worker0, worker1)
    assert mode_of(scaled[worker1]) == "new", "a pod created afterwards gets the new template"
    assert env_of(scaled[worker1])[0] == ("MODE", "new") and ("VC_TASK_INDEX", "1") in env_of(scaled[worker1])
    assert scaled[worker0].metadata.uid == pods[worker0].metadata.uid
    assert mode_of(scaled[worker0]) == "old"


# ---------------------------------------------------------------------------------------------
# 7. An operator restart mid-lifecycle.


def test_operator_restart_mid_lifecycle(new_vcjob: NewJob, namespace: str, operator: LocalOperator) -> None:
    job = new_vcjob(seed_job(namespace, workers=1))
    master, worker0, worker1 = (
        job.pod_name(t, i) for t, i in (("mpimaster", 0), ("mpiworker", 0), ("mpiworker", 1))
    )
    pods = job.wait_pods_running(master, worker0)
    running = wait_running(job, 2)
    secret = job.secret()
    ssh = secret_files(secret)

    operator.restart()
    quiet()
    assert uids(job.wait_pods_running(master, worker0)) == uids(pods), "no duplicate or re-created pods"
    assert job.status() == running["status"], "the restarted operator recomputes the same status"
    assert job.secrets() == [f"{job.name}-ssh"], "no second ssh Secret"
    assert job.secret().metadata.uid == secret.metadata.uid and secret_files(job.secret()) == ssh
    assert job.phases_since(running["metadata"]["resourceVersion"]) in ([], ["Running"]), "not regressed"

    # The restarted operator still acts: a scale-up, then the master finishes while it is down.
    put = seed_request()
    job.replace(put)
    scaled = job.wait_pods_running(master, worker0, worker1)
    assert {n: uids(scaled)[n] for n in (master, worker0)} == uids(pods)
    job.wait(lambda: len(job.hostfile()) == 2, "hostfile with both workers")
    wait_running(job, 3)
    assert job.secrets() == [f"{job.name}-ssh"]
    assert job.secret().metadata.uid == secret.metadata.uid and secret_files(job.secret()) == ssh
    with operator.stopped():
        job.finish("mpimaster", 0, exit_code=0)
    completed = job.wait_phase("Completed")
    assert completed["status"]["state"]["reason"] == "CompleteJob"
    # Events are posted after the status write, so the test waits for this one before counting.
    job.wait_event("ExecuteAction")
    job.wait(lambda: set(job.pods()) == {master}, "the workers deleted, the master kept")
    reasons = [e.reason for e in job.events()]
    assert (reasons.count("SchedulerFallback"), reasons.count("ExecuteAction")) == (1, 1)
    assert job.secret() is None and job.secrets() == []


# ---------------------------------------------------------------------------------------------
# 8. Refused updates (admission in depth is covered by test_admission_webhook.py).


def test_refused_updates_name_the_path(new_vcjob: NewJob, namespace: str) -> None:
    job = new_vcjob(seed_job(namespace, workers=1, ttl=60))
    created = job.body()

    def add_task(body: Body) -> None:
        body["spec"]["tasks"].append({**copy.deepcopy(task(body, "mpiworker")), "name": "extra"})

    def drop_ttl(body: Body) -> None:
        body["spec"].pop("ttlSecondsAfterFinished")

    cases: list[tuple[Callable[[Body], object], str]] = [
        (add_task, "spec.tasks: job updates may not add or remove tasks"),
        (lambda b: b["spec"].update(schedulerName=DEFAULT_SCHEDULER), "spec.schedulerName"),
        (drop_ttl, "spec.ttlSecondsAfterFinished"),
    ]
    for change, path in cases:
        exc = job.refused(change)
        assert exc.status == 403, message_of(exc)
        message = message_of(exc)
        # The policy (evaluated first) or the webhook: both are jobwarden's and name the path.
        assert (
            message.startswith('admission webhook "validate.jobwarden.dev" denied the request: ')
            or "ValidatingAdmissionPolicy 'jobwarden-updates.batch.volcano.sh'" in message
        ), message
        assert path in message, message
    assert job.body()["spec"] == created["spec"], "nothing was stored"
