"""MPIJob admission: upstream's validation (pkg/apis/kubeflow/validation/validation_test.go at
release-0.8, run on the defaulted job as upstream's controller runs it) as 400s with field paths, and
the Kubeflow family's update contract (403s) through the single entry point the webhook uses."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from mpijob_helpers import mpijob

from jobwarden import kinds
from jobwarden.kinds.admission import review
from jobwarden.kinds.kubeflow import MPIJOB


def paths(job: dict[str, Any]) -> list[str]:
    return [e.path for e in MPIJOB.validate(job)]


def _valid(implementation: str, workers: int | None) -> dict[str, Any]:
    job = mpijob("foo", workers, mpiImplementation=implementation, slotsPerWorker=2)
    job["spec"]["runPolicy"] = {"cleanPodPolicy": "None"}
    job["spec"]["mpiReplicaSpecs"]["Launcher"].update(replicas=1, restartPolicy="Never")
    return job


@pytest.mark.parametrize("implementation", ["OpenMPI", "Intel", "MPICH"])
@pytest.mark.parametrize("workers", [None, 3])
def test_upstream_valid(implementation: str, workers: int | None) -> None:
    """ "valid (intel)", "valid with worker (intel)", "valid (mpich)", "valid with worker (mpich)"."""
    job = _valid(implementation, workers)
    assert MPIJOB.validate(job) == []
    assert review(MPIJOB, "CREATE", None, job).allowed


def test_upstream_empty_job() -> None:
    """ "empty job": upstream (on a job not defaulted) also names slotsPerWorker, cleanPodPolicy,
    sshAuthMountPath, mpiImplementation, which the controller's defaulting fills in first."""
    job = {"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "metadata": {}, "spec": {}}
    assert paths(job) == ["metadata.name", "spec.mpiReplicaSpecs"]


def test_upstream_invalid_fields() -> None:
    job = _valid("OpenMPI", 1000)
    job["metadata"]["name"] = "this-name-is-waaaaaaaay-too-long-for-a-worker-hostname"
    job["spec"]["mpiImplementation"] = "Unknown"
    job["spec"]["runPolicy"] = {
        "cleanPodPolicy": "unknown",
        "ttlSecondsAfterFinished": -1,
        "activeDeadlineSeconds": -1,
        "backoffLimit": -1,
        "managedBy": "invalid.com/controller",
    }
    assert paths(job) == [
        "metadata.name",
        "spec.runPolicy.cleanPodPolicy",
        "spec.runPolicy.ttlSecondsAfterFinished",
        "spec.runPolicy.activeDeadlineSeconds",
        "spec.runPolicy.backoffLimit",
        "spec.runPolicy.managedBy",
        "spec.mpiImplementation",
    ]
    verdict = review(MPIJOB, "CREATE", None, job)
    assert not verdict.allowed and verdict.code == 400


def test_upstream_empty_replica_specs() -> None:
    job = _valid("OpenMPI", None)
    job["spec"]["mpiReplicaSpecs"] = {}
    errors = MPIJOB.validate(job)
    assert [str(e) for e in errors] == [
        "spec.mpiReplicaSpecs[Launcher]: Required value: must have Launcher replica spec"
    ]


def test_upstream_missing_replica_spec_fields() -> None:
    """Defaulted first: the Launcher gets 1 replica and OnFailure, the Worker 0 replicas (refused) and
    Never; both lack containers."""
    job = _valid("OpenMPI", None)
    job["spec"]["mpiReplicaSpecs"] = {"Launcher": {}, "Worker": {}}
    assert paths(job) == [
        "spec.mpiReplicaSpecs[Launcher].template.spec.containers",
        "spec.mpiReplicaSpecs[Worker].template.spec.containers",
        "spec.mpiReplicaSpecs[Worker].replicas",
    ]


def test_upstream_invalid_replica_fields() -> None:
    job = _valid("OpenMPI", 1)
    launcher, worker = job["spec"]["mpiReplicaSpecs"]["Launcher"], job["spec"]["mpiReplicaSpecs"]["Worker"]
    launcher.update(replicas=2, restartPolicy="Always")
    worker.update(replicas=0, restartPolicy="Invalid")
    assert paths(job) == [
        "spec.mpiReplicaSpecs[Launcher].restartPolicy",
        "spec.mpiReplicaSpecs[Launcher].replicas",
        "spec.mpiReplicaSpecs[Worker].restartPolicy",
        "spec.mpiReplicaSpecs[Worker].replicas",
    ]


def test_upstream_invalid_mpijob_name() -> None:
    job = _valid("OpenMPI", 1)
    job["metadata"]["name"] = "1-foo"
    [error] = MPIJOB.validate(job)
    assert error.path == "metadata.name"
    assert "will not able to create pod and service with invalid DNS label '1-foo-worker-0'" in error.message


def test_stricter_than_upstream() -> None:
    """A zero deadline (the launcher Job refuses it), an unknown launcherCreationPolicy or replica
    type, a template volume named like ours."""
    job = _valid("OpenMPI", 1)
    job["spec"]["runPolicy"]["activeDeadlineSeconds"] = 0
    job["spec"]["launcherCreationPolicy"] = "Later"
    job["spec"]["mpiReplicaSpecs"]["launcher"] = {}
    job["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["volumes"] = [
        {"name": "ssh-auth", "emptyDir": {}}
    ]
    assert paths(job) == [
        "spec.mpiReplicaSpecs[launcher]",
        "spec.mpiReplicaSpecs[Worker].template.spec.volumes[0].name",
        "spec.runPolicy.activeDeadlineSeconds",
        "spec.launcherCreationPolicy",
    ]


# ---------------------------------------------------------------------------------------------
# UPDATE: the family's contract


def _running() -> dict[str, Any]:
    job = _valid("OpenMPI", 2)
    job["metadata"]["resourceVersion"] = "5"
    return job


def test_run_policy_fields_of_the_contract_may_change() -> None:
    old = _running()
    new = copy.deepcopy(old)
    new["spec"]["runPolicy"].update(
        ttlSecondsAfterFinished=60, activeDeadlineSeconds=600, cleanPodPolicy="All"
    )
    new["metadata"]["labels"] = {"team": "a"}
    assert review(MPIJOB, "UPDATE", old, new).allowed


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("slotsPerWorker",), 4),
        (("mpiImplementation",), "Intel"),
        (("runPolicy", "backoffLimit"), 3),
        (("runPolicy", "suspend"), True),
        (("mpiReplicaSpecs", "Worker", "replicas"), 3),
    ],
)
def test_other_changes_are_forbidden(path: tuple[str, ...], value: Any) -> None:
    old = _running()
    new = copy.deepcopy(old)
    target = new["spec"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    verdict = review(MPIJOB, "UPDATE", old, new)
    assert not verdict.allowed and verdict.code == 403
    assert f"spec.{'.'.join(path)}: field is not updatable" in verdict.message


def test_spelling_out_a_default_is_no_change() -> None:
    """The CRD's schema defaults (slotsPerWorker, sshAuthMountPath, ...) and upstream's in-memory ones
    (replicas, restartPolicy, cleanPodPolicy) written out are not changes."""
    old = mpijob("foo", 2, clean_pod_policy=None)
    new = copy.deepcopy(old)
    new["spec"].update(
        slotsPerWorker=1,
        sshAuthMountPath="/root/.ssh",
        mpiImplementation="OpenMPI",
        runLauncherAsWorker=False,
        launcherCreationPolicy="AtStartup",
    )
    new["spec"]["runPolicy"] = {"cleanPodPolicy": "None", "suspend": False}
    new["spec"]["mpiReplicaSpecs"]["Launcher"].update(replicas=1, restartPolicy="OnFailure")
    new["spec"]["mpiReplicaSpecs"]["Worker"]["restartPolicy"] = "Never"
    assert MPIJOB.check_update(old, new) == []


def test_suspend_may_change_with_allow_suspend_updates() -> None:
    old = _running()
    new = copy.deepcopy(old)
    new["spec"]["runPolicy"]["suspend"] = True
    kind = kinds.by_plural("kubeflow.org", "mpijobs", kinds.registry(allow_suspend_updates=True))
    assert kind is not None
    assert review(kind, "UPDATE", old, new).allowed
