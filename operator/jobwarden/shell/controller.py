"""The reconcile engine: a store of the latest job bodies, a per-job work queue, and the executor of
the pure core's plans.

Level-triggered: any event for a job or one of its children enqueues the job; a worker computes
`kind.plan(Observed(...))` from the latest body and the children in kopf's indices, then executes
it. One job is never reconciled by two workers at once; events that arrive meanwhile coalesce into
one more pass. Wake-ups (`Plan.wake_at`) are asyncio timers re-armed on every pass, computed from
`status` timestamps, so nothing is lost across operator restarts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobwarden import kinds
from jobwarden.core.plan import Body, Event, Observed, Plan, Settings
from jobwarden.kinds.base import JobKind
from jobwarden.shell import metrics
from jobwarden.shell.api import KubeApi, namespace_terminating, reason_of, status_of

logger = logging.getLogger(__name__)

# (group, plural, namespace, name)
JobKey = tuple[str, str, str, str]
# Child kind -> the kopf index holding slim child bodies keyed by their controller owner's uid.
ChildIndices = Mapping[str, Mapping[str, Any]]

RETRY_DELAY_SECONDS = 5.0  # first retry after a failed write; doubles per failure, up to the maximum
MAX_RETRY_DELAY_SECONDS = 300.0
CONFLICT_DELAY_SECONDS = 1.0
WORKERS = 4
# How long a child we deleted stays hidden from plans while the watch catches up with the deletion.
TOMBSTONE_SECONDS = 120.0


def job_key(kind: JobKind, body: Body) -> JobKey:
    meta = body["metadata"]
    return (kind.resource.group, kind.resource.plural, meta["namespace"], meta["name"])


@dataclass
class _Entry:
    kind: JobKind
    body: dict[str, Any]


class Controller:
    def __init__(self, api: KubeApi, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self.api = api
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self.jobs: dict[JobKey, _Entry] = {}
        self.indices: ChildIndices = {}
        self._queue: asyncio.Queue[JobKey] = asyncio.Queue()
        self._queued: set[JobKey] = set()
        self._busy: set[JobKey] = set()
        self._again: set[JobKey] = set()
        self._timers: dict[JobKey, asyncio.TimerHandle] = {}
        self._workers: list[asyncio.Task[None]] = []
        # uid -> monotonic expiry of children whose deletion this process issued. Without it, a pod
        # deleted to be recreated could still be in the index (the watch lags the DELETE) and be
        # counted as failed a second time by the next plan.
        self._tombstones: dict[str, float] = {}
        self._failures: dict[JobKey, int] = {}  # consecutive failed passes, for the retry backoff
        self._retries: dict[JobKey, asyncio.TimerHandle] = {}

    # -- feeding -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._workers:  # kopf retries a failed startup handler: keep the workers already running
            return
        self._workers = [asyncio.create_task(self._work(), name=f"reconcile-{i}") for i in range(WORKERS)]

    async def stop(self) -> None:
        for handle in [*self._timers.values(), *self._retries.values()]:
            handle.cancel()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    def observe_job(self, kind: JobKind, body: Body, event_type: str | None) -> None:
        key = job_key(kind, body)
        if event_type == "DELETED":
            self.jobs.pop(key, None)
            self._failures.pop(key, None)
            self._cancel_timer(key)
            metrics.JOBS_DELETED.labels(kind.resource.kind).inc()
            return
        self.jobs[key] = _Entry(kind, dict(body))
        self.enqueue(key)

    def observe_child(self, body: Body) -> None:
        """A child changed: reconcile the job that controls it (if it is one of ours)."""
        meta = body.get("metadata", {})
        for ref in meta.get("ownerReferences") or []:
            kind = kinds.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
            if ref.get("controller") and kind is not None:
                self.enqueue(
                    (kind.resource.group, kind.resource.plural, meta.get("namespace", ""), ref["name"])
                )

    def enqueue(self, key: JobKey) -> None:
        if key in self._busy:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _cancel_timer(self, key: JobKey) -> None:
        for handles in (self._timers, self._retries):
            handle = handles.pop(key, None)
            if handle:
                handle.cancel()

    def _arm_timer(self, key: JobKey, wake_at: datetime | None) -> None:
        handle = self._timers.pop(key, None)
        if handle:
            handle.cancel()
        if wake_at is None or key not in self.jobs:
            return
        delay = max(0.0, (wake_at - self.clock()).total_seconds())
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, self._timers, key)

    # -- working -------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._busy.add(key)
            try:
                await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("reconcile of %s failed", key)
                self._retry_later(key)
            finally:
                self._busy.discard(key)
                if key in self._again:
                    self._again.discard(key)
                    self.enqueue(key)

    def children_of(self, uid: str) -> dict[str, dict[str, Body]]:
        now = time.monotonic()
        self._tombstones = {k: v for k, v in self._tombstones.items() if v > now}
        children: dict[str, dict[str, Body]] = {}
        for child_kind, index in self.indices.items():
            store = index.get(uid) if hasattr(index, "get") else None
            children[child_kind] = {
                c["metadata"]["name"]: c
                for c in (store or [])
                if c["metadata"].get("uid") not in self._tombstones
            }
        return children

    async def reconcile(self, key: JobKey) -> None:
        entry = self.jobs.get(key)
        if entry is None or entry.body["metadata"].get("deletionTimestamp"):
            return
        started = time.perf_counter()
        observed = Observed(
            job=entry.body,
            children=self.children_of(entry.body["metadata"]["uid"]),
            now=self.clock(),
            settings=self.settings,
        )
        plan = entry.kind.plan(observed)
        try:
            await self.execute(key, entry, plan, observed.children)
        finally:
            metrics.RECONCILE_SECONDS.labels(entry.kind.resource.kind).observe(time.perf_counter() - started)

    async def execute(
        self, key: JobKey, entry: _Entry, plan: Plan, children: Mapping[str, Mapping[str, Body]]
    ) -> None:
        job, kind = entry.body, entry.kind
        retry = await self._write_children(job, kind, plan, children)
        if plan.status is not None and not await self._write_status(key, entry, plan):
            return  # stale: the newer job version is already on its way through the watch
        if plan.status is not None:
            _count_transition(kind, kind.phase(job.get("status")), kind.phase(plan.status))
        for event in plan.events:
            await self._post_event(job, event)
            if "deadline" in event.message:  # `... was active longer than specified deadline`
                metrics.DEADLINE_ACTIONS.labels(kind.resource.kind).inc()
        if plan.delete_job:
            await self._delete_job(kind, job)
            return
        self._arm_timer(key, plan.wake_at)
        if retry:
            self._retry_later(key)
        else:
            self._failures.pop(key, None)

    def _retry_later(self, key: JobKey, delay: float | None = None) -> None:
        """One pending retry per job. Without `delay`: exponential backoff, so a child the apiserver
        keeps refusing costs one call (and one Warning event) per 5, 10, 20 … 300 s, however many
        events arrive meanwhile."""
        if delay is None:
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            delay = min(RETRY_DELAY_SECONDS * 2 ** (failures - 1), MAX_RETRY_DELAY_SECONDS)
            logger.info("retrying %s in %.0fs (failure %d)", key, delay, failures)
        previous = self._retries.pop(key, None)
        if previous:
            previous.cancel()
        self._retries[key] = asyncio.get_running_loop().call_later(delay, self._fire, self._retries, key)

    def _fire(self, handles: dict[JobKey, asyncio.TimerHandle], key: JobKey) -> None:
        handles.pop(key, None)
        self.enqueue(key)

    async def _write_children(
        self, job: Body, kind: JobKind, plan: Plan, children: Mapping[str, Mapping[str, Body]]
    ) -> bool:
        """Create, replace, delete children. Returns True when something failed and must be retried."""
        namespace = job["metadata"]["namespace"]
        failed = False
        for manifest in plan.create:
            try:
                await self.api.create_child(namespace, manifest)
                metrics.CHILDREN_CREATED.labels(kind.resource.kind, manifest["kind"]).inc()
            except Exception as exc:
                if status_of(exc) == 409:  # AlreadyExists: deterministic names make this harmless
                    continue
                if namespace_terminating(exc):  # the job itself goes with the namespace: nothing to retry
                    return False
                failed = True
                await self._warn_child_failure(
                    job, "Create", manifest["kind"], manifest["metadata"]["name"], exc
                )
        for manifest in plan.replace:
            try:
                await self.api.replace_child(namespace, manifest)
            except Exception as exc:
                failed = True
                await self._warn_child_failure(
                    job, "Update", manifest["kind"], manifest["metadata"]["name"], exc
                )
        for ref in plan.delete:
            try:
                await self.api.delete_child(namespace, ref)
                metrics.CHILDREN_DELETED.labels(kind.resource.kind, ref.kind).inc()
            except Exception as exc:
                if status_of(exc) != 404:
                    failed = True
                    await self._warn_child_failure(job, "Delete", ref.kind, ref.name, exc)
                    continue
            self._bury(children.get(ref.kind, {}).get(ref.name))
        return failed

    def _bury(self, child: Body | None) -> None:
        uid = (child or {}).get("metadata", {}).get("uid")
        if uid:
            self._tombstones[uid] = time.monotonic() + TOMBSTONE_SECONDS

    async def _warn_child_failure(
        self, job: Body, verb: str, child_kind: str, name: str, exc: Exception
    ) -> None:
        """A Warning event like upstream's `FailedCreatePod` / `FailedDeleteService`, then retry later."""
        logger.warning(
            "%s %s %s for %s failed: %s", verb, child_kind, name, job["metadata"]["name"], reason_of(exc)
        )
        message = f"{verb} {child_kind.lower()} {name} failed: {reason_of(exc)}"
        await self._post_event(job, Event("Warning", f"Failed{verb}{child_kind}", message))

    async def _write_status(self, key: JobKey, entry: _Entry, plan: Plan) -> bool:
        assert plan.status is not None
        try:
            updated = await self.api.replace_status(entry.kind.resource, entry.body, plan.status)
        except Exception as exc:
            if status_of(exc) == 409:
                # Computed from a stale object. The newer version is on its way through the watch and
                # enqueues the job itself; the delayed pass is only a safety net, never a tight loop.
                logger.debug("status write for %s conflicted; planning again", key)
                self._retry_later(key, CONFLICT_DELAY_SECONDS)
                return False
            if status_of(exc) == 404:  # the job is gone
                return False
            raise
        # Keep the freshest body, so a pass racing the watch event does not recompute from stale
        # status, unless the watch delivered a newer version while the write was in flight.
        if self.jobs.get(key) is entry:
            entry.body = updated
        return True

    async def _post_event(self, job: Body, event: Event) -> None:
        try:
            await self.api.post_event(job, event)
        except Exception as exc:  # an event is best effort: never block the reconcile on it
            logger.warning(
                "posting event %s for %s failed: %s", event.reason, job["metadata"]["name"], reason_of(exc)
            )

    async def _delete_job(self, kind: JobKind, job: Body) -> None:
        try:
            await self.api.delete_job(kind.resource, job)
            metrics.TTL_DELETIONS.labels(kind.resource.kind).inc()
            logger.info(
                "deleted %s %s/%s: ttlSecondsAfterFinished expired",
                kind.resource.kind,
                job["metadata"]["namespace"],
                job["metadata"]["name"],
            )
        except Exception as exc:
            if status_of(exc) not in (404, 409):
                raise


FINISHED = {
    "Succeeded": metrics.JOBS_SUCCEEDED,
    "Completed": metrics.JOBS_SUCCEEDED,
    "Failed": metrics.JOBS_FAILED,
}


def _count_transition(kind: JobKind, before: str, after: str) -> None:
    if before == after:
        return
    name = kind.resource.kind
    logger.info("%s phase %s -> %s", name, before or "(new)", after)
    if not before:
        metrics.JOBS_CREATED.labels(name).inc()
    if after in FINISHED:
        FINISHED[after].labels(name).inc()
