"""Refused child writes in a job's status (core/faults.py) and through both kinds' plans."""

from __future__ import annotations

from kubeflow_helpers import NOW, kubeflow_job, later

from jobwarden.core import faults
from jobwarden.core.plan import ChildFault, Observed
from jobwarden.kinds import volcano
from jobwarden.kinds.kubeflow import pytorchjob

QUOTA = ChildFault(
    "Create", "Pod", "job-worker-1", '403 Forbidden: pods "job-worker-1" is forbidden: exceeded quota'
)
INVALID = ChildFault(
    "Create", "Pod", "job-worker-2", "422 Unprocessable Entity: volumeMounts[0].name: Not found"
)


def test_summary_names_the_first_refusal_and_counts_the_others() -> None:
    assert faults.summary(()) is None
    reason, message = faults.summary((QUOTA, INVALID)) or ("", "")
    assert reason == "FailedCreatePod"
    assert message.startswith("Create pod job-worker-1 failed: 403 Forbidden")
    assert message.endswith("(and 1 more refused child writes)")


def test_the_condition_goes_first_keeps_its_transition_time_and_leaves_when_cleared() -> None:
    lifecycle = [{"type": "Created", "status": "True"}]
    shown = faults.with_failure_condition(lifecycle, (QUOTA,), NOW)
    assert [c["type"] for c in shown] == [faults.FAILURE_CONDITION, "Created"]
    again = faults.with_failure_condition(shown, (QUOTA,), later(30))
    assert again == shown  # same refusal: nothing to write
    other = faults.with_failure_condition(shown, (INVALID,), later(60))
    assert other[0]["lastTransitionTime"] == shown[0]["lastTransitionTime"]
    assert other[0]["lastUpdateTime"] != shown[0]["lastUpdateTime"]
    assert faults.with_failure_condition(other, (), later(90)) == lifecycle


def test_a_kubeflow_job_shows_the_refusal_and_keeps_its_state_column() -> None:
    job = kubeflow_job(pytorchjob.KIND, {"Master": 1})
    plan = pytorchjob.KIND.plan(Observed(job, {}, NOW, faults=(QUOTA,)))
    assert plan.status is not None
    assert plan.status["conditions"][0]["reason"] == "FailedCreatePod"
    assert pytorchjob.KIND.phase(plan.status) == "Created"


def test_a_volcano_job_shows_the_refusal_in_its_state_and_drops_it_when_cleared() -> None:
    job = {
        "apiVersion": "batch.volcano.sh/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "vj", "namespace": "ns", "uid": "u"},
        "spec": {
            "tasks": [{"name": "t", "replicas": 1, "template": {"spec": {"containers": [{"name": "c"}]}}}]
        },
    }
    plan = volcano.KIND.plan(Observed(job, {}, NOW, faults=(QUOTA,)))
    assert plan.status is not None
    state = plan.status["state"]
    assert state["reason"] == "FailedCreatePod" and "exceeded quota" in state["message"]
    job["status"] = plan.status
    cleared = volcano.KIND.plan(Observed(job, {}, later(5)))
    assert cleared.status is not None
    assert "reason" not in cleared.status["state"]
