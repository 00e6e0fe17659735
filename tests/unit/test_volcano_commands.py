"""Volcano Commands (`bus.volcano.sh/v1alpha1`) as the plan carries them out, against upstream's job
controller: `pkg/controllers/job/job_controller_handler.go` (processNextCommand: the CommandIssued
event, one execution per Command) and `pkg/controllers/job/state/{running,pending,aborting,aborted}.go`
(what each action does in each phase); vcctl's verbs in `pkg/cli/job/{suspend,resume}.go`."""

from __future__ import annotations

from volcano_helpers import later, running, task, vcjob

from jobwarden.core.plan import Event
from jobwarden.shell.job_cmd import ACTIONS, command_manifest

ISSUED = "Start to execute command {}, and clean it up to make sure executed not more than once."


def test_suspend_aborts_a_running_job_and_the_command_is_consumed_with_the_status() -> None:
    """Upstream running.go: AbortJob kills the pods (soft) and moves to Aborting, version bumped."""
    cluster = running(vcjob(task("worker", 2)))
    cluster.command("AbortJob", "job-abortjob-x")
    plan = cluster.step(later(10))

    assert plan.consumed_commands == ["job-abortjob-x"]
    assert plan.status is not None and plan.status["state"]["phase"] == "Aborting"
    assert plan.status["state"]["reason"] == "AbortJob"
    assert plan.status["version"] == 1
    assert Event("Normal", "CommandIssued", ISSUED.format("AbortJob")) in plan.events
    assert sorted(r.name for r in plan.delete if r.kind == "Pod") == ["job-worker-0", "job-worker-1"]
    assert cluster.settle(later(11))[-1].is_noop
    assert cluster.phase == "Aborted"


def test_resume_restarts_an_aborted_job_with_a_new_version_and_creates_its_pods_again() -> None:
    """Upstream aborted.go: ResumeJob → KillJob, phase Restarting, retryCount+1; then Pending makes pods."""
    cluster = running(vcjob(task("worker", 2), plugins={"svc": []}))
    cluster.command("AbortJob")
    cluster.settle(later(10))
    assert cluster.phase == "Aborted" and cluster.pods == {}

    cluster.command("ResumeJob")
    plan = cluster.step(later(20))
    assert plan.status is not None and plan.status["state"]["phase"] == "Restarting"
    assert plan.status["retryCount"] == 1 and plan.status["version"] == 2
    cluster.settle(later(21))
    cluster.run_all()
    cluster.settle(later(22))

    assert cluster.phase == "Running"
    assert sorted(cluster.pods) == ["job-worker-0", "job-worker-1"]
    assert {p["metadata"]["annotations"]["volcano.sh/job-version"] for p in cluster.pods.values()} == {"2"}
    assert "job" in cluster.children["Service"]  # the svc plugin's children are made again


def test_restart_and_complete_commands_act_as_the_policy_actions_do() -> None:
    """Upstream running.go: RestartJob → Restarting (version+1, retryCount+1); CompleteJob → Completing."""
    restarted = running(vcjob(task("worker")))
    restarted.command("RestartJob")
    plan = restarted.step(later(10))
    assert plan.status is not None and plan.status["state"]["phase"] == "Restarting"
    assert (plan.status["version"], plan.status["retryCount"]) == (1, 1)

    completed = running(vcjob(task("worker")))
    completed.command("CompleteJob")
    completed.settle(later(10))
    assert completed.phase == "Completed"


def test_a_command_with_nothing_to_do_in_the_phase_is_consumed_without_effect() -> None:
    """Upstream deletes every Command it takes; ResumeJob on a running job only syncs (running.go)."""
    cluster = running(vcjob(task("worker")))
    before = cluster.status
    cluster.command("ResumeJob")
    plan = cluster.step(later(10))

    assert plan.consumed_commands == [cluster.job["metadata"]["name"] + "-resumejob-0"]
    assert plan.status is None and cluster.status == before
    assert [e.reason for e in plan.events] == ["CommandIssued"]


def test_commands_are_carried_out_one_per_plan_oldest_first() -> None:
    cluster = running(vcjob(task("worker")))
    cluster.command("AbortJob", "first")
    cluster.command("ResumeJob", "second")

    assert cluster.step(later(10)).consumed_commands == ["first"]
    assert cluster.phase == "Aborting"
    second = cluster.step(later(11))  # upstream aborting.go: ResumeJob while Aborting restarts too
    assert second.consumed_commands == ["second"]
    assert cluster.phase == "Restarting" and cluster.commands == []


def test_job_cli_verbs_make_commands_as_vcctl_does() -> None:
    """Upstream `pkg/cli/util/util.go` CreateJobCommand: generateName `<job>-<action lower>-`, the job
    as controller ownerReference and as target; suspend is AbortJob, resume ResumeJob."""
    job = vcjob(task("worker"))
    made = command_manifest(job, ACTIONS["suspend"])

    assert ACTIONS == {
        "suspend": "AbortJob",
        "resume": "ResumeJob",
        "restart": "RestartJob",
        "abort": "AbortJob",
    }
    assert made["metadata"]["generateName"] == "job-abortjob-"
    assert made["target"] == made["metadata"]["ownerReferences"][0]
    assert made["target"]["uid"] == "uid-1" and made["target"]["controller"] is True
    assert (made["apiVersion"], made["kind"], made["action"]) == (
        "bus.volcano.sh/v1alpha1",
        "Command",
        "AbortJob",
    )
