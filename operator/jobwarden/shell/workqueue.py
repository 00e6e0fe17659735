"""The reconcile work queue (what client-go's workqueue is to a Go controller).

- A key waits in the queue at most once; urgent keys (a run-policy instant is due, a pod finished) go
  before the ordinary ones, FIFO within a rank: under a burst of new jobs, a TTL, a deadline or the
  cleanup after a success would otherwise wait behind every job created before it (issue 13).
- A key is never run by two workers at once; what arrives while it runs coalesces into one more run,
  urgent if any of it was.
- An urgent key that finds every worker busy starts one of at most `spares` spare workers, which run
  urgent keys while any wait and then end: under a creation burst every worker is held by a pass
  creating 8 children, and a TTL fell due 0.45 s late behind them.
- `in_urgent_run()` tells the code a worker runs whether it serves an urgent key (its writes skip the
  bound the ordinary ones share)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

URGENT, ORDINARY = 0, 1  # ranks
SPARE_WORKERS = 4

K = TypeVar("K", bound=Hashable)

_URGENT_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar("urgent_run", default=False)


def in_urgent_run() -> bool:
    """Whether the calling task runs (or was started by) an urgent key's run."""
    return _URGENT_RUN.get()


class WorkQueue(Generic[K]):
    def __init__(
        self,
        run: Callable[[K], Awaitable[None]],
        failed: Callable[[K], None],
        workers: int,
        spares: int = SPARE_WORKERS,
    ) -> None:
        """`run(key)` is the work; `failed(key)` is called when it raised (after logging it)."""
        self._run = run
        self._failed = failed
        self._count = workers
        self._spare_count = spares
        # (rank, sequence, key). `_queued` holds each waiting key's best rank; an entry whose rank is no
        # longer that one is a superseded duplicate, skipped when it comes up.
        self._heap: asyncio.PriorityQueue[tuple[int, int, K]] = asyncio.PriorityQueue()
        self._queued: dict[K, int] = {}
        self._sequence = 0
        self._urgent_waiting = 0  # keys in `_queued` with rank URGENT
        self._running: set[K] = set()
        self._again: set[K] = set()
        self._again_urgent: set[K] = set()
        self._idle = 0  # workers waiting for the queue
        self._workers: list[asyncio.Task[None]] = []
        self._spares: set[asyncio.Task[None]] = set()
        self._spares_starting = 0  # created, not yet running: each will take one urgent key
        self._ready: asyncio.Future[None] | None = None
        self._became_idle = asyncio.Event()  # set while nothing is queued or running
        self._became_idle.set()

    @property
    def running(self) -> bool:
        """Whether workers were started (and not stopped)."""
        return bool(self._workers)

    def busy(self) -> bool:
        """Keys queued or running."""
        return bool(self._queued or self._running)

    async def wait_idle(self) -> None:
        """Return once nothing is queued or running (at once if so already)."""
        await self._became_idle.wait()

    def qsize(self) -> int:
        """Entries in the queue, superseded ones included."""
        return self._heap.qsize()

    def start(self, ready: asyncio.Future[None] | None = None) -> None:
        """Start the workers; none takes a key before `ready` is done."""
        if self._workers:
            return
        self._ready = ready
        self._workers = [asyncio.create_task(self._work(), name=f"reconcile-{i}") for i in range(self._count)]

    async def stop(self) -> None:
        """Cancel every worker at once (what is queued stays queued for the next start)."""
        tasks, self._workers = [*self._workers, *self._spares], []
        self._spares.clear()
        self._spares_starting = 0
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def put(self, key: K, urgent: bool = False) -> None:
        if key in self._running:
            self._again.add(key)
            if urgent:
                self._again_urgent.add(key)
            return
        rank = URGENT if urgent else ORDINARY
        if self._queued.get(key, ORDINARY + 1) <= rank:
            return
        self._queued[key] = rank
        self._became_idle.clear()
        self._sequence += 1
        self._heap.put_nowait((rank, self._sequence, key))
        if rank == URGENT:
            self._urgent_waiting += 1
            self._start_spare()

    def _start_spare(self) -> None:
        """A spare worker for the urgent entry just queued, unless an idle worker or a spare about to
        start will take it. (Counting only the idle workers started none for a group of keys put at
        once: each put saw the same idle worker, which takes one key.)"""
        ready = self._ready is None or self._ready.done()
        if not self._workers or not ready or len(self._spares) >= self._spare_count:
            return
        if self._urgent_waiting <= self._idle + self._spares_starting:
            return
        self._spares_starting += 1
        task = asyncio.create_task(self._spare(), name="reconcile-spare")
        self._spares.add(task)
        task.add_done_callback(self._spares.discard)

    async def _work(self) -> None:
        if self._ready is not None:
            await asyncio.shield(self._ready)
        while True:
            self._idle += 1
            try:
                rank, _, key = await self._heap.get()
            finally:
                self._idle -= 1
            await self._take(rank, key)

    async def _spare(self) -> None:
        """Run urgent keys while any wait (they sort first), then end."""
        self._spares_starting -= 1
        while self._urgent_waiting and not self._heap.empty():
            rank, _, key = self._heap.get_nowait()
            await self._take(rank, key)

    async def _take(self, rank: int, key: K) -> None:
        if self._queued.get(key) != rank:
            return  # superseded by an urgent entry for the same key, which ran already
        del self._queued[key]
        if rank == URGENT:
            self._urgent_waiting -= 1
        self._running.add(key)
        urgent = _URGENT_RUN.set(rank == URGENT)
        try:
            await self._run(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("reconcile of %s failed", key)
            self._failed(key)
        finally:
            _URGENT_RUN.reset(urgent)
            self._running.discard(key)
            if key in self._again:
                self._again.discard(key)
                self.put(key, urgent=key in self._again_urgent)
            self._again_urgent.discard(key)
            if not self.busy():
                self._became_idle.set()
