"""The Volcano job's state machine, one handler per phase (as upstream's
`pkg/controllers/job/state/`), each a function `(Situation, Decision) -> Decision`.

- Pending, Inqueue, Running: the first policy that matches a derived event and is due fires its action
  (`execute`). Otherwise the job syncs: pods of an older job version and pods above `replicas` (highest
  index first) are deleted; while the gate is open, the missing `<job>-<task>-<i>` pods are created (a
  task's pods only once its `dependsOn` tasks are ready); plugin children and the PodGroup are created
  or updated; then the phase follows the counts: Pending and Inqueue are admitted to Running once
  `minAvailable` pods run or finished, Running follows upstream's rules (§5.3).
- Restarting: pods of the old version (and the targets of a pod/task restart) are deleted; the job
  goes back to Pending once enough of them are gone, or fails when `retryCount` reached `maxRetry`.
- Aborting, Completing, Terminating: pods that are not Succeeded or Failed are deleted, and the job
  moves to Aborted, Completed, Terminated once no pod is pending, running or terminating.
- Aborted, Completed, Failed, Terminated: the same clean-up (the TTL is in `status.timers`).

The action is what records that an event was handled: every action leaves the phases where policies
apply, or bumps the version, or deletes the pods that caused it; Restarting waits until a restarted pod
is gone, so the cache showing it once more does not restart it again."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from jobwarden.core.plan import Event, Plan
from jobwarden.kinds.volcano import podgroup
from jobwarden.kinds.volcano.children import ensure_plugin_children, ensure_volume_claims, remove_job_children
from jobwarden.kinds.volcano.commands import RESUME_JOB, Command, first_command
from jobwarden.kinds.volcano.decision import Decision, Situation, live_pods
from jobwarden.kinds.volcano.podgroup import Gate
from jobwarden.kinds.volcano.pods import (
    FINISHED_POD_PHASES,
    POD_FAILED,
    POD_PENDING,
    POD_RUNNING,
    POD_SUCCEEDED,
    PodIdentity,
    pod_manifest,
)
from jobwarden.kinds.volcano.policies import Trigger, due_triggers, restart_targets
from jobwarden.kinds.volcano.spec import (
    ABORTED,
    ABORTING,
    COMPLETED,
    COMPLETING,
    ENDING_ACTIONS,
    EXECUTABLE_ACTIONS,
    FAILED,
    FINISHED_PHASES,
    INQUEUE,
    PARTIAL_RESTARTS,
    PENDING,
    RESTART_JOB,
    RESTARTING,
    RUNNING,
    TERMINATED,
    TERMINATING,
    WINDING_DOWN,
    Task,
)
from jobwarden.kinds.volcano.status import Tally, new_status, tally, timers
from jobwarden.plugins.base import pod_name

Handler = Callable[[Situation, Decision], Decision]
NextPhase = Callable[[Situation, Tally, Gate], str]


def plan(situation: Situation) -> Plan:
    decision = Decision.start(situation)
    if not decision.phase:  # a new job (or an unknown phase): Pending
        decision = report_unsupported(situation, decision).move(PENDING)
    command = first_command(situation.observed.commands)
    acted = command is not None and _commanded(command, decision.phase)
    if command is not None:
        decision = decision.adding(events=[command.issued])
    if acted:
        assert command is not None
        decision = _carry_out(situation, decision, command)
    else:
        decision = HANDLERS[decision.phase](situation, decision)
    status = new_status(situation, decision)
    delete_job, wake_at = timers(situation, decision, status)
    return Plan(
        consumed_commands=[command.name] if command is not None else [],
        create=list(decision.create),
        replace=list(decision.replace),
        patch=list(decision.patch),
        delete=list(decision.delete),
        status=status if status != situation.before else None,
        events=list(decision.events),
        delete_job=delete_job,
        wake_at=wake_at,
    )


# ---------------------------------------------------------------------------------------------
# The phases.


def pending(situation: Situation, decision: Decision) -> Decision:
    """Pending and Inqueue: act on a policy, or sync and admit the job to Running once `minAvailable`
    pods run or finished."""
    return _act_or_sync(situation, decision, _admitted_phase)


def running(situation: Situation, decision: Decision) -> Decision:
    """Running: act on a policy, or sync and follow the Running rules (§5.3)."""
    return _act_or_sync(situation, decision, _running_phase)


def restarting(situation: Situation, decision: Decision) -> Decision:
    job = situation.job
    if decision.retry_count >= job.max_retry:
        message = f"The job was restarted {decision.retry_count} times, reaching maxRetry {job.max_retry}"
        return _kill(situation, decision.move(FAILED, "MaxRetryReached", message))
    decision = _restart_kill(situation, decision)
    # A pod or task restart is finished only when the pods it restarts are gone from the cache:
    # until then they would raise the same event again in Pending.
    triggers, wakes = due_triggers(situation, decision)
    still_there = [
        pod
        for trigger in triggers
        if trigger.action in PARTIAL_RESTARTS
        for pod in restart_targets(situation, decision, trigger)
    ]
    decision = decision.adding(wakes=wakes).deleting_pods(still_there)
    left = job.total_replicas - tally(situation, decision.deleted).terminating
    if not still_there and left >= job.min_available:
        decision = decision.move(PENDING)
    return decision


def winding_down(situation: Situation, decision: Decision) -> Decision:
    """Aborting, Completing, Terminating: kill, and finish once no pod is pending, running or
    terminating."""
    decision = _kill(situation, decision)
    counted = tally(situation, decision.deleted)
    if counted.count(POD_PENDING) == counted.count(POD_RUNNING) == counted.terminating == 0:
        decision = decision.move(WINDING_DOWN[decision.phase], decision.reason, decision.message)
    return decision


def finished(situation: Situation, decision: Decision) -> Decision:
    """Aborted, Completed, Failed, Terminated: keep what is left killed."""
    return _kill(situation, decision)


HANDLERS: Mapping[str, Handler] = {
    PENDING: pending,
    INQUEUE: pending,
    RUNNING: running,
    RESTARTING: restarting,
    ABORTING: winding_down,
    COMPLETING: winding_down,
    TERMINATING: winding_down,
    ABORTED: finished,
    COMPLETED: finished,
    FAILED: finished,
    TERMINATED: finished,
}


# ---------------------------------------------------------------------------------------------
# Acting on a policy.


def _act_or_sync(situation: Situation, decision: Decision, next_phase: NextPhase) -> Decision:
    triggers, wakes = due_triggers(situation, decision)
    decision = decision.adding(wakes=wakes)
    trigger = next((t for t in triggers if t.action in EXECUTABLE_ACTIONS), None)
    if trigger is not None:
        return _execute(situation, decision, trigger)
    return _sync(situation, decision, next_phase)


def _execute(situation: Situation, decision: Decision, trigger: Trigger) -> Decision:
    return _run_action(situation, decision, trigger.action, trigger.occurrence.description, trigger)


def _run_action(
    situation: Situation, decision: Decision, action: str, description: str, trigger: Trigger | None = None
) -> Decision:
    """The whole-job actions bump `status.version`: pods of an older version never trigger a policy.
    A partial restart needs the `trigger` that names its pods."""
    decision = decision.adding(
        events=[Event("Normal", "ExecuteAction", f"Start to execute action {action} ")]
    )
    if action == RESTART_JOB:
        decision = decision.changed(retry_count=decision.retry_count + 1, version=decision.version + 1)
        return _restart_kill(situation, decision.move(RESTARTING, action, description))
    if action in PARTIAL_RESTARTS and trigger is not None:
        decision = decision.changed(retry_count=decision.retry_count + 1).move(
            RESTARTING, action, description
        )
        return decision.deleting_pods(restart_targets(situation, decision, trigger))
    decision = decision.changed(version=decision.version + 1)
    return _kill(situation, decision.move(ENDING_ACTIONS[action], action, description))


def _restart_kill(situation: Situation, decision: Decision) -> Decision:
    """Delete the pods of older versions. The last allowed restart keeps finished pods (upstream's
    retain override), since the job is about to fail. A whole-job restart also removes the job's
    children, which Pending makes again."""
    last_try = decision.retry_count >= situation.job.max_retry
    decision = decision.deleting_pods(
        p
        for p in situation.pods
        if p.version < decision.version and not (last_try and p.phase in FINISHED_POD_PHASES)
    )
    return remove_job_children(situation, decision) if decision.reason == RESTART_JOB else decision


def _kill(situation: Situation, decision: Decision) -> Decision:
    """Upstream's KillJob with retain Soft: everything but Succeeded and Failed pods goes, and the
    plugins' children and the PodGroup with them."""
    decision = decision.deleting_pods(p for p in situation.pods if p.phase not in FINISHED_POD_PHASES)
    return remove_job_children(situation, decision)


# ---------------------------------------------------------------------------------------------
# Commands (commands.py): carried out instead of the phase's handler when the phase takes them.

COMMANDED_ACTIONS = frozenset({RESTART_JOB, *ENDING_ACTIONS})


def _commanded(command: Command, phase: str) -> bool:
    if phase in (PENDING, INQUEUE, RUNNING):
        return command.action in COMMANDED_ACTIONS
    return phase in (ABORTING, ABORTED) and command.action == RESUME_JOB


def _carry_out(situation: Situation, decision: Decision, command: Command) -> Decision:
    if command.action != RESUME_JOB:
        return _run_action(situation, decision, command.action, command.description)
    decision = decision.changed(retry_count=decision.retry_count + 1, version=decision.version + 1)
    return _restart_kill(situation, decision.move(RESTARTING, RESUME_JOB, command.description))


# ---------------------------------------------------------------------------------------------
# Sync: what an active job without a due action does.


def _sync(situation: Situation, decision: Decision, next_phase: NextPhase) -> Decision:
    job, pods = situation.job, situation.pods
    gate = podgroup.gate(situation.observed, job)
    decision = decision.deleting_pods(p for p in pods if p.version < decision.version)
    decision = decision.deleting_pods(sorted((p for p in pods if p.task is None), key=lambda p: -p.index))
    missing = _missing_pods(situation, decision) if gate.open else []
    phase = next_phase(situation, tally(situation, decision.deleted, missing), gate)
    if phase in FINISHED_PHASES:
        return _kill(situation, decision.move(phase))
    decision = ensure_volume_claims(situation, ensure_plugin_children(situation, decision))
    made, patched = podgroup.podgroup_changes(situation.observed, job)
    new_pods = [
        pod_manifest(job, task, index, _identity(situation, decision, task)) for task, index in missing
    ]
    decision = decision.adding(create=[*made, *new_pods], patch=patched).changed(
        created=tuple(missing), synced=gate.open
    )
    decision = _announce(situation, decision, phase, gate)
    # Only Pending has a reason to give; admitted phases clear the last one.
    return decision.move(phase, *((gate.reason, gate.message) if phase == PENDING else ("", "")))


def _identity(situation: Situation, decision: Decision, task: Task) -> PodIdentity:
    scheduler = podgroup.scheduler_for(situation.observed, situation.job, task)
    return PodIdentity(decision.version, decision.retry_count, scheduler)


def _admitted_phase(situation: Situation, counted: Tally, gate: Gate) -> str:
    if gate.open and situation.job.min_available <= sum(
        counted.count(p) for p in (POD_RUNNING, *FINISHED_POD_PHASES)
    ):
        return RUNNING
    return INQUEUE if gate.open else PENDING


def _running_phase(situation: Situation, counted: Tally, gate: Gate) -> str:
    verdict = running_verdict(situation, counted)
    if verdict != PENDING:
        return verdict
    return INQUEUE if gate.open else PENDING


def running_verdict(situation: Situation, counted: Tally) -> str:
    """Upstream's Running-phase rules (§5.3): Running, Completed, Failed, or Pending."""
    job = situation.job
    total = job.total_replicas
    succeeded, failed = counted.count(POD_SUCCEEDED), counted.count(POD_FAILED)
    if total == 0:
        return RUNNING
    if job.min_success is not None and succeeded >= job.min_success:
        return COMPLETED
    if succeeded + failed == total:
        if job.min_available >= sum(t.min_available for t in job.tasks) and any(
            t.name in counted.tasks and counted.tasks[t.name][POD_SUCCEEDED] < t.min_available
            for t in job.tasks
        ):
            return FAILED
        if job.min_success is not None and succeeded < job.min_success:
            return FAILED
        return COMPLETED if succeeded >= job.min_available else FAILED
    if counted.count(POD_PENDING) > total - job.min_available:
        return PENDING
    return RUNNING


def _missing_pods(situation: Situation, decision: Decision) -> list[tuple[Task, int]]:
    job = situation.job
    taken = {p.name for p in situation.pods}
    return [
        (task, index)
        for task in job.tasks
        if _dependencies_ready(situation, decision, task)
        for index in range(task.replicas)
        if pod_name(job.name, task.name, index) not in taken
    ]


def _dependencies_ready(situation: Situation, decision: Decision, task: Task) -> bool:
    ready = [_task_ready(situation, decision, name) for name in task.depends_on]
    return any(ready) if task.depends_on_any and len(ready) > 1 else all(ready)


def _task_ready(situation: Situation, decision: Decision, name: str) -> bool:
    """Running pods with every container ready, plus Succeeded pods, reach the task's minAvailable."""
    task = situation.job.task(name)
    if task is None:
        return True
    live = [p for p in live_pods(situation, decision) if p.task_name == name]
    return sum(p.ready or p.phase == POD_SUCCEEDED for p in live) >= task.min_available


def _announce(situation: Situation, decision: Decision, phase: str, gate: Gate) -> Decision:
    """Warnings on transitions only: a new reason to stay Pending, or the first fallback admission."""
    events = []
    if (
        phase == PENDING
        and gate.reason
        and (gate.reason, gate.message) != (decision.reason, decision.message)
    ):
        events.append(Event("Warning", gate.reason, gate.message))
    admitted_before = any(
        c.get("status") in (INQUEUE, RUNNING) for c in situation.before.get("conditions") or []
    )
    if (
        phase in (INQUEUE, RUNNING)
        and not admitted_before
        and podgroup.falls_back(situation.observed, situation.job)
    ):
        events.append(Event("Warning", "SchedulerFallback", podgroup.fallback_message(situation.job)))
    return decision.adding(events=events)


def report_unsupported(situation: Situation, decision: Decision) -> Decision:
    """Once, on the job's first plan: what jobwarden ignores in this spec."""
    events = [Event("Warning", "PluginError", problem) for problem in situation.job.plugins.problems]
    for volume in (situation.job.body.get("spec") or {}).get("volumes") or []:
        if not volume.get("volumeClaimName") and volume.get("volumeClaim") is None:
            where = volume.get("mountPath")
            message = f"the volume at {where} has neither volumeClaimName nor volumeClaim: not mounted"
            events.append(Event("Warning", "PVCError", message))
    return decision.adding(events=events)
