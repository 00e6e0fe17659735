"""The reconcile engine: a store of the latest job bodies, a per-job work queue, and the executor of
the pure core's plans.

Level-triggered: any event for a job or one of its children enqueues the job; a worker computes
`kind.plan(Observed(...))` from the latest body and the children in kopf's indices, then executes
it. One job is never reconciled by two workers at once; events that arrive meanwhile coalesce into
one more pass. Wake-ups (`Plan.wake_at`) are asyncio timers re-armed on every pass, computed from
`status` timestamps, so nothing is lost across operator restarts.

The executor's order is what keeps a finished job finished (docs/reliability.md):
1. the status is written first, as a replace fenced by the resourceVersion the plan was computed
   from; a plan that writes children without changing the status is fenced by an unchanged status
   write. When the fence is refused (409: the job changed, or another replica wrote it), nothing else
   of the plan happens: it was computed from a stale view;
2. only then children are created and deleted (deletes with the child's uid as precondition), so a
   delete never destroys evidence (a succeeded pod) of a decision that is not stored;
3. a job whose cached status is finished never gets a child created, whatever the plan says.

Only the leader (shell/leader.py) runs workers; the others keep their watch caches warm."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from jobwarden import kinds
from jobwarden.core.plan import (
    GENERATE_ANNOTATION,
    Body,
    ChildFault,
    ChildRef,
    Event,
    Manifest,
    Observed,
    Plan,
    Settings,
)
from jobwarden.kinds.base import JobKind
from jobwarden.shell import metrics, outage
from jobwarden.shell.api import KubeApi, namespace_terminating, reason_of, status_of
from jobwarden.shell.childview import ChildIndices, ChildView
from jobwarden.shell.childwatch import controller_uid
from jobwarden.shell.events import EventSink
from jobwarden.shell.faultbook import FaultBook
from jobwarden.shell.workqueue import WorkQueue, in_urgent_run

logger = logging.getLogger(__name__)

# (group, plural, namespace, name)
JobKey = tuple[str, str, str, str]

CONFLICT_DELAY_SECONDS = 1.0
WORKERS = 16  # jobs reconciled at once; each pass is mostly waiting on the apiserver
MAX_INFLIGHT_WRITES = 64
# Child writes of urgent passes (cleanup after a finish or a deadline) in flight at once, apart from the
# ordinary ones' bound. A group of deadlines falling due together is 20 status writes and 160 deletes
# at 20 jobs/s: unbounded, the deletes of the first jobs slowed the status writes of the last ones.
# The status writes themselves (the decisions) are not bounded.
MAX_URGENT_INFLIGHT_WRITES = 16
# How long a status write that only reports progress (Plan.only_reports_progress) may wait to be merged
# with the next ones: the pods of a job start within about a second of each other.
COALESCE_SECONDS = 1.0
# How long an ordinary child event waits for the next ones of the same job before its pass is queued: a
# job's 8 children each bring 2-3 events within a fraction of a second (ADDED, scheduled, Running), and
# one pass serves them all. A finished pod is never delayed.
BATCH_SECONDS = 0.1
# A plan runs on the event loop when this job's previous plan, of the same generation, took less CPU
# than this; otherwise (a job's first plan, the first after a spec change, a large job) in a thread.
# Handing a plan to a thread costs ~0.23 ms of CPU, as much as a 4-replica job's whole plan.
INLINE_PLAN_SECONDS = 0.002
# The phases (as `JobKind.phase` reads them) after which a job never gets a child created again.
FINISHED_PHASES = frozenset({"Succeeded", "Failed", "Completed", "Aborted", "Terminated"})


def job_key(kind: JobKind, body: Body) -> JobKey:
    meta = body["metadata"]
    return (kind.resource.group, kind.resource.plural, meta["namespace"], meta["name"])


@dataclasses.dataclass
class _Entry:
    kind: JobKind
    body: dict[str, Any]


class _Stale(Exception):
    """The fencing status write was refused: the plan was computed from an outdated job."""


class Controller:
    def __init__(
        self,
        api: KubeApi,
        settings: Settings,
        clock: Callable[[], datetime] | None = None,
        workers: int = WORKERS,
        coalesce_seconds: float = COALESCE_SECONDS,
    ) -> None:
        self.api = api
        self.coalesce_seconds = coalesce_seconds
        # Child writes in flight across all workers: below the client's connection pool (100).
        self._inflight = asyncio.Semaphore(MAX_INFLIGHT_WRITES)
        self._urgent_inflight = asyncio.Semaphore(MAX_URGENT_INFLIGHT_WRITES)
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self.jobs: dict[JobKey, _Entry] = {}
        self.view = ChildView(lambda: self.clock())  # the indices, corrected for the watch's lag
        # Volcano Commands by their target job's uid (None: the Command CRD is not installed).
        self.commands: Any = None
        # Volcano Queues by name (`by_name`; None: the Queue CRD is not installed).
        self.queues: Any = None
        # The passes: urgent ones first, one at a time per job (late-bound `reconcile`: tests swap it).
        self.queue: WorkQueue[JobKey] = WorkQueue(lambda key: self.reconcile(key), self._retry_later, workers)
        self.events = EventSink(api.post_event, work=self.queue)  # events give way to the passes
        self._timers: dict[JobKey, asyncio.TimerHandle] = {}
        self._wake_at: dict[JobKey, datetime] = {}  # the instant each armed timer is for
        self._fell_due: dict[JobKey, datetime] = {}  # that instant, once fired, until its pass acts
        # Progress-only status writes held back: loop time the first one was, and the pass that writes.
        self._progress_since: dict[JobKey, float] = {}
        self._coalescing: dict[JobKey, asyncio.TimerHandle] = {}
        self._batching: dict[JobKey, asyncio.TimerHandle] = {}  # child events waiting for their pass
        self.batch_seconds = BATCH_SECONDS
        self.faults: FaultBook[JobKey] = FaultBook()  # refused child writes and their backoff
        # An unreachable apiserver (shell/outage.py): one WARNING and one INFO per path, and passes
        # retried with a short capped, jittered backoff (consecutive failures per job).
        self.status_outage = outage.Outage("writing job status")
        self.child_outage = outage.Outage("reading and writing children")
        self._unreachable_failures: dict[JobKey, int] = {}
        self._unreachable_in_pass: set[JobKey] = set()
        self._retries: dict[JobKey, asyncio.TimerHandle] = {}
        self._plan_cpu: dict[JobKey, tuple[object, float]] = {}  # generation, CPU seconds of its last plan
        # Done once the child caches hold their first full list; no plan is made before (it would see
        # a job without its pods).
        self.caches_ready: asyncio.Future[None] | None = None
        self.activity = 0  # events observed plus passes made: when it stops moving, the burst is over

    # -- leadership ----------------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        return self.queue.running

    def start(self) -> None:
        """Start acting: workers, and one pass over every known job (what changed while we were not
        acting is in the caches, not in the queue)."""
        if self.queue.running:  # kopf retries a failed startup handler: keep the workers already running
            return
        self.events.start()
        self.queue.start(self.caches_ready)
        for key in list(self.jobs):
            self.enqueue(key)

    async def stop(self) -> None:
        """Stop acting at once (lost leadership, shutdown). A pass cut short is like a crash at that
        point, which the executor's order makes harmless."""
        for handles in (self._timers, self._retries, self._coalescing, self._batching):
            for handle in handles.values():
                handle.cancel()
            handles.clear()
        self._wake_at.clear()
        self._fell_due.clear()
        self._progress_since.clear()
        await self.queue.stop()
        await self.events.stop()

    # -- feeding -------------------------------------------------------------------------------

    def observe_job(self, kind: JobKind, body: Body, event_type: str | None) -> None:
        self.activity += 1
        key = job_key(kind, body)
        if event_type == "DELETED":
            entry = self.jobs.pop(key, None)
            self.faults.forget(key)
            self._plan_cpu.pop(key, None)
            if entry is not None:
                self.view.forget(str(entry.body["metadata"].get("uid")))
            self._cancel_timer(key)
            metrics.JOBS_DELETED.labels(kind.resource.kind).inc()
            return
        cached = self.jobs.get(key)
        if cached is not None and _older(body, cached.body):
            # The watch delivering a version older than the one our own status write returned: planning
            # from it would only earn a 409. The newer version's own event follows.
            return
        self.jobs[key] = _Entry(kind, dict(body))
        self.enqueue(key)

    def observe_child(self, body: Body) -> None:
        """A child changed: reconcile the job that controls it (if it is one of ours)."""
        self.activity += 1
        meta = body.get("metadata", {})
        for ref in meta.get("ownerReferences") or []:
            kind = kinds.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
            if ref.get("controller") and kind is not None:
                self.view.seen(str(ref.get("uid")), str(body.get("kind")), str(meta.get("name")))
                key = (kind.resource.group, kind.resource.plural, meta.get("namespace", ""), ref["name"])
                if _finished_pod(body):
                    self.enqueue(key, urgent=True)
                else:
                    self._enqueue_soon(key)

    def observe_command(self, body: Body) -> None:
        """A Volcano Command changed: reconcile the job it is aimed at."""
        target = body.get("target") or {}
        kind = kinds.by_kind(str(target.get("apiVersion", "")), str(target.get("kind", "")))
        if kind is not None and target.get("name"):
            namespace = str((body.get("metadata") or {}).get("namespace", ""))
            self.enqueue((kind.resource.group, kind.resource.plural, namespace, str(target["name"])))

    def observe_queue(self, body: Body) -> None:
        """A Volcano Queue changed: reconcile the Volcano jobs that name it (the default queue when
        they name none)."""
        name = (body.get("metadata") or {}).get("name")
        for key, entry in list(self.jobs.items()):
            queue = (entry.body.get("spec") or {}).get("queue") or "default"
            if entry.kind.resource.group == "batch.volcano.sh" and queue == name:
                self.enqueue(key)

    def enqueue(self, key: JobKey, urgent: bool = False) -> None:
        """Queue a pass; urgent ones (a run-policy timer fell due, a pod finished) go first and never
        wait for a worker (shell/workqueue.py)."""
        self.queue.put(key, urgent)

    def _enqueue_soon(self, key: JobKey) -> None:
        """Queue a pass BATCH_SECONDS from the first of a run of events (see BATCH_SECONDS)."""
        if key in self._batching:
            return
        if self.batch_seconds <= 0:
            self.enqueue(key)
            return
        self._batching[key] = asyncio.get_running_loop().call_later(
            self.batch_seconds, self._fire, self._batching, key
        )

    def _cancel_timer(self, key: JobKey) -> None:
        self._stop_coalescing(key)
        self._wake_at.pop(key, None)
        self._fell_due.pop(key, None)
        for handles in (self._timers, self._retries, self._batching):
            handle = handles.pop(key, None)
            if handle:
                handle.cancel()

    def _arm_timer(self, key: JobKey, wake_at: datetime | None) -> None:
        handle = self._timers.pop(key, None)
        if handle:
            handle.cancel()
        self._wake_at.pop(key, None)
        if wake_at is None or key not in self.jobs:
            return
        self._wake_at[key] = wake_at
        delay = max(0.0, (wake_at - self.clock()).total_seconds())
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, self._timers, key)

    # -- working -------------------------------------------------------------------------------

    @property
    def indices(self) -> ChildIndices:
        """kopf's indices of the watched child kinds (shell/handlers.py sets them at startup)."""
        return self.view.indices

    @indices.setter
    def indices(self, value: ChildIndices) -> None:
        self.view.indices = value

    def children_of(self, uid: str) -> dict[str, dict[str, Body]]:
        return self.view.children_of(uid)

    def commands_of(self, uid: str) -> tuple[Body, ...]:
        """The job's pending Commands, oldest first; those this process deleted are gone already
        (the watch lags the DELETE, and a Command must never be carried out twice)."""
        found = (self.commands.get(uid) if self.commands is not None else None) or []
        pending = [c for c in found if not self.view.tombstoned(c["metadata"].get("uid"))]
        return tuple(
            sorted(
                pending, key=lambda c: (c["metadata"].get("creationTimestamp") or "", c["metadata"]["name"])
            )
        )

    def observed(self, entry: _Entry, key: JobKey) -> Observed:
        uid = entry.body["metadata"]["uid"]
        return Observed(
            job=entry.body,
            children=self.children_of(uid),
            now=self.clock(),
            settings=self.settings,
            faults=self.faults.faults(key),
            commands=self.commands_of(uid),
            queues=dict(self.queues.by_name) if self.queues is not None else None,
        )

    async def reconcile(self, key: JobKey) -> None:
        entry = self.jobs.get(key)
        if entry is None or entry.body["metadata"].get("deletionTimestamp"):
            return
        started = time.perf_counter()
        self.activity += 1
        self._unreachable_in_pass.discard(key)
        try:
            await self._plan_and_execute(key, entry)
        except Exception as exc:
            if not outage.transient(exc):
                raise  # the work queue logs it and retries with the fault book's backoff
            if not (self.status_outage.failing or self.child_outage.failing):
                self.status_outage.failed(exc)  # no path said so yet: one WARNING, never a traceback
            self._unreachable_in_pass.add(key)
        finally:
            metrics.RECONCILE_SECONDS.labels(entry.kind.resource.kind).observe(time.perf_counter() - started)
        if key in self._unreachable_in_pass:
            self._retry_unreachable(key)
        else:
            self._unreachable_failures.pop(key, None)

    def _retry_unreachable(self, key: JobKey) -> None:
        """The apiserver could not be reached in this pass: again after a short backoff (capped at
        4 s, jittered, so the passes of a burst do not all come back at one instant)."""
        failures = self._unreachable_failures[key] = self._unreachable_failures.get(key, 0) + 1
        self._retry_later(key, outage.backoff(failures))

    async def _plan_and_execute(self, key: JobKey, entry: _Entry) -> None:
        await self._look_up_unwatched(entry)
        observed = self.observed(entry, key)
        try:
            plan = await self._plan(key, entry, observed)
        except Exception as exc:
            await self._plan_failed(key, entry, exc)
            return
        try:
            await self.execute(key, entry, plan, observed)
        except _Stale:
            logger.debug("plan for %s was stale; planning again", key)

    async def _look_up_unwatched(self, entry: _Entry) -> None:
        """Once per job and process, before its first plan: the children of unwatched kinds it may
        own (the ssh plugin's Secret), read by name. No cache holds them and this process's memory of
        them starts empty, so without this a Secret made before a restart was neither kept nor removed
        (issue 27). A failed read fails the pass (retried): a plan must not see it missing."""
        job = entry.body
        uid = str(job["metadata"]["uid"])
        if self.view.looked_up(uid):
            return
        for ref in entry.kind.unwatched_children(job):
            try:
                child = await self.api.read_child(job["metadata"]["namespace"], ref.kind, ref.name)
            except Exception as exc:
                if outage.transient(exc):
                    self.child_outage.failed(exc)
                    raise
                self.child_outage.succeeded()  # it answered
                if status_of(exc) != 404:
                    raise
                continue
            self.child_outage.succeeded()
            if controller_uid(child) == uid:  # a foreign object of that name is not the job's to remove
                self.view.found(job, child)
        self.view.mark_looked_up(uid)

    async def _plan(self, key: JobKey, entry: _Entry, observed: Observed) -> Plan:
        """Off the event loop that serves the webhook and the watches, unless this job's plans are
        known to be cheap (INLINE_PLAN_SECONDS): a large job's plan is CPU work (docs/reliability.md)."""
        generation = entry.body["metadata"].get("generation")
        known = self._plan_cpu.get(key)
        inline = known is not None and known[0] == generation and known[1] < INLINE_PLAN_SECONDS
        plan, cpu = (
            _timed_plan(entry.kind, observed)
            if inline
            else await asyncio.to_thread(_timed_plan, entry.kind, observed)
        )
        self._plan_cpu[key] = (generation, cpu)
        return plan

    async def _plan_failed(self, key: JobKey, entry: _Entry, exc: Exception) -> None:
        """A bug in the core: visible on the job (`kubectl describe`), retried with backoff."""
        logger.exception("planning %s failed", key, exc_info=exc)
        message = f"jobwarden could not plan this job ({type(exc).__name__}: {exc}); retrying with backoff"
        await self._post_event(entry.body, Event("Warning", "ReconcileError", message))
        self._retry_later(key)

    async def execute(self, key: JobKey, entry: _Entry, plan: Plan, observed: Observed) -> None:
        job, kind = entry.body, entry.kind
        fell_due = self._fell_due.pop(key, None)  # this pass follows a run-policy timer
        plan = _without_creates_if_finished(kind, job, plan)
        if self._holds_back(key, kind, plan):
            self._arm_timer(key, plan.wake_at)
            return
        if plan.status is not None or plan.writes_children:
            fence = plan.status if plan.status is not None else job.get("status")
            try:
                await self._write_status(key, entry, fence)
            except _Stale:
                metrics.STALE_PLANS.labels(kind.resource.kind).inc()
                logger.debug("plan for %s was computed from a stale job; planning again", key)
                return
        written_at = self.clock()  # the status (a decision, when it fails the job) is stored
        if plan.status is not None:
            _count_transition(kind, job, kind.phase(job.get("status")), kind.phase(plan.status))
        self.faults.pass_started(key)
        retry = await self._write_children(key, job, kind, plan, observed.children)
        retry = not await self._delete_commands(key, job, plan, observed) or retry
        await self._show_faults(key, entry, observed)
        await asyncio.gather(*(self._post_event(job, event) for event in plan.events))
        if plan.deadline_exceeded:
            metrics.DEADLINE_ACTIONS.labels(kind.resource.kind).inc()
            self._punctuality(kind, job, "deadline", fell_due, written_at)
        if plan.delete_job:
            if await self._delete_job(key, kind, entry.body):
                self._punctuality(kind, job, "ttl", fell_due, self.clock())
            return
        self._arm_timer(key, plan.wake_at)
        if retry and key in self._unreachable_in_pass:
            return  # retried by `reconcile` after a short backoff, not the fault book's
        if retry:
            self._retry_later(key)
        else:
            self.faults.pass_succeeded(key)

    def _holds_back(self, key: JobKey, kind: JobKind, plan: Plan) -> bool:
        """Whether this pass leaves its progress-only status write (and its events) to a pass at most
        `coalesce_seconds` after the first one held back. Nothing is lost: the cached job is unchanged,
        so that pass plans the same transition from it, with whatever happened since."""
        finished = kind.phase(plan.status) in FINISHED_PHASES
        if self.coalesce_seconds <= 0 or not plan.only_reports_progress(finished):
            self._stop_coalescing(key)
            return False
        now = asyncio.get_running_loop().time()
        due = self._progress_since.setdefault(key, now) + self.coalesce_seconds
        if now >= due:
            self._stop_coalescing(key)  # this pass writes: a timer still pending would only add a pass
            return False
        if key not in self._coalescing:
            self._coalescing[key] = asyncio.get_running_loop().call_later(
                due - now, self._fire, self._coalescing, key
            )
        metrics.STATUS_WRITES_HELD.labels(kind.resource.kind).inc()
        return True

    def _stop_coalescing(self, key: JobKey) -> None:
        self._progress_since.pop(key, None)
        handle = self._coalescing.pop(key, None)
        if handle:
            handle.cancel()

    def _retry_later(self, key: JobKey, delay: float | None = None) -> None:
        """One pending retry per job. Without `delay`: a failed pass, retried with the book's backoff,
        so a child the apiserver keeps refusing costs one call (and one Warning event) per 5, 10, 20 …
        300 s, however many events arrive meanwhile."""
        if delay is None:
            delay = self.faults.failed_pass(key, asyncio.get_running_loop().time())
            logger.info("retrying %s in %.0fs (failure %d)", key, delay, self.faults.failures(key))
        previous = self._retries.pop(key, None)
        if previous:
            previous.cancel()
        self._retries[key] = asyncio.get_running_loop().call_later(delay, self._fire, self._retries, key)

    def _fire(self, handles: dict[JobKey, asyncio.TimerHandle], key: JobKey) -> None:
        handles.pop(key, None)
        if handles is self._retries:
            self.faults.retry_due(key)  # this pass attempts the refused writes again
        if handles is self._timers and key in self._wake_at:
            self._fell_due[key] = self._wake_at.pop(key)
        self.enqueue(key, urgent=handles is self._timers)  # a run-policy instant is due

    # -- children ------------------------------------------------------------------------------

    async def _write_children(
        self, key: JobKey, job: Body, kind: JobKind, plan: Plan, children: Mapping[str, Mapping[str, Body]]
    ) -> bool:
        """Create, replace, delete children, each group concurrently (bounded by `_inflight`): a job's
        8 children cost one round trip, not 8. Returns True when something failed and must be retried."""
        created = await asyncio.gather(
            *(self._bounded(self._create_one(key, job, kind, m)) for m in plan.create)
        )
        if "terminating" in created:  # the job itself goes with the namespace: nothing to retry
            return False
        replaced = await asyncio.gather(
            *(self._bounded(self._replace_one(key, job, m)) for m in plan.replace),
            *(self._bounded(self._patch_one(key, job, m)) for m in plan.patch),
        )
        deleted = await asyncio.gather(
            *(
                self._bounded(self._delete(key, job, kind, ref, children.get(ref.kind, {}).get(ref.name)))
                for ref in plan.delete
            )
        )
        return "failed" in created or False in replaced or False in deleted

    async def _bounded(self, call: Coroutine[Any, Any, Any]) -> Any:
        """At most MAX_INFLIGHT_WRITES child writes of ordinary passes at once, and apart from them
        (a burst holds every ordinary slot) MAX_URGENT_INFLIGHT_WRITES of urgent ones."""
        try:
            async with self._urgent_inflight if in_urgent_run() else self._inflight:
                return await call
        finally:
            call.close()  # a no-op once run; spares a never-awaited warning when cancelled while waiting

    async def _create_one(self, key: JobKey, job: Body, kind: JobKind, manifest: Manifest) -> str:
        child_kind, name = manifest["kind"], manifest["metadata"]["name"]
        if self.faults.backing_off(key, ("Create", child_kind, name), asyncio.get_running_loop().time()):
            return "deferred"
        try:
            made = await self._create(key, job, kind, manifest)
        except Exception as exc:
            if namespace_terminating(exc):
                return "terminating"
            await self._child_failed(key, job, "Create", child_kind, name, exc)
            return "failed"
        self._child_succeeded(key, "Create", child_kind, name)
        if made and kind.child_events:  # the training-operator's per-child event (pod and service control)
            event = Event("Normal", f"SuccessfulCreate{child_kind}", f"Created {child_kind.lower()}: {name}")
            await self._post_event(job, event)
        return "ok"

    async def _replace_one(self, key: JobKey, job: Body, manifest: Manifest) -> bool:
        try:
            await self.api.replace_child(job["metadata"]["namespace"], manifest)
        except Exception as exc:
            if status_of(exc) == 409:  # replaced from a stale cache: the newer version is on its way
                self._retry_later(key, CONFLICT_DELAY_SECONDS)
                return True
            await self._child_failed(key, job, "Update", manifest["kind"], manifest["metadata"]["name"], exc)
            return False
        self._child_succeeded(key, "Update", manifest["kind"], manifest["metadata"]["name"])
        return True

    async def _patch_one(self, key: JobKey, job: Body, patch: Manifest) -> bool:
        try:
            await self.api.patch_child(job["metadata"]["namespace"], patch)
        except Exception as exc:
            await self._child_failed(key, job, "Update", patch["kind"], patch["metadata"]["name"], exc)
            return False
        self._child_succeeded(key, "Update", patch["kind"], patch["metadata"]["name"])
        return True

    async def _create(self, key: JobKey, job: Body, kind: JobKind, manifest: Manifest) -> bool:
        """Create the child; False when it already existed under this job (nothing new was made)."""
        if GENERATE_ANNOTATION in ((manifest.get("metadata") or {}).get("annotations") or {}):
            # e.g. an ssh key pair the plan asked for: CPU work, kept off the event loop
            manifest = await asyncio.to_thread(kind.materialize, manifest)
        namespace, name = job["metadata"]["namespace"], manifest["metadata"]["name"]
        made = True
        try:
            await self.api.create_child(namespace, manifest)
            metrics.CHILDREN_CREATED.labels(kind.resource.kind, manifest["kind"]).inc()
        except Exception as exc:
            if status_of(exc) != 409:
                raise
            # AlreadyExists: ours (a lagging cache, another replica) is harmless; a foreign object
            # holding the name is a fault the job cannot get past by itself.
            existing = await self.api.read_child(namespace, manifest["kind"], name)
            if controller_uid(existing) != job["metadata"]["uid"]:
                raise ForeignChild(manifest["kind"], name, job) from exc
            made = False
        if self.view.created(job, manifest):
            self.enqueue(key)  # no watch event will come: the core records it in status on the next pass
        return made

    async def _delete(self, key: JobKey, job: Body, kind: JobKind, ref: ChildRef, child: Body | None) -> bool:
        """Delete with the observed child's uid as precondition, so a newer object that took the same
        name is never hit. Returns False when the delete failed and must be retried."""
        uid = (child or {}).get("metadata", {}).get("uid")
        try:
            await self.api.delete_child(job["metadata"]["namespace"], ref, uid=uid)
            metrics.CHILDREN_DELETED.labels(kind.resource.kind, ref.kind).inc()
            if kind.child_events:
                event = Event(
                    "Normal", f"SuccessfulDelete{ref.kind}", f"Deleted {ref.kind.lower()}: {ref.name}"
                )
                await self._post_event(job, event)
        except Exception as exc:
            # 404: already gone; 409: the uid precondition failed, the object we meant is gone.
            if status_of(exc) not in (404, 409):
                await self._child_failed(key, job, "Delete", ref.kind, ref.name, exc)
                return False
        self._child_succeeded(key, "Delete", ref.kind, ref.name)
        self.view.deleted(job, ref.kind, ref.name, uid)
        return True

    async def _child_failed(
        self, key: JobKey, job: Body, verb: str, child_kind: str, name: str, exc: Exception
    ) -> None:
        """A Warning event like upstream's `FailedCreatePod` / `FailedDeleteService`, and a retry
        later. A refusal that will not go away by itself (see `is_refusal`) is also kept for the
        job's status until the same write succeeds. An unreachable apiserver is neither: the path
        says so once (shell/outage.py) and the pass is retried soon."""
        if outage.transient(exc):
            self.child_outage.failed(exc)
            self._unreachable_in_pass.add(key)
            return
        self.child_outage.succeeded()  # it answered
        reason = str(exc) if isinstance(exc, ForeignChild) else reason_of(exc)
        logger.warning("%s %s %s for %s failed: %s", verb, child_kind, name, job["metadata"]["name"], reason)
        fault = ChildFault(verb, child_kind, name, reason)
        if is_refusal(exc):
            self.faults.refused(key, fault)
        message = f"{verb} {child_kind.lower()} {name} failed: {reason}"
        await self._post_event(job, Event("Warning", fault.reason, message))

    def _child_succeeded(self, key: JobKey, verb: str, child_kind: str, name: str) -> None:
        self.child_outage.succeeded()
        self.faults.succeeded(key, verb, child_kind, name)

    async def _show_faults(self, key: JobKey, entry: _Entry, observed: Observed) -> None:
        """When the set of refused child writes changed in this pass, write the status that shows it
        now (a second plan of the same observation, only its status is used) rather than a backoff
        period later."""
        now_faults = self.faults.faults(key)
        if now_faults == observed.faults or self.jobs.get(key) is not entry:
            return
        again = dataclasses.replace(observed, job=entry.body, faults=now_faults)
        plan = await self._plan(key, entry, again)  # where plans run is decided in one place
        if plan.status is not None:
            with contextlib.suppress(_Stale):  # the next pass shows them
                await self._write_status(key, entry, plan.status)

    async def _delete_commands(self, key: JobKey, job: Body, plan: Plan, observed: Observed) -> bool:
        """Delete the Commands the plan consumed, now that the status recording the action is
        written. Returns False when one could not be deleted (retried; the plan consumes it again
        only if it is still there, which the tombstone rules out once deleted)."""
        ok = True
        for name in plan.consumed_commands:
            uid = next(
                (c["metadata"].get("uid") for c in observed.commands if c["metadata"]["name"] == name), None
            )
            try:
                await self.api.delete_command(job["metadata"]["namespace"], name, uid)
            except Exception as exc:
                if outage.transient(exc):
                    self.child_outage.failed(exc)
                    self._unreachable_in_pass.add(key)
                    ok = False
                    continue
                if status_of(exc) not in (404, 409):  # gone already, or the name is a newer Command's
                    logger.warning("deleting Command %s failed: %s", name, reason_of(exc))
                    ok = False
                    continue
            if uid:
                self.view.tombstone(str(uid))
        return ok

    # -- the job -------------------------------------------------------------------------------

    async def _write_status(self, key: JobKey, entry: _Entry, status: Mapping[str, Any] | None) -> None:
        """PUT /status fenced by the resourceVersion of the body the plan was computed from. Raises
        `_Stale` when that write is refused, after which nothing else of the plan may happen."""
        try:
            updated = await self.api.replace_status(entry.kind.resource, entry.body, status or {})
        except Exception as exc:
            if outage.transient(exc):
                self.status_outage.failed(exc)
                raise  # nothing else of the plan happens; `reconcile` retries the pass soon
            self.status_outage.succeeded()  # it answered
            if status_of(exc) == 409:
                # Computed from a stale object. The newer version is on its way through the watch and
                # enqueues the job itself; the delayed pass is only a safety net, never a tight loop.
                self._retry_later(key, CONFLICT_DELAY_SECONDS)
                raise _Stale() from exc
            if status_of(exc) == 404:  # the job is gone
                raise _Stale() from exc
            raise
        self.status_outage.succeeded()
        # Keep the freshest body. The watch may have replaced the entry while the write was in flight
        # with the event of an earlier write (older than this answer): keeping that one would make the
        # next pass plan from an outdated job and earn a 409. A newer version from the watch is kept.
        entry.body = updated
        current = self.jobs.get(key)
        if current is not None and current is not entry and _older(current.body, updated):
            current.body = updated

    async def _post_event(self, job: Body, event: Event) -> None:
        await self.events.post(job, event)  # queued: never holds the pass (shell/events.py)

    async def _delete_job(self, key: JobKey, kind: JobKind, job: Body) -> bool:
        """TTL expired: delete fenced by uid and resourceVersion (the TTL was read from this version).
        True when this DELETE was accepted."""
        try:
            await self.api.delete_job(kind.resource, job)
        except Exception as exc:
            if outage.transient(exc):
                self.status_outage.failed(exc)
                raise
            if status_of(exc) == 409:  # changed since the plan (e.g. a new TTL): plan again
                self._retry_later(key, CONFLICT_DELAY_SECONDS)
            elif status_of(exc) != 404:
                raise
            return False
        metrics.TTL_DELETIONS.labels(kind.resource.kind).inc()
        logger.info(
            "deleted %s %s/%s: ttlSecondsAfterFinished expired",
            kind.resource.kind,
            job["metadata"]["namespace"],
            job["metadata"]["name"],
        )
        return True

    def _punctuality(
        self, kind: JobKind, job: Body, action: str, fell_due: datetime | None, acted_at: datetime
    ) -> None:
        """How long after its due instant a timer's action was answered (the operator's own view of
        the lateness the benchmark sees from outside: the two differ by the watch's delivery)."""
        if fell_due is None:
            return  # acted on by a pass no timer started (the job changed meanwhile)
        late = (acted_at - fell_due).total_seconds()
        metrics.RUNPOLICY_LATENESS.labels(kind.resource.kind, action).observe(max(0.0, late))
        logger.info(
            "%s %s: %s acted on %.3f s after it fell due",
            kind.resource.kind,
            job["metadata"]["name"],
            action,
            late,
        )


class ForeignChild(Exception):
    """A child's name is taken by an object this job does not control."""

    def __init__(self, child_kind: str, name: str, job: Body) -> None:
        owner = f"{job.get('kind')} {job['metadata']['name']}"
        super().__init__(f"409 AlreadyExists: {child_kind} {name} exists and is not controlled by {owner}")


def _timed_plan(kind: JobKind, observed: Observed) -> tuple[Plan, float]:
    """The plan and the CPU seconds this thread spent making it."""
    started = time.thread_time()
    plan = kind.plan(observed)
    return plan, time.thread_time() - started


def _finished_pod(body: Body) -> bool:
    """A pod (or MPIJob's launcher Job) that has finished may decide its job (success, failure,
    cleanPodPolicy, restart)."""
    status = body.get("status") or {}
    if body.get("kind") == "Job":
        return any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
    return body.get("kind") == "Pod" and status.get("phase") in ("Succeeded", "Failed")


def _older(incoming: Body, cached: Body) -> bool:
    """Whether `incoming` is an older version of the same object than `cached`. resourceVersions are
    opaque to clients in general; with etcd (every apiserver here) they are increasing integers, and
    anything else (or another uid: a job re-created under the same name) is never called older."""
    old_meta, new_meta = cached.get("metadata") or {}, incoming.get("metadata") or {}
    if old_meta.get("uid") != new_meta.get("uid"):
        return False
    try:
        return int(str(new_meta.get("resourceVersion"))) < int(str(old_meta.get("resourceVersion")))
    except (TypeError, ValueError):
        return False


def is_refusal(exc: BaseException) -> bool:
    """The apiserver said no for a reason a person must fix (422 invalid, 403 quota or RBAC, a name
    taken by a foreign object), as opposed to a conflict, a timeout or a 5xx that a retry cures."""
    if isinstance(exc, ForeignChild):
        return True
    status = status_of(exc)
    return status is not None and 400 <= status < 500 and status not in (404, 409, 429)


def _without_creates_if_finished(kind: JobKind, job: Body, plan: Plan) -> Plan:
    """The last line of defence: a finished job never gets a child created again."""
    if not plan.create or kind.phase(job.get("status")) not in FINISHED_PHASES:
        return plan
    logger.error(
        "refusing to create %d children for finished %s %s/%s (a bug in the plan)",
        len(plan.create),
        kind.resource.kind,
        job["metadata"]["namespace"],
        job["metadata"]["name"],
    )
    return dataclasses.replace(plan, create=[])


FINISHED = {
    "Succeeded": metrics.JOBS_SUCCEEDED,
    "Completed": metrics.JOBS_SUCCEEDED,
    "Failed": metrics.JOBS_FAILED,
}


def _count_transition(kind: JobKind, job: Body, before: str, after: str) -> None:
    if before == after:
        return
    name = kind.resource.kind
    meta = job["metadata"]
    logger.info("%s %s/%s phase %s -> %s", name, meta["namespace"], meta["name"], before or "(new)", after)
    if not before:
        metrics.JOBS_CREATED.labels(name).inc()
    if after in FINISHED:
        FINISHED[after].labels(name).inc()
