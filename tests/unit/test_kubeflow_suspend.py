"""`runPolicy.suspend` of the Kubeflow kinds, against training-operator release-1.9
`pkg/controller.v1/common/job.go` (ReconcileJobs: the suspended branch deletes every pod and service
whatever the cleanPodPolicy, zeroes `active`, sets Running False and Suspended True with reason
`<Kind>Suspended` and message `<Kind> <name> is suspended.`; on resume Suspended False with reason
`<Kind>Resumed`, message `<Kind> <name> is resumed.` and `startTime` reset to now) and
`pkg/util/status.go` (the reasons `Suspended` / `Resumed`, `NewReason(kind, reason)`); and the update
contract's `--allow-suspend-updates` setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeflow_helpers import NOW, FakeCluster, created, deleted, kubeflow_job, later, running, seed, suspended

from jobwarden.core.plan import Event
from jobwarden.kinds import by_kind, registry
from jobwarden.kinds.admission import review
from jobwarden.kinds.kubeflow import mxjob, pytorchjob, tfjob
from jobwarden.kinds.kubeflow.validation import KUBEFLOW_UPDATABLE, SUSPEND_PATH
from jobwarden.shell import validate_cmd

TF = tfjob.KIND
TORCH = pytorchjob.KIND


def conditions(cluster: FakeCluster) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in cluster.status.get("conditions") or []}


# --- the plan ---------------------------------------------------------------------------------


def test_a_job_created_suspended_gets_no_children_and_no_start_time() -> None:
    cluster = FakeCluster(TORCH, suspended(kubeflow_job(TORCH, {"Master": 1, "Worker": 2})))
    plan = cluster.step()
    assert plan.create == []
    assert "startTime" not in cluster.status  # upstream sets it in UpdateJobStatus, never reached
    suspended_condition = conditions(cluster)["Suspended"]
    assert (suspended_condition["status"], suspended_condition["reason"], suspended_condition["message"]) == (
        "True",
        "PyTorchJobSuspended",
        "PyTorchJob job is suspended.",
    )
    assert Event("Normal", "PyTorchJobSuspended", "PyTorchJob job is suspended.") in plan.events
    assert plan.wake_at is None
    assert cluster.step(later(1)).is_noop  # the event is posted once, not on every pass


def test_suspending_a_running_job_deletes_every_pod_and_service_whatever_the_clean_pod_policy() -> None:
    job = kubeflow_job(TF, {"PS": 1, "Worker": 2}, runPolicy={"cleanPodPolicy": "None"})
    cluster = running(TF, job)
    assert cluster.status["replicaStatuses"]["Worker"] == {"active": 2}
    cluster.job = suspended(cluster.job)
    plan = cluster.step(later(10))
    pods = {"job-ps-0", "job-worker-0", "job-worker-1"}
    assert deleted(plan, "Pod") == deleted(plan, "Service") == pods
    assert plan.create == []
    assert cluster.status["replicaStatuses"] == {"PS": {}, "Worker": {}}
    found = conditions(cluster)
    assert (found["Running"]["status"], found["Running"]["reason"]) == ("False", "TFJobSuspended")
    assert (found["Suspended"]["status"], found["Suspended"]["reason"]) == ("True", "TFJobSuspended")
    assert cluster.status["conditions"][-1]["type"] == "Suspended"  # the STATE column
    assert TF.phase(cluster.status) == "Suspended"


def test_resuming_recreates_the_children_and_restarts_the_clock() -> None:
    job = kubeflow_job(TF, {"Worker": 2}, runPolicy={"activeDeadlineSeconds": 60})
    cluster = running(TF, job)
    assert cluster.status["startTime"] == "2024-05-01T12:00:00Z"
    cluster.job = suspended(cluster.job)
    assert cluster.step(later(30)).wake_at is None  # the deadline does not run while suspended
    cluster.job = suspended(cluster.job, False)
    plan = cluster.step(later(100))  # past the original deadline: the clock counts from the resume
    assert set(created(plan, "Pod")) == {"job-worker-0", "job-worker-1"}
    assert cluster.status["startTime"] == "2024-05-01T12:01:40Z"
    assert plan.wake_at == later(160)
    resumed = conditions(cluster)["Suspended"]
    assert (resumed["status"], resumed["reason"], resumed["message"]) == (
        "False",
        "TFJobResumed",
        "TFJob job is resumed.",
    )
    assert Event("Normal", "TFJobResumed", "TFJob job is resumed.") in plan.events
    cluster.run_all()
    cluster.step(later(105))
    assert TF.phase(cluster.status) == "Running"
    assert not any(c["type"] == "Failed" for c in cluster.status["conditions"])


def test_a_restarting_job_stops_claiming_it_when_suspended() -> None:
    """Upstream flips only a holding Running; a suspended job that was Restarting would keep saying so."""
    cluster = running(TORCH, kubeflow_job(TORCH, {"Worker": 1}, restart_policy="OnFailure"))
    cluster.set_phase("job-worker-0", "Failed", exit_code=1)
    cluster.step(later(10))
    assert conditions(cluster)["Restarting"]["status"] == "True"
    cluster.job = suspended(cluster.job)
    cluster.step(later(20))
    found = conditions(cluster)
    assert "Restarting" not in found
    assert (found["Running"]["status"], found["Suspended"]["status"]) == ("False", "True")


def test_a_finished_job_ignores_suspend() -> None:
    cluster = running(TORCH, kubeflow_job(TORCH, {"Master": 1}))
    cluster.set_phase("job-master-0", "Succeeded")
    cluster.step(later(10))
    cluster.job = suspended(cluster.job)
    assert cluster.step(later(20)).is_noop
    assert "Suspended" not in conditions(cluster)


def test_suspend_is_planned_the_same_way_in_every_kind() -> None:
    for kind, replicas in ((mxjob.KIND, {"Scheduler": 1, "Worker": 1}), (TF, {"Worker": 1})):
        cluster = FakeCluster(kind, suspended(kubeflow_job(kind, replicas)))
        assert cluster.step(NOW).create == []
        assert conditions(cluster)["Suspended"]["reason"] == f"{kind.resource.kind}Suspended"


# --- admission: only a create may set it, unless the operator allows suspend updates -----------


def test_by_default_suspend_may_be_set_at_create_but_not_changed() -> None:
    old = seed("pytorchjob-put")
    assert review(TORCH, "CREATE", None, suspended(old)).allowed
    verdict = review(TORCH, "UPDATE", old, suspended(old))
    assert (verdict.allowed, verdict.code) == (False, 403)
    assert verdict.message.startswith(f"{SUSPEND_PATH}: field is not updatable")
    assert SUSPEND_PATH not in TORCH.updatable_fields()


def test_allow_suspend_updates_adds_only_the_suspend_path_to_every_kubeflow_contract() -> None:
    kinds = registry(allow_suspend_updates=True)
    for kind in kinds:
        if kind.resource.group == "kubeflow.org":
            assert kind.updatable_fields() == [*KUBEFLOW_UPDATABLE, SUSPEND_PATH]
    volcano = by_kind("batch.volcano.sh/v1alpha1", "Job", kinds)
    assert volcano is by_kind("batch.volcano.sh/v1alpha1", "Job")  # untouched
    torch = by_kind("kubeflow.org/v1", "PyTorchJob", kinds)
    assert torch is not None
    old = seed("pytorchjob-put")
    assert review(torch, "UPDATE", old, suspended(old)).allowed
    assert review(torch, "UPDATE", suspended(old), suspended(old, False)).allowed
    scaled = suspended(old)
    scaled["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = 3
    verdict = review(torch, "UPDATE", old, scaled)
    assert (verdict.code, verdict.message.split(":")[0]) == (403, "spec.pytorchReplicaSpecs.Worker.replicas")
    assert registry() == registry(allow_suspend_updates=False)


def test_validate_cli_takes_the_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(yaml.safe_dump(seed("tfjob-put")))
    new.write_text(yaml.safe_dump(suspended(seed("tfjob-put"))))
    assert validate_cmd.main(["--old", str(old), str(new)]) == 1
    assert validate_cmd.main(["--allow-suspend-updates", "--old", str(old), str(new)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "OK TFJob/tfjob-test"
