"""The decision core for Volcano's batch Job (`batch.volcano.sh/v1alpha1`, kind `Job`).

jobwarden runs Volcano jobs without Volcano installed, and cooperates with Volcano's scheduler when it
is (`Settings.volcano_scheduler_installed`). A plan follows upstream's job controller (volcano-job
spec §4, §5), made level-triggered: upstream reacts to a stream of pod events, a plan sees the pods as
they are now, so it derives the events from their state.

A plan, by the job's phase (an empty or unknown phase starts as Pending):
1. Pending, Inqueue, Running: the first policy that matches a derived event and is due fires its
   action (below). Otherwise the job syncs: pods of an older job version and pods above `replicas`
   (highest index first) are deleted; while the gate is open, the missing `<job>-<task>-<i>` pods are
   created (a task's pods only once its `dependsOn` tasks are ready); plugin children and the PodGroup
   are created or updated; then the phase follows the counts (§5.3 in Running).
2. Restarting: pods of the old version (and the targets of a pod/task restart) are deleted; the job
   goes back to Pending once enough of them are gone, or fails when `retryCount` reached `maxRetry`.
3. Aborting, Completing, Terminating: pods that are not Succeeded or Failed are deleted, and the
   job moves to Aborted, Completed, Terminated once no pod is pending, running or terminating.
4. Aborted, Completed, Failed, Terminated: the same clean-up; after `ttlSecondsAfterFinished`
   (counted from `status.state.lastTransitionTime`, not for Aborted) the job is deleted.
The whole-job actions (RestartJob, AbortJob, CompleteJob, TerminateJob) bump `status.version`; pods
carry the version in `volcano.sh/job-version`, so pods of an older version never trigger a policy.
Those actions, and reaching a finished phase, delete the PodGroup and the plugins' children and drop
their `plugin-*` keys, as upstream; Pending makes them again after a restart (a new ssh key).

Events derived from state (only pods of the current version that are not terminating):
`PodFailed` (a Failed pod; exit code of the first container), `PodEvicted` (a Failed pod with reason
`Evicted` or a `DisruptionTarget` condition; it is also a PodFailed), `PodPending` (matches only a
policy with a timeout), `TaskCompleted` (every replica Succeeded), `TaskFailed` (container restarts of
the task's pending and running pods reached the task's `maxRetry`), `Unknown` (the PodGroup's phase).
A policy with `timeout` fires at the event's own time (the pod's termination or creation time) plus
the timeout; until then `wake_at` is that instant, and the delayed action is dropped if the state that
caused it goes away. The action is what records that an event was handled: every action leaves the
phases where policies apply, or bumps the version, or deletes the pods that caused it; Restarting waits
until a restarted pod is gone, so the cache showing it once more does not restart it again.

Commands (`commands.py`): the oldest pending `bus.volcano.sh` Command aimed at the job is carried out
instead of the phase's handler when the phase takes it (RestartJob, AbortJob, CompleteJob,
TerminateJob while active; ResumeJob from Aborting/Aborted: Restarting with a new version) and named
in `Plan.consumed_commands`; the shell deletes it after the status recording it is written.

Scheduling (§4.3 step 4: pods only once the PodGroup is admitted):
- Volcano installed: the PodGroup `<job>-<uid>` is created, and pods only once its phase is set and not
  Pending. The job is Pending until then (a Warning `PodGroupPending` when the PodGroup is unschedulable;
  `QueueNotFound` / `QueueNotOpen` naming the queue and its state when Volcano's Queue CRD is there and
  the job's queue is missing or not Open), Inqueue after, Running once `minAvailable` pods run or
  finished. After a scale the PodGroup gets a merge patch of the spec fields jobwarden owns
  (`Plan.patch`), never a replace that races the scheduler's writes.
- Not installed, fallback on (default): the job is admitted at once (Pending → Inqueue → Running) and
  pods asking for the `volcano` scheduler (explicitly or by default) get `default-scheduler`; a pod
  template naming another scheduler keeps it. One Warning `SchedulerFallback` on the first admission.
- Not installed, fallback off: the job stays Pending, no pods, a Warning `VolcanoNotInstalled`.

Status: upstream's fields with Go's omitempty (zero counters and empty maps are left out). Counters
are the observed pods (pods this plan deletes count as terminating, pods it creates as pending).

Differences from upstream, on purpose:
- `Inqueue` is a job phase (the seeds show it; upstream dropped it): Pending with the gate open.
- `lastTransitionTime` moves only when the phase changes (upstream: on any status change), so the
  TTL clock and re-plans are stable. `state.reason`/`state.message` (never written upstream) say why:
  the action and the event behind it, or why the job is Pending.
- Counters are never reset by a kill: upstream's killJob counts only the pods it failed to delete
  (so a Completed job shows `succeeded: 0`), and a finished phase there bumps `version` on every sync
  (its value depends on how many events arrived); here the counters are the pods left and the version
  moves once per whole-job action. `runningDuration` is kept as upstream: every kill writes it
  (creation to the lastTransitionTime of the phase the kill leads to), the next sync with the gate
  open drops it (a resumed or restarted job runs without it), a sync with the gate closed keeps it.
- Delayed actions: no `Execute action <A> after <d>` event (scheduling is implicit in `wake_at`).
- Policies are consulted in Pending, Inqueue and Running only (plus pod and task restarts while
  Restarting): elsewhere upstream's actions only repeat the kill already under way. Restarting creates
  no pods; Pending does, on the next plan.
- Plugins: env, svc (with its NetworkPolicy), ssh, mpi, pytorch, tensorflow, hcclrank (plugins/); the
  plugins Volcano's mutating webhook implies (svc for tensorflow/mpi/pytorch/ray, ssh for mpi) are
  added in memory. `ray` is not implemented (a Warning `PluginError` on the first plan says so): it
  rewrites the head and worker commands and makes a Service of its own. hcclrank runs after the other
  plugins (upstream: Go's random map order), so it always sees pytorch's `RANK`.
- PVCs: a `volumes[].volumeClaim` becomes the PVC `<job>-pvc-<12 chars>` (upstream: 12 random
  characters written back into the job's spec; here derived from the job's uid and the volume's
  index, since a plan writes only status), owned by the job and recorded as `volume-pvc-<name>`; a
  `volumeClaimName` is mounted as upstream (its existence is not checked: PVCs not made by jobwarden
  are not watched).
- Job-level defaults of Volcano's mutating webhook are applied when reading (never written back,
  `defaults.py`):
  queue `default`, scheduler `volcano`, `maxRetry` 0 → 3, task `minAvailable` = replicas (or
  minPartitions * partitionSize), job `minAvailable` 0 → the tasks' sum. As nothing stores them, a
  scale moves the defaulted minimums with the replicas.
- PodGroup `minResources`: upstream's quota-usage keys (`count/pods`, `pods`, `cpu`/`memory`/
  `ephemeral-storage` and their `requests.*`, `limits.*`, extended resources and hugepages) summed over
  the first `minAvailable` pods in task order (upstream orders tasks by PriorityClass value, which a
  pure plan cannot read); `minTaskMember` of a task whose `minAvailable` was defaulted keeps its value
  at creation (upstream stores the default); `subGroupPolicy` for partitioned tasks is not written.

The package, one concern per module:
- `spec.py`: the API's vocabulary and the job in its defaulted view; `defaults.py`: Volcano's defaults;
- `pods.py`: observed pods, a new pod's manifest, labels and annotations;
- `policies.py`: events derived from state → the policy action they trigger;
- `podgroup.py`: the PodGroup, the scheduling gate and the default-scheduler fallback;
- `children.py`: the plugins' children and the PVCs; `status.py`: the status and the TTL timer;
- `commands.py`: Volcano Commands (vcctl suspend/resume) read from `Observed.commands`;
- `decision.py`: a plan's explicit inputs (`Situation`) and outputs (`Decision`);
- `phases.py`: the state machine, one handler per phase;
- `validation.py` (create) and `updates.py` (the seeds' update contract): admission.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobwarden.core.admission import UpdateContract
from jobwarden.core.fielderrors import FieldError
from jobwarden.core.plan import Body, ChildRef, Manifest, Observed, Plan
from jobwarden.core.quantity import format_quantity
from jobwarden.kinds.base import Resource
from jobwarden.kinds.volcano import phases
from jobwarden.kinds.volcano.children import unwatched_plugin_children
from jobwarden.kinds.volcano.decision import Situation
from jobwarden.kinds.volcano.spec import RESOURCE, parse_duration, read_job
from jobwarden.kinds.volcano.updates import VOLCANO_CONTRACT, VOLCANO_UPDATABLE, check_volcano_update
from jobwarden.kinds.volcano.validation import validate_volcano
from jobwarden.plugins.base import JOB_NAME_LABEL
from jobwarden.plugins.registry import materialize as materialize_plugin_child


class VolcanoKind:
    """The Volcano Job kind; see the package docstring for what it decides and how."""

    resource: Resource = RESOURCE
    job_name_label: str = JOB_NAME_LABEL
    child_events: bool = False  # Volcano's job controller posts none per child (docs/behaviour.md)

    def validate(self, job: Body) -> list[FieldError]:
        return validate_volcano(job)

    def check_update(self, old: Body, new: Body) -> list[FieldError]:
        return check_volcano_update(old, new)

    def updatable_fields(self) -> list[str]:
        return list(VOLCANO_UPDATABLE)

    def update_contract(self) -> UpdateContract:
        return VOLCANO_CONTRACT

    def phase(self, status: Mapping[str, Any] | None) -> str:
        """The STATUS printer column: `status.state.phase`."""
        return str(((status or {}).get("state") or {}).get("phase", ""))

    def plan(self, observed: Observed) -> Plan:
        if (observed.job.get("metadata") or {}).get("deletionTimestamp"):
            return Plan()  # being deleted: the garbage collector removes the children
        return phases.plan(Situation.of(observed))

    def materialize(self, manifest: Manifest) -> Manifest:
        """The plugins fill in what the plan only asked for (the ssh plugin's key pair)."""
        return materialize_plugin_child(manifest)

    def unwatched_children(self, job: Body) -> list[ChildRef]:
        """The plugins' children of unwatched kinds (the ssh plugin's Secret)."""
        return unwatched_plugin_children(read_job(job))


KIND = VolcanoKind()

__all__ = ["KIND", "RESOURCE", "VolcanoKind", "format_quantity", "parse_duration"]
