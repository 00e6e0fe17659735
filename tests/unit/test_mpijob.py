"""MPIJob (kubeflow.org/v2beta1) as mpi-operator v0.8 runs it. The tests named `test_upstream_*` carry
over the expectations of upstream's own controller tests (pkg/controller/mpi_job_controller_test.go at
release-0.8, v0.8.2), rewritten for jobwarden's pure plan: the children a sync creates, their env, the
status it writes. Where jobwarden differs on purpose (docs/behaviour.md, "MPIJob") the test says so."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from mpijob_helpers import (
    NOW,
    STAMP,
    MpiCluster,
    condition,
    conditions_without_times,
    created,
    deleted,
    env_entries,
    later,
    mpijob,
    observed_job,
    pod_in,
    with_status,
)

from jobwarden import kinds
from jobwarden.core.plan import Event, Observed, Settings
from jobwarden.kinds.kubeflow import MPIJOB
from jobwarden.kinds.kubeflow.mpijob import children
from jobwarden.kinds.kubeflow.mpijob.spec import read_mpijob

IMPLEMENTATIONS = ["OpenMPI", "Intel", "MPICH"]
MANAGED = {"app.kubernetes.io/managed-by": "jobwarden"}
SSH_ITEMS = [
    {"key": "ssh-privatekey", "path": "id_rsa"},
    {"key": "ssh-publickey", "path": "id_rsa.pub"},
    {"key": "ssh-publickey", "path": "authorized_keys"},
]
CONFIG_ITEMS = [
    {"key": "hostfile", "path": "hostfile", "mode": 0o444},
    {"key": "discover_hosts.sh", "path": "discover_hosts.sh", "mode": 0o555},
]
OMPI_ENV = [
    ("OMPI_MCA_orte_keep_fqdn_hostnames", "true"),
    ("OMPI_MCA_orte_default_hostfile", "/etc/mpi/hostfile"),
    ("OMPI_MCA_plm_rsh_args", "-o ConnectionAttempts=10"),
]
INTEL_ENV = [
    ("I_MPI_HYDRA_HOST_FILE", "/etc/mpi/hostfile"),
    ("I_MPI_HYDRA_BOOTSTRAP_EXEC_EXTRA_ARGS", "-o ConnectionAttempts=10"),
]
MPICH_ENV = [
    ("HYDRA_HOST_FILE", "/etc/mpi/hostfile"),
    ("HYDRA_LAUNCH_EXTRA_ARGS", "-o ConnectionAttempts=10"),
]
NVIDIA_CLEARED = [("NVIDIA_VISIBLE_DEVICES", None), ("NVIDIA_DRIVER_CAPABILITIES", None)]
CREATED = ("Created", "True", "MPIJobCreated", "MPIJob default/test is created.")


def plan_of(job: dict[str, Any], **children_by_kind: dict[str, Any]) -> Any:
    return MPIJOB.plan(Observed(job, children_by_kind, NOW, Settings()))


# ---------------------------------------------------------------------------------------------
# The sync cases of mpi_job_controller_test.go


def test_upstream_do_nothing_with_invalid_mpijob() -> None:
    """TestDoNothingWithInvalidMPIJob: an empty MPIJob creates nothing; upstream posts ValidationError."""
    job = {"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob"}
    job["metadata"] = {"name": "foo", "namespace": "bar", "uid": "u"}
    plan = plan_of(job)
    assert plan.create == [] and plan.status is None
    assert [e.reason for e in plan.events] == ["ValidationError"]
    assert plan.events[0].message.startswith("Found validation errors: spec: Required value")


def test_upstream_do_nothing_with_mpijob_managed_externally() -> None:
    """TestDoNothingWithMPIJobManagedExternally: MultiKueue's job gets no action at all."""
    job = mpijob(workers=1, runPolicy={"managedBy": "kueue.x-k8s.io/multikueue"})
    assert plan_of(job).is_noop
    ours = mpijob(workers=1, runPolicy={"managedBy": "kubeflow.org/mpi-operator"})
    assert created(plan_of(ours), "Job")


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_upstream_all_resources_created(implementation: str) -> None:
    """TestAllResourcesCreated: Service, ConfigMap, Secret, 5 workers and the launcher Job at once;
    the status gets Created and empty Launcher and Worker counts."""
    job = with_status(mpijob("foo", 5, mpiImplementation=implementation), startTime=STAMP)
    plan = plan_of(job)
    assert [(m["kind"], m["metadata"]["name"]) for m in plan.create] == [
        ("Service", "foo"),
        ("ConfigMap", "foo-config"),
        ("Secret", "foo-ssh"),
        *[("Pod", f"foo-worker-{i}") for i in range(5)],
        ("Job", "foo-launcher"),
    ]
    assert conditions_without_times(plan.status) == [
        ("Created", "True", "MPIJobCreated", "MPIJob default/foo is created.")
    ]
    assert plan.status["replicaStatuses"] == {"Launcher": {}, "Worker": {}}
    assert Event("Normal", "MPIJobCreated", "MPIJob default/foo is created.") in plan.events
    config = created(plan, "ConfigMap")["foo-config"]
    assert config["data"]["discover_hosts.sh"] == "#!/bin/sh\n"
    separator = " slots=1\n" if implementation == "OpenMPI" else ":1\n"
    assert config["data"]["hostfile"] == "".join(
        f"foo-worker-{i}.foo.default.svc{separator}" for i in range(5)
    )


def test_upstream_launcher_not_controlled_by_us() -> None:
    """TestLauncherNotControlledByUs: upstream errors on a foreign `<job>-launcher`. Plans only see
    children the job controls, so the plan asks to create it; the shell's create answers 409 and, the
    Job not being the MPIJob's, shows the fault (`ForeignChild`, shell/controller.py) as for any kind."""
    plan = plan_of(with_status(mpijob(workers=64), startTime=STAMP))
    assert "test-launcher" in created(plan, "Job")


def _launcher(job: dict[str, Any], **status: Any) -> dict[str, Any]:
    launcher = observed_job(children.launcher_job(read_mpijob(job)), **status)
    launcher["metadata"]["uid"] = "launcher-uid"
    return launcher


def _launcher_pod(
    launcher: dict[str, Any], name: str, phase: str, created: str = STAMP, **status: str
) -> dict[str, Any]:
    """upstream mockJobPod: a pod controlled by the launcher Job."""
    ref = {"apiVersion": "batch/v1", "kind": "Job", "name": launcher["metadata"]["name"]}
    ref |= {"uid": launcher["metadata"]["uid"], "controller": True}
    meta = {"name": name, "namespace": "default", "ownerReferences": [ref], "creationTimestamp": created}
    return {"kind": "Pod", "metadata": meta, "status": {"phase": phase, **status}}


def test_upstream_launcher_succeeded() -> None:
    """TestLauncherSucceeded: Launcher succeeded 1, the Job's completion, Running False ("never set")."""
    job = with_status(mpijob(workers=64), startTime=STAMP, completionTime=STAMP)
    launcher = _launcher(
        job,
        conditions=[{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}],
        startTime=STAMP,
    )
    plan = plan_of(job, Job={"test-launcher": launcher})
    assert plan.status["replicaStatuses"] == {"Launcher": {"succeeded": 1}, "Worker": {}}
    assert plan.status["completionTime"] == STAMP
    # jobwarden: Running False sits before Succeeded so that STATE shows the outcome.
    assert conditions_without_times(plan.status) == [
        CREATED,
        (
            "Running",
            "False",
            "MPIJobRunning",
            "MPIJob default/test is finished but Running condition was never set.",
        ),
        ("Succeeded", "True", "MPIJobSucceeded", "MPIJob default/test successfully completed."),
    ]
    assert plan.create == []


def test_upstream_launcher_succeeded_with_running_pod() -> None:
    """TestLauncherSucceededWithRunningPod: a Running condition already set turns False, keeping its
    reason and message; it is not re-emitted as True next to Succeeded."""
    running = condition("Running", "MPIJobRunning", "MPIJob default/test is running.")
    job = with_status(
        mpijob(workers=64),
        startTime=STAMP,
        completionTime=STAMP,
        conditions=[condition("Created", "MPIJobCreated", "MPIJob default/test is created."), running],
    )
    launcher = _launcher(
        job,
        conditions=[{"type": "Complete", "status": "True"}],
        ready=1,
        completionTime="2024-05-01T12:01:00Z",
    )
    plan = plan_of(job, Job={"test-launcher": launcher})
    assert plan.status["replicaStatuses"] == {"Launcher": {"succeeded": 1}, "Worker": {}}
    assert conditions_without_times(plan.status) == [
        CREATED,
        ("Running", "False", "MPIJobRunning", "MPIJob default/test is running."),
        ("Succeeded", "True", "MPIJobSucceeded", "MPIJob default/test successfully completed."),
    ]
    assert plan.status["completionTime"] == STAMP  # already set: kept


def test_upstream_launcher_failed() -> None:
    """TestLauncherFailed: past the backoff limit, the Job's reason and message with the last failed
    launcher pod's appended (`BackoffLimitExceeded/FailedReason2`, `...: second message`); Launcher
    failed 2."""
    job = with_status(mpijob(workers=64), startTime=STAMP, completionTime=STAMP)
    failed = {
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    launcher = _launcher(
        job, conditions=[{"type": "FailureTarget", **failed}, {"type": "Failed", **failed}], failed=2
    )
    pods = {
        "test-launcher-a": _launcher_pod(
            launcher, "test-launcher-a", "Failed", "2024-05-01T11:00:00Z",
            reason="FailedReason1", message="first message",
        ),
        "test-launcher-b": _launcher_pod(
            launcher, "test-launcher-b", "Failed", "2024-05-01T11:00:01Z",
            reason="FailedReason2", message="second message",
        ),
    }  # fmt: skip
    plan = plan_of(job, Job={"test-launcher": launcher}, Pod=pods)
    assert plan.status["replicaStatuses"] == {"Launcher": {"failed": 2}, "Worker": {}}
    never = "MPIJob default/test is finished but Running condition was never set."
    reason, message = (
        "BackoffLimitExceeded/FailedReason2",
        "Job has reached the specified backoff limit: second message",
    )
    assert conditions_without_times(plan.status) == [
        CREATED,
        ("Running", "False", "MPIJobRunning", never),
        ("Failed", "True", reason, message),
    ]
    assert Event("Warning", reason, message) in plan.events
    # A failure with no pod left to read, or another reason: the Job's own words.
    plan = plan_of(job, Job={"test-launcher": launcher})
    assert plan.status["conditions"][-1]["reason"] == "BackoffLimitExceeded"


def test_upstream_shutdown_worker() -> None:
    """TestShutdownWorker: a Succeeded job with cleanPodPolicy All deletes its 8 workers and resets the
    Worker counts."""
    job = mpijob(workers=8)
    done = condition("Succeeded", "MPIJobSucceeded", "MPIJob default/test successfully completed.")
    job = with_status(job, startTime=STAMP, completionTime=STAMP, conditions=[done])
    pods = {f"test-worker-{i}": children.worker_pod(read_mpijob(job), i, Settings()) for i in range(8)}
    plan = plan_of(job, Pod=pods)
    assert deleted(plan, "Pod") == set(pods)
    assert plan.status["replicaStatuses"] == {"Worker": {}}
    assert plan.create == []


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_upstream_create_suspended_mpijob(implementation: str) -> None:
    """TestCreateSuspendedMPIJob: Service, ConfigMap, Secret and a suspended launcher Job, no workers;
    Suspended True and Running False, no startTime."""
    job = mpijob(
        workers=8, mpiImplementation=implementation, runPolicy={"cleanPodPolicy": "All", "suspend": True}
    )
    plan = plan_of(job)
    assert [(m["kind"], m["metadata"]["name"]) for m in plan.create] == [
        ("Service", "test"),
        ("ConfigMap", "test-config"),
        ("Secret", "test-ssh"),
        ("Job", "test-launcher"),
    ]
    assert created(plan, "Job")["test-launcher"]["spec"]["suspend"] is True
    assert plan.status["replicaStatuses"] == {"Launcher": {}, "Worker": {}}
    assert "startTime" not in plan.status
    # jobwarden: Running False before Suspended, so that STATE shows Suspended.
    assert conditions_without_times(plan.status) == [
        CREATED,
        ("Running", "False", "MPIJobSuspended", "MPIJob default/test is suspended."),
        ("Suspended", "True", "MPIJobSuspended", "MPIJob suspended"),
    ]
    assert Event("Normal", "MPIJobSuspended", "MPIJob suspended") in plan.events


def _running_cluster(workers: int = 8) -> MpiCluster:
    cluster = MpiCluster(mpijob(workers=workers))
    cluster.step()
    for i in range(workers):
        cluster.set_pod(f"test-worker-{i}", "Running", ready=True)
    cluster.set_launcher_status(active=1, ready=1, startTime=STAMP)
    cluster.step(later(5))
    return cluster


def test_upstream_suspended_running_mpijob() -> None:
    """TestSuspendedRunningMPIJob: suspending a running job suspends the launcher Job and deletes the
    workers; Suspended True, Running False; the launcher pod stays counted until its Job removes it."""
    cluster = _running_cluster()
    assert cluster.status["replicaStatuses"] == {"Launcher": {"active": 1}, "Worker": {"active": 8}}
    cluster.job["spec"]["runPolicy"]["suspend"] = True
    plan = cluster.step(later(10))
    assert [p["spec"] for p in plan.patch] == [{"suspend": True}]
    assert deleted(plan, "Pod") == {f"test-worker-{i}" for i in range(8)}
    assert cluster.status["replicaStatuses"] == {"Launcher": {"active": 1}, "Worker": {}}
    assert conditions_without_times(cluster.status) == [
        CREATED,
        ("Running", "False", "MPIJobSuspended", "MPIJob default/test is suspended."),
        ("Suspended", "True", "MPIJobSuspended", "MPIJob suspended"),
    ]


LAUNCHER_LABELS = {
    "training.kubeflow.org/operator-name": "mpi-operator",
    "training.kubeflow.org/job-name": "test",
    "training.kubeflow.org/job-role": "launcher",
    **MANAGED,
}
NO_DIRECTIVES = {"nodeSelector": None, "tolerations": None, "schedulingGates": None}


def test_upstream_resume_mpijob() -> None:
    """TestResumeMPIJob: resuming creates the workers, unsuspends the launcher Job with its scheduling
    directives synced, sets Suspended False (MPIJobResumed) and startTime to now."""
    cluster = MpiCluster(mpijob(workers=8, runPolicy={"cleanPodPolicy": "All", "suspend": True}))
    cluster.step()
    cluster.job["spec"]["runPolicy"]["suspend"] = False
    plan = cluster.step(later(1))
    assert set(created(plan, "Pod")) == {f"test-worker-{i}" for i in range(8)}
    template = {"metadata": {"labels": LAUNCHER_LABELS}, "spec": NO_DIRECTIVES}
    assert [p["spec"] for p in plan.patch] == [{"suspend": False, "template": template}]
    assert cluster.status["startTime"] == "2024-05-01T12:00:01Z"
    assert ("Suspended", "False", "MPIJobResumed", "MPIJob resumed") in conditions_without_times(
        cluster.status
    )
    assert Event("Normal", "MPIJobResumed", "MPIJob resumed") in plan.events


def test_upstream_resume_mpijob_with_existing_launcher() -> None:
    """TestResumeMPIJobWithExistingLauncher: Kueue put a nodeSelector, a toleration, a scheduling
    gate and an annotation into the suspended job's launcher template after the launcher Job was made:
    the resume's patch carries them (KEP-2926) with suspend false."""
    cluster = MpiCluster(mpijob(workers=8, runPolicy={"cleanPodPolicy": "All", "suspend": True}))
    cluster.step()
    template = cluster.job["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]
    toleration = {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    template["spec"].update(
        nodeSelector={"foo": "bar"},
        tolerations=[toleration],
        schedulingGates=[{"name": "kueue.x-k8s.io/topology"}],
    )
    template["metadata"] = {"annotations": {"kueue.x-k8s.io/workload": "my-workload"}}
    cluster.job["spec"]["runPolicy"]["suspend"] = False
    [patch] = cluster.step(later(1)).patch
    assert patch["spec"] == {
        "suspend": False,
        "template": {
            "metadata": {
                "labels": LAUNCHER_LABELS,
                "annotations": {"kueue.x-k8s.io/workload": "my-workload"},
            },
            "spec": {
                "nodeSelector": {"foo": "bar"},
                "tolerations": [toleration],
                "schedulingGates": [{"name": "kueue.x-k8s.io/topology"}],
            },
        },
    }


def test_upstream_resume_mpijob_clears_start_time() -> None:
    """TestResumeMPIJobClearsStartTime: a launcher Job that ran before its suspension (startTime set)
    refuses template changes; upstream clears startTime through the Job's status subresource first.
    jobwarden does not write other controllers' status: it only unsuspends (docs/behaviour.md)."""
    cluster = MpiCluster(mpijob(workers=8, runPolicy={"cleanPodPolicy": "All", "suspend": True}))
    cluster.step()
    cluster.set_launcher_status(startTime=STAMP)
    cluster.job["spec"]["runPolicy"]["suspend"] = False
    assert [p["spec"] for p in cluster.step(later(1)).patch] == [{"suspend": False}]


def test_upstream_launcher_active_worker_not_ready() -> None:
    """TestLauncherActiveWorkerNotReady: a running launcher and pending workers: Launcher active 1,
    no Running condition."""
    job = with_status(mpijob(workers=8), startTime=STAMP)
    mpi = read_mpijob(job)
    pods = {mpi.worker_name(i): pod_in(children.worker_pod(mpi, i, Settings()), "Pending") for i in range(8)}
    launcher = _launcher(job, active=1)
    pods["test-launcher-x"] = _launcher_pod(launcher, "test-launcher-x", "Running")
    plan = plan_of(job, Job={"test-launcher": launcher}, Pod=pods)
    assert plan.status["replicaStatuses"] == {"Launcher": {"active": 1}, "Worker": {}}
    assert conditions_without_times(plan.status) == [CREATED]


def test_upstream_launcher_active_worker_ready() -> None:
    """TestLauncherActiveWorkerReady: every worker Running and the launcher running: Running True,
    Worker active 8, discover_hosts.sh lists the 8 workers."""
    job = with_status(mpijob(workers=8), startTime=STAMP)
    mpi = read_mpijob(job)
    pods = {mpi.worker_name(i): pod_in(children.worker_pod(mpi, i, Settings()), "Running") for i in range(8)}
    launcher = _launcher(job, active=1)
    pods["test-launcher-x"] = _launcher_pod(launcher, "test-launcher-x", "Running")
    plan = plan_of(job, Job={"test-launcher": launcher}, Pod=pods)
    assert plan.status["replicaStatuses"] == {"Launcher": {"active": 1}, "Worker": {"active": 8}}
    assert conditions_without_times(plan.status) == [
        CREATED,
        ("Running", "True", "MPIJobRunning", "MPIJob default/test is running."),
    ]
    assert Event("Normal", "MPIJobRunning", "MPIJob default/test is running") in plan.events
    script = created(plan, "ConfigMap")["test-config"]["data"]["discover_hosts.sh"]
    assert script == "#!/bin/sh\n" + "".join(f"echo test-worker-{i}.test.default.svc\n" for i in range(8))


def test_upstream_worker_ready() -> None:
    """TestWorkerReady: 16 Running workers and no launcher yet: the launcher Job is created, Worker
    active 16, Launcher counted from the new (empty) Job."""
    job = with_status(mpijob(workers=16), startTime=STAMP)
    mpi = read_mpijob(job)
    pods = {mpi.worker_name(i): pod_in(children.worker_pod(mpi, i, Settings()), "Running") for i in range(16)}
    plan = plan_of(job, Pod=pods)
    assert set(created(plan, "Job")) == {"test-launcher"}
    assert plan.status["replicaStatuses"] == {"Launcher": {}, "Worker": {"active": 16}}
    assert conditions_without_times(plan.status) == [CREATED]


# ---------------------------------------------------------------------------------------------
# TestNewLauncherAndWorker: the launcher Job and a worker Pod, field by field


def _new(job: dict[str, Any], index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    mpi = read_mpijob(job)
    return children.launcher_job(mpi), children.worker_pod(mpi, index, Settings())


def _bare(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    empty = {"template": {"spec": {"containers": [{}]}}}
    return {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "metadata": {"name": name, "namespace": namespace, "uid": "u"},
        "spec": {"mpiReplicaSpecs": {"Launcher": dict(empty), "Worker": dict(empty)}, **spec},
    }


def test_upstream_new_launcher_and_worker_defaults() -> None:
    launcher, worker = _new(_bare("foo", "bar"), 0)
    assert launcher["metadata"]["name"] == "foo-launcher" and launcher["metadata"]["namespace"] == "bar"
    assert launcher["metadata"]["labels"] == {"app": "foo", **MANAGED}
    assert launcher["metadata"]["ownerReferences"][0]["controller"] is True
    assert launcher["spec"] == {
        "podReplacementPolicy": "Failed",
        "template": {
            "metadata": {
                "labels": {
                    "training.kubeflow.org/operator-name": "mpi-operator",
                    "training.kubeflow.org/job-name": "foo",
                    "training.kubeflow.org/job-role": "launcher",
                    **MANAGED,  # jobwarden: so that its pod watch sees the launcher's pods
                }
            },
            "spec": {
                "hostname": "foo-launcher",
                "subdomain": "foo",
                "restartPolicy": "OnFailure",
                "containers": [
                    {
                        "env": [
                            {"name": "K_MPI_JOB_ROLE", "value": "launcher"},
                            *({"name": k, "value": v} for k, v in OMPI_ENV),
                            {"name": "OMPI_MCA_orte_set_default_slots", "value": "1"},
                            {"name": "NVIDIA_VISIBLE_DEVICES"},
                            {"name": "NVIDIA_DRIVER_CAPABILITIES"},
                        ],
                        "volumeMounts": [
                            {"name": "ssh-auth", "mountPath": "/root/.ssh"},
                            {"name": "mpi-job-config", "mountPath": "/etc/mpi"},
                        ],
                    }
                ],
                "volumes": [
                    {
                        "name": "ssh-auth",
                        "secret": {"secretName": "foo-ssh", "items": SSH_ITEMS, "defaultMode": 0o600},
                    },
                    {"name": "mpi-job-config", "configMap": {"name": "foo-config", "items": CONFIG_ITEMS}},
                ],
            },
        },
    }
    assert worker["metadata"]["name"] == "foo-worker-0"
    assert worker["metadata"]["labels"] == {
        "training.kubeflow.org/operator-name": "mpi-operator",
        "training.kubeflow.org/job-name": "foo",
        "training.kubeflow.org/job-role": "worker",
        "training.kubeflow.org/replica-index": "0",
        **MANAGED,
    }
    assert worker["spec"] == {
        "hostname": "foo-worker-0",
        "subdomain": "foo",
        "dnsConfig": {"searches": ["foo.bar.svc.cluster.local"]},
        "restartPolicy": "Never",
        "containers": [
            {
                "command": ["/usr/sbin/sshd", "-De"],
                "env": [{"name": "K_MPI_JOB_ROLE", "value": "worker"}],
                "volumeMounts": [{"name": "ssh-auth", "mountPath": "/root/.ssh"}],
            }
        ],
        "volumes": [
            {
                "name": "ssh-auth",
                "secret": {"secretName": "foo-ssh", "items": SSH_ITEMS, "defaultMode": 0o600},
            }
        ],
    }


def test_upstream_new_launcher_and_worker_launcher_as_worker() -> None:
    """The launcher gets replica-index 0 and keeps the GPUs; workers count from 1."""
    launcher, worker = _new(_bare("foo", "bar", runLauncherAsWorker=True), 0)
    template = launcher["spec"]["template"]
    assert template["metadata"]["labels"]["training.kubeflow.org/replica-index"] == "0"
    assert env_entries(template["spec"]["containers"][0]) == [
        ("K_MPI_JOB_ROLE", "launcher"),
        *OMPI_ENV,
        ("OMPI_MCA_orte_set_default_slots", "1"),
    ]
    assert worker["metadata"]["labels"]["training.kubeflow.org/replica-index"] == "1"


def test_upstream_new_launcher_and_worker_overrides() -> None:
    """Intel MPI, 5 slots, a custom ssh path (no defaultMode), host network, run policy on the Job,
    the user's env first, a worker with its own command at index 12."""
    launcher_template = {
        "metadata": {"labels": {"foo": "bar"}},
        "spec": {
            "hostNetwork": True,
            "containers": [
                {
                    "env": [{"name": "FOO", "value": "bar"}],
                    "securityContext": {"runAsUser": 1000},
                    "volumeMounts": [{"name": "fool-vol", "mountPath": "/mnt/foo"}],
                },
                {},
            ],
            "volumes": [{"name": "foo-vol"}],
        },
    }
    worker_template = {
        "spec": {
            "hostNetwork": True,
            "containers": [{"command": ["/entrypoint.sh"], "env": [{"name": "FOO", "value": "bar"}]}],
        }
    }
    job = _bare(
        "bar",
        "foo",
        sshAuthMountPath="/home/mpiuser/.ssh",
        slotsPerWorker=5,
        mpiImplementation="Intel",
        runPolicy={"ttlSecondsAfterFinished": 1, "activeDeadlineSeconds": 2, "backoffLimit": 3},
    )
    job["spec"]["mpiReplicaSpecs"] = {
        "Launcher": {"restartPolicy": "OnFailure", "template": launcher_template},
        "Worker": {"template": worker_template},
    }
    launcher, worker = _new(job, 12)
    spec = launcher["spec"]
    assert (spec["ttlSecondsAfterFinished"], spec["activeDeadlineSeconds"], spec["backoffLimit"]) == (1, 2, 3)
    template = spec["template"]
    assert template["metadata"]["labels"]["foo"] == "bar"
    pod = template["spec"]
    assert (pod["hostNetwork"], pod["dnsPolicy"], pod["hostname"], pod["subdomain"]) == (
        True,
        "ClusterFirstWithHostNet",
        "bar-launcher",
        "bar",
    )
    first = pod["containers"][0]
    assert first["securityContext"] == {"runAsUser": 1000}
    assert env_entries(first) == [
        ("FOO", "bar"),
        ("K_MPI_JOB_ROLE", "launcher"),
        *INTEL_ENV,
        ("I_MPI_PERHOST", "5"),
        *NVIDIA_CLEARED,
    ]
    assert first["volumeMounts"] == [
        {"name": "fool-vol", "mountPath": "/mnt/foo"},
        {"name": "ssh-auth", "mountPath": "/home/mpiuser/.ssh"},
        {"name": "mpi-job-config", "mountPath": "/etc/mpi"},
    ]
    assert pod["containers"][1] == {}
    assert pod["volumes"] == [
        {"name": "foo-vol"},
        {"name": "ssh-auth", "secret": {"secretName": "bar-ssh", "items": SSH_ITEMS}},
        {"name": "mpi-job-config", "configMap": {"name": "bar-config", "items": CONFIG_ITEMS}},
    ]
    assert worker["metadata"]["name"] == "bar-worker-12"
    assert worker["metadata"]["labels"]["training.kubeflow.org/replica-index"] == "12"
    wspec = worker["spec"]
    assert (wspec["dnsPolicy"], wspec["hostname"], wspec["dnsConfig"]) == (
        "ClusterFirstWithHostNet",
        "bar-worker-12",
        {"searches": ["bar.foo.svc.cluster.local"]},
    )
    assert wspec["containers"][0]["command"] == ["/entrypoint.sh"]
    assert env_entries(wspec["containers"][0]) == [("FOO", "bar"), ("K_MPI_JOB_ROLE", "worker")]
    assert wspec["containers"][0]["volumeMounts"] == [{"name": "ssh-auth", "mountPath": "/home/mpiuser/.ssh"}]


def test_mpich_launcher_env_has_no_slots_variable() -> None:
    """upstream newLauncherPodTemplate: MPICH gets HYDRA_* and no slots variable (the hostfile has them)."""
    launcher, _ = _new(_bare("foo", "bar", mpiImplementation="MPICH", slotsPerWorker=3), 0)
    assert env_entries(launcher["spec"]["template"]["spec"]["containers"][0]) == [
        ("K_MPI_JOB_ROLE", "launcher"),
        *MPICH_ENV,
        *NVIDIA_CLEARED,
    ]


def test_a_users_variable_of_the_same_name_wins() -> None:
    """The family's rule (docs/behaviour.md): upstream appends its OMPI_MCA_plm_rsh_args after the
    user's, so the user's is overridden; jobwarden keeps the user's and adds no duplicate."""
    job = _bare("foo", "bar")
    job["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"] = [
        {"env": [{"name": "OMPI_MCA_plm_rsh_args", "value": "-p 2222"}]}
    ]
    launcher, _ = _new(job, 0)
    entries = env_entries(launcher["spec"]["template"]["spec"]["containers"][0])
    assert [v for k, v in entries if k == "OMPI_MCA_plm_rsh_args"] == ["-p 2222"]


# ---------------------------------------------------------------------------------------------
# TestNewConfigMap and TestUpdateDiscoverHostsInConfigMap


def _hostjob(name: str, namespace: str, implementation: str, workers: int, **spec: Any) -> Any:
    body = _bare(name, namespace, mpiImplementation=implementation, **spec)
    if workers:
        body["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"] = workers
    else:
        del body["spec"]["mpiReplicaSpecs"]["Worker"]
    return read_mpijob(body)


NEW_CONFIG_MAP_CASES = {
    "OpenMPI without slots, enable launcher as worker": (
        ("openmpi-without-slots", "tenant-a", "OpenMPI", 2, {"runLauncherAsWorker": True}),
        "",
        "openmpi-without-slots-launcher.openmpi-without-slots.tenant-a.svc slots=1\n"
        "openmpi-without-slots-worker-0.openmpi-without-slots.tenant-a.svc slots=1\n"
        "openmpi-without-slots-worker-1.openmpi-without-slots.tenant-a.svc slots=1\n",
    ),
    "OpenMPI with cluster domain, enable launcher as worker": (
        ("openmpi-without-slots", "tenant-a", "OpenMPI", 2, {"runLauncherAsWorker": True}),
        "cluster.local",
        "openmpi-without-slots-launcher.openmpi-without-slots.tenant-a.svc.cluster.local slots=1\n"
        "openmpi-without-slots-worker-0.openmpi-without-slots.tenant-a.svc.cluster.local slots=1\n"
        "openmpi-without-slots-worker-1.openmpi-without-slots.tenant-a.svc.cluster.local slots=1\n",
    ),
    "OpenMPI without slots, zero explicit workers": (
        ("openmpi-without-slots", "tenant-a", "OpenMPI", 0, {"runLauncherAsWorker": True}),
        "",
        "openmpi-without-slots-launcher.openmpi-without-slots.tenant-a.svc slots=1\n",
    ),
    "OpenMPI without slots, disable launcher as worker": (
        ("openmpi-without-slots", "tenant-a", "OpenMPI", 2, {}),
        "",
        "openmpi-without-slots-worker-0.openmpi-without-slots.tenant-a.svc slots=1\n"
        "openmpi-without-slots-worker-1.openmpi-without-slots.tenant-a.svc slots=1\n",
    ),
    "OpenMPI with slots": (
        ("openmpi-with-slots", "tenant-a", "OpenMPI", 1, {"slotsPerWorker": 10}),
        "",
        "openmpi-with-slots-worker-0.openmpi-with-slots.tenant-a.svc slots=10\n",
    ),
    "OpenMPI with cluster domain": (
        ("openmpi-with-slots", "tenant-a", "OpenMPI", 1, {}),
        "cluster.local",
        "openmpi-with-slots-worker-0.openmpi-with-slots.tenant-a.svc.cluster.local slots=1\n",
    ),
    "IntelMPI with slots": (
        ("intelmpi-with-slots", "project-x", "Intel", 1, {"slotsPerWorker": 10}),
        "",
        "intelmpi-with-slots-worker-0.intelmpi-with-slots.project-x.svc:10\n",
    ),
    "IntelMPI with cluster domain": (
        ("intelmpi-with-slots", "project-x", "Intel", 1, {}),
        "cluster.local",
        "intelmpi-with-slots-worker-0.intelmpi-with-slots.project-x.svc.cluster.local:1\n",
    ),
    "MPICH with slots": (
        ("mpich-with-slots", "project-x", "MPICH", 1, {"slotsPerWorker": 10}),
        "",
        "mpich-with-slots-worker-0.mpich-with-slots.project-x.svc:10\n",
    ),
    "MPICH with cluster domain": (
        ("mpich-with-slots", "project-x", "MPICH", 1, {}),
        "cluster.local",
        "mpich-with-slots-worker-0.mpich-with-slots.project-x.svc.cluster.local:1\n",
    ),
}


@pytest.mark.parametrize("case", NEW_CONFIG_MAP_CASES, ids=list(NEW_CONFIG_MAP_CASES))
def test_upstream_new_config_map(case: str) -> None:
    (name, namespace, implementation, workers, spec), domain, expected = NEW_CONFIG_MAP_CASES[case]
    job = _hostjob(name, namespace, implementation, workers, **spec)
    config = children.config_map(job, children.config_data(job, [], domain))
    assert config["metadata"]["name"] == f"{name}-config"
    assert config["metadata"]["labels"] == {"app": name, **MANAGED}
    assert config["data"]["hostfile"] == expected


DISCOVER_CASES = {
    "no cluster domain, launcher as worker disabled, no running pods": (
        ("test-job", "default", False),
        [],
        "",
        "#!/bin/sh\n",
    ),
    "no cluster domain, launcher as worker disabled, with running pods": (
        ("test-job", "default", False),
        ["test-job-worker-0", "test-job-worker-1"],
        "",
        "#!/bin/sh\necho test-job-worker-0.test-job.default.svc\n"
        "echo test-job-worker-1.test-job.default.svc\n",
    ),
    "no cluster domain, launcher as worker enabled, no running pods": (
        ("test-job", "default", True),
        [],
        "",
        "#!/bin/sh\necho test-job-launcher.test-job.default.svc\n",
    ),
    "no cluster domain, launcher as worker enabled, with running pods": (
        ("test-job", "default", True),
        ["test-job-worker-0", "test-job-worker-1"],
        "",
        "#!/bin/sh\necho test-job-launcher.test-job.default.svc\n"
        "echo test-job-worker-0.test-job.default.svc\n"
        "echo test-job-worker-1.test-job.default.svc\n",
    ),
    "with cluster domain, launcher as worker disabled, with running pods": (
        ("test-job", "tenant-a", False),
        ["test-job-worker-0"],
        "cluster.local",
        "#!/bin/sh\necho test-job-worker-0.test-job.tenant-a.svc.cluster.local\n",
    ),
    "with cluster domain, launcher as worker enabled, with running pods": (
        ("test-job", "tenant-a", True),
        ["test-job-worker-0"],
        "cluster.local",
        "#!/bin/sh\necho test-job-launcher.test-job.tenant-a.svc.cluster.local\n"
        "echo test-job-worker-0.test-job.tenant-a.svc.cluster.local\n",
    ),
    "pods are sorted by name": (
        ("test-job", "default", False),
        ["test-job-worker-2", "test-job-worker-0", "test-job-worker-1"],
        "",
        "#!/bin/sh\necho test-job-worker-0.test-job.default.svc\n"
        "echo test-job-worker-1.test-job.default.svc\n"
        "echo test-job-worker-2.test-job.default.svc\n",
    ),
}


@pytest.mark.parametrize("case", DISCOVER_CASES, ids=list(DISCOVER_CASES))
def test_upstream_update_discover_hosts_in_config_map(case: str) -> None:
    (name, namespace, as_worker), running, domain, expected = DISCOVER_CASES[case]
    job = _hostjob(name, namespace, "OpenMPI", 3, runLauncherAsWorker=as_worker)
    assert children.discover_hosts(job, running, domain) == expected


# ---------------------------------------------------------------------------------------------
# The rest of the life, step by step


def test_the_config_map_follows_the_running_workers() -> None:
    cluster = MpiCluster(mpijob(workers=2))
    cluster.step()
    cluster.set_pod("test-worker-1", "Running")
    plan = cluster.step(later(1))
    [replaced] = plan.replace
    assert replaced["data"]["discover_hosts.sh"] == "#!/bin/sh\necho test-worker-1.test.default.svc\n"
    assert replaced["metadata"]["resourceVersion"] == "1"  # replaced from the observed object


def test_wait_for_workers_ready_holds_the_launcher_back() -> None:
    cluster = MpiCluster(mpijob(workers=2, launcherCreationPolicy="WaitForWorkersReady"))
    first = cluster.step()
    assert created(first, "Pod") and not created(first, "Job")
    cluster.set_pod("test-worker-0", "Running", ready=True)
    cluster.set_pod("test-worker-1", "Running")
    assert not created(cluster.step(later(1)), "Job")
    cluster.set_pod("test-worker-1", "Running", ready=True)
    assert set(created(cluster.step(later(2)), "Job")) == {"test-launcher"}


def test_success_then_clean_up_on_the_next_pass() -> None:
    """created → Running → the launcher Job completes → Succeeded; cleanPodPolicy All removes the
    workers on the pass after (upstream: the finished branch of the next sync)."""
    cluster = _running_cluster(2)
    assert cluster.job["status"]["conditions"][-1]["type"] == "Running"
    cluster.set_launcher_status(
        succeeded=1,
        completionTime="2024-05-01T12:00:20Z",
        conditions=[{"type": "Complete", "status": "True"}],
    )
    plan = cluster.step(later(20))
    assert MPIJOB.phase(cluster.status) == "Succeeded"
    assert cluster.status["completionTime"] == "2024-05-01T12:00:20Z"
    assert not plan.delete
    plan = cluster.step(later(21))
    assert deleted(plan, "Pod") == {"test-worker-0", "test-worker-1"}
    assert cluster.step(later(22)).is_noop


def test_clean_pod_policy_running_keeps_finished_workers() -> None:
    job = mpijob(workers=2, clean_pod_policy="Running")
    done = condition("Failed", "BackoffLimitExceeded", "x")
    job = with_status(job, completionTime=STAMP, conditions=[done])
    mpi = read_mpijob(job)
    pods = {
        "test-worker-0": pod_in(children.worker_pod(mpi, 0, Settings()), "Running"),
        "test-worker-1": pod_in(children.worker_pod(mpi, 1, Settings()), "Succeeded"),
    }
    assert deleted(plan_of(job, Pod=pods), "Pod") == {"test-worker-0"}


def test_clean_pod_policy_none_is_the_default_and_leaves_the_workers() -> None:
    job = mpijob(workers=1, clean_pod_policy=None)
    job = with_status(job, completionTime=STAMP, conditions=[condition("Succeeded", "MPIJobSucceeded", "x")])
    pods = {"test-worker-0": pod_in(children.worker_pod(read_mpijob(job), 0, Settings()), "Running")}
    assert plan_of(job, Pod=pods).is_noop


def test_an_evicted_worker_fails_the_job_and_stops_the_launcher() -> None:
    """upstream MPIJobEvicted; jobwarden also sets completionTime and suspends a running launcher Job."""
    cluster = _running_cluster(2)
    cluster.set_pod("test-worker-1", "Failed", reason="Evicted")
    plan = cluster.step(later(9))
    failed = next(c for c in cluster.status["conditions"] if c["type"] == "Failed")
    assert (failed["reason"], failed["message"]) == ("MPIJobEvicted", "1/2 workers are evicted")
    assert cluster.status["completionTime"] == "2024-05-01T12:00:09Z"
    assert [p["spec"] for p in plan.patch] == [{"suspend": True}]
    assert deleted(plan, "Pod") == {"test-worker-0", "test-worker-1"}  # cleanPodPolicy All


def test_failed_workers_are_not_replaced() -> None:
    """As upstream: a failed worker (restartPolicy Never) stays; the launcher's mpirun and its Job's
    backoffLimit decide."""
    cluster = _running_cluster(2)
    cluster.set_pod("test-worker-0", "Failed")
    plan = cluster.step(later(9))
    assert not created(plan, "Pod") and not deleted(plan, "Pod")
    assert cluster.status["replicaStatuses"]["Worker"] == {"active": 1, "failed": 1}


def test_surplus_workers_are_deleted() -> None:
    job = with_status(mpijob(workers=1), startTime=STAMP)
    mpi = read_mpijob(with_status(mpijob(workers=3), startTime=STAMP))
    pods = {mpi.worker_name(i): pod_in(children.worker_pod(mpi, i, Settings()), "Running") for i in range(3)}
    assert deleted(plan_of(job, Pod=pods), "Pod") == {"test-worker-1", "test-worker-2"}


def test_deadline_and_ttl_changes_reach_the_launcher_job() -> None:
    cluster = _running_cluster(1)
    cluster.job["spec"]["runPolicy"]["activeDeadlineSeconds"] = 600
    plan = cluster.step(later(7))
    assert [p["spec"] for p in plan.patch] == [{"activeDeadlineSeconds": 600}]
    assert cluster.launcher["spec"]["activeDeadlineSeconds"] == 600
    assert cluster.step(later(8)).patch == []


def test_the_secret_is_asked_for_until_it_is_seen_and_materialized_as_upstream() -> None:
    plan = plan_of(with_status(mpijob(workers=1), startTime=STAMP))
    requested = created(plan, "Secret")["test-ssh"]
    assert "data" not in requested and requested["type"] == "kubernetes.io/ssh-auth"
    secret = MPIJOB.materialize(requested)
    assert "annotations" not in secret["metadata"]
    private = base64.b64decode(secret["data"]["ssh-privatekey"]).decode()
    public = base64.b64decode(secret["data"]["ssh-publickey"]).decode()
    assert private.startswith("-----BEGIN EC PRIVATE KEY-----")
    assert public.startswith("ecdsa-sha2-nistp521 ") and public.endswith("\n")
    again = plan_of(with_status(mpijob(workers=1), startTime=STAMP), Secret={"test-ssh": {"metadata": {}}})
    assert not created(again, "Secret")


def test_gang_scheduling_makes_a_podgroup_of_workers_plus_launcher() -> None:
    settings = Settings(gang_scheduler="volcano", volcano_scheduler_installed=True)
    job = with_status(mpijob(workers=3), startTime=STAMP)
    plan = MPIJOB.plan(Observed(job, {}, NOW, settings))
    group = created(plan, "PodGroup")["test"]
    assert group["spec"]["minMember"] == 4 and group["spec"]["queue"] == "default"
    pod = created(plan, "Pod")["test-worker-0"]
    assert pod["spec"]["schedulerName"] == "volcano"
    assert pod["metadata"]["annotations"]["scheduling.k8s.io/group-name"] == "test"
    template = created(plan, "Job")["test-launcher"]["spec"]["template"]
    assert template["spec"]["schedulerName"] == "volcano"
    assert template["metadata"]["annotations"]["scheduling.k8s.io/group-name"] == "test"


def test_phase_reads_the_outcome_first() -> None:
    status = {
        "conditions": [
            condition("Created", "a", "b"),
            condition("Running", "a", "b", "False"),
            condition("Succeeded", "a", "b"),
        ]
    }
    assert MPIJOB.phase(status) == "Succeeded"
    assert MPIJOB.phase({}) == ""


def test_registered_once_in_the_family() -> None:
    assert kinds.by_kind("kubeflow.org/v2beta1", "MPIJob") is MPIJOB
    assert kinds.by_plural("kubeflow.org", "mpijobs") is MPIJOB
    suspendable = kinds.by_plural("kubeflow.org", "mpijobs", kinds.registry(allow_suspend_updates=True))
    assert suspendable is not None and "spec.runPolicy.suspend" in suspendable.updatable_fields()


def test_a_terminating_launcher_still_decides_and_is_not_replaced() -> None:
    """ttlSecondsAfterFinished 0: the TTL controller deletes the finished launcher Job (foreground)
    perhaps before its success was seen; the terminating Job still says Complete."""
    cluster = _running_cluster(1)
    cluster.set_launcher_status(succeeded=1, conditions=[{"type": "Complete", "status": "True"}])
    cluster.launcher["metadata"]["deletionTimestamp"] = STAMP
    plan = cluster.step(later(9))
    assert MPIJOB.phase(cluster.status) == "Succeeded"
    assert not created(plan, "Job") and plan.patch == []
    running = MpiCluster(mpijob(workers=1))
    running.step()
    running.launcher["metadata"]["deletionTimestamp"] = STAMP  # deleted by someone, not finished
    running.set_launcher_status(active=1)
    assert not created(running.step(later(1)), "Job"), "not while the old one is still there"
    del running.children["Job"]["test-launcher"]
    assert created(running.step(later(2)), "Job"), "made again once it is gone, as upstream"


def test_a_launcher_whose_pods_are_not_seen_is_counted_from_its_job() -> None:
    """A launcher Job made before its template carried jobwarden's label: its pods are not watched, so
    its `ready` count stands in for upstream's count of Running launcher pods."""
    job = with_status(mpijob(workers=1), startTime=STAMP)
    mpi = read_mpijob(job)
    pods = {"test-worker-0": pod_in(children.worker_pod(mpi, 0, Settings()), "Running")}
    plan = plan_of(job, Job={"test-launcher": _launcher(job, active=1, ready=1)}, Pod=pods)
    assert plan.status["replicaStatuses"]["Launcher"] == {"active": 1}
    assert MPIJOB.phase(plan.status) == "Running"
    pending = _launcher(job, active=1)
    pods["test-launcher-x"] = _launcher_pod(pending, "test-launcher-x", "Pending")
    plan = plan_of(job, Job={"test-launcher": pending}, Pod=pods)
    assert plan.status["replicaStatuses"]["Launcher"] == {} and MPIJOB.phase(plan.status) == "Created"


def test_a_launcher_only_job_runs_the_launcher_as_its_host() -> None:
    """No Worker spec, runLauncherAsWorker: the hostfile lists the launcher, no worker pod is made,
    and the job runs once the launcher does."""
    job = mpijob(workers=None, runLauncherAsWorker=True)
    cluster = MpiCluster(job)
    plan = cluster.step()
    assert not created(plan, "Pod") and set(created(plan, "Job")) == {"test-launcher"}
    assert created(plan, "ConfigMap")["test-config"]["data"]["hostfile"] == (
        "test-launcher.test.default.svc slots=1\n"
    )
    assert created(plan, "Service")["test"]["spec"]["publishNotReadyAddresses"] is True
    cluster.set_launcher_status(active=1, ready=1)
    cluster.step(later(1))
    assert MPIJOB.phase(cluster.status) == "Running"
    assert cluster.status["replicaStatuses"] == {"Launcher": {"active": 1}, "Worker": {}}
