"""Kubernetes Events, posted off the reconcile path.

A job's pass used to await its events: upstream's per-child `SuccessfulCreatePod`/`Service` events
are 8 of a PyTorchJob's ~19 writes, so in a burst they held the worker and competed with the creates
for the in-flight bound. Like client-go's event broadcaster, the sink queues them (stamped when they
happened) and a few senders post them in order of occurrence; a full queue drops the newest and counts
it (`jobwarden_events_dropped_total`; client-go's broadcaster drops beyond 1000 queued). An event is
best effort: never worth blocking a reconcile.

While the controller has passes queued or running (`work.busy()`), one sender posts at most
BUSY_EVENTS_PER_SECOND: in a burst the events (as many as the children) would otherwise take a good
part of the apiserver's capacity away from the creates, status writes and deletes that the user waits
for (measured in docs/benchmarks.md). All senders post once the work is done, and the queue drains.
A burst so long that the queue fills drops events, as client-go's broadcaster does.

An unreachable apiserver (shell/outage.py) is waited out: a sender whose post finds no apiserver
backs off (capped, jittered; all senders share the path's failure count) and posts the same event
again, until UNPOSTED_SECONDS after it happened; an event older than that is dropped and counted
(`jobwarden_events_unposted_total`), never retried forever (client-go's broadcaster gives an event 12
tries, about two minutes). The path logs one WARNING when posts start failing and one INFO when they
go through again, instead of a line per event (issue 27: 8,863 lines for a 15 s outage). A refusal
(an HTTP answer, e.g. the namespace is gone) is logged and the event dropped, as before."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from jobwarden.core.plan import Body, Event
from jobwarden.shell import metrics, outage
from jobwarden.shell.api import reason_of

logger = logging.getLogger(__name__)

SENDERS = 4
BUSY_EVENTS_PER_SECOND = 10
DROPS_PER_LOG = 1000  # a full queue logs its first drop and every 1000th, not each one
CAPACITY = 10_000
DRAIN_SECONDS = 2.0  # on stop: what is queued gets this long to go out
UNPOSTED_SECONDS = 60.0  # an event the apiserver could not take within this long is dropped

Post = Callable[[Body, Event, datetime], Awaitable[None]]


class Work(Protocol):
    """What the senders give way to: the controller's work queue."""

    def busy(self) -> bool: ...

    async def wait_idle(self) -> None: ...


class _NoWork:
    def busy(self) -> bool:
        return False

    async def wait_idle(self) -> None:
        return None


class EventSink:
    def __init__(
        self,
        post: Post,
        senders: int = SENDERS,
        capacity: int = CAPACITY,
        work: Work | None = None,
    ) -> None:
        self._post = post
        self._work = work or _NoWork()
        self._dropped = 0
        self._count = senders
        self._queue: asyncio.Queue[tuple[Body, Event, datetime]] = asyncio.Queue(capacity)
        self._senders: list[asyncio.Task[None]] = []
        self.outage = outage.Outage("posting events")
        self.unposted_seconds = UNPOSTED_SECONDS

    @property
    def running(self) -> bool:
        return bool(self._senders)

    def start(self) -> None:
        if not self._senders:
            self._senders = [
                asyncio.create_task(self._send(always=i == 0), name=f"events-{i}") for i in range(self._count)
            ]

    async def post(self, job: Body, event: Event) -> None:
        """Queue it while the senders run; post it at once otherwise (a single pass outside the
        worker loop, as in the unit tests, sees its events when it returns)."""
        at = datetime.now(UTC)
        if not self._senders:
            await self._deliver(job, event, at)  # once: a caller outside the senders never waits
            return
        try:
            self._queue.put_nowait((_reference(job), event, at))
        except asyncio.QueueFull:
            metrics.EVENTS_DROPPED.inc()
            self._dropped += 1
            if self._dropped % DROPS_PER_LOG == 1:
                logger.warning(
                    "event queue full (%d queued): dropped %s for %s (%d dropped so far)",
                    self._queue.qsize(),
                    event.reason,
                    job["metadata"]["name"],
                    self._dropped,
                )

    async def stop(self, drain: float = DRAIN_SECONDS) -> None:
        """Let what is queued go out (bounded), then stop the senders."""
        senders, self._senders = self._senders, []
        if not senders:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain)
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)

    async def _send(self, always: bool) -> None:
        while True:
            while not always and self._work.busy():
                await self._work.wait_idle()
            job, event, at = await self._queue.get()
            try:
                while not self._expired(event, at) and not await self._deliver(job, event, at):
                    await asyncio.sleep(outage.backoff(self.outage.failures))
            finally:
                self._queue.task_done()
            if self._work.busy():
                await asyncio.sleep(1 / BUSY_EVENTS_PER_SECOND)

    async def _deliver(self, job: Body, event: Event, at: datetime) -> bool:
        """Post it; False when the apiserver was unreachable (worth another try)."""
        try:
            await self._post(job, event, at)
        except Exception as exc:  # best effort
            if outage.transient(exc):
                self.outage.failed(exc)
                return False
            self.outage.succeeded()  # it answered
            logger.warning(
                "posting event %s for %s failed: %s", event.reason, job["metadata"]["name"], reason_of(exc)
            )
            return True
        self.outage.succeeded()
        return True

    def _expired(self, event: Event, at: datetime) -> bool:
        """Too old to be worth posting (after a long outage): dropped and counted."""
        if (datetime.now(UTC) - at).total_seconds() < self.unposted_seconds:
            return False
        metrics.EVENTS_UNPOSTED.inc()
        logger.debug("event %s dropped: not posted within %.0f s", event.reason, self.unposted_seconds)
        return True


def _reference(job: Body) -> Body:
    """What an event needs of its job (`involvedObject`): a queued event must not keep a whole,
    possibly outdated, job body alive."""
    meta = job.get("metadata") or {}
    kept = ("name", "namespace", "uid", "resourceVersion")
    return {
        "apiVersion": job.get("apiVersion"),
        "kind": job.get("kind"),
        "metadata": {k: meta[k] for k in kept if k in meta},
    }
