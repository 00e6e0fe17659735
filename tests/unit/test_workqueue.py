"""shell/workqueue.py on its own: one run per key at a time, and what arrives meanwhile."""

from __future__ import annotations

import asyncio

from jobwarden.shell.workqueue import WorkQueue, in_urgent_run


def test_a_key_put_while_it_runs_runs_once_more_urgently_if_any_put_was_urgent() -> None:
    runs: list[tuple[str, bool]] = []
    failed: list[str] = []

    async def scenario() -> None:
        release = asyncio.Event()

        async def run(key: str) -> None:
            runs.append((key, in_urgent_run()))
            if len(runs) == 1:
                await release.wait()
            if key == "bad":
                raise RuntimeError("boom")

        queue: WorkQueue[str] = WorkQueue(run, failed.append, workers=2)
        queue.start()
        queue.put("a")
        await asyncio.sleep(0.01)
        for urgent in (False, True, False):
            queue.put("a", urgent)  # three events while "a" runs
        assert queue.busy()
        release.set()
        queue.put("bad")
        await asyncio.sleep(0.01)
        assert not queue.busy()
        await queue.stop()
        assert not queue.running

    asyncio.run(scenario())
    assert runs[0] == ("a", False)
    assert sorted(runs[1:]) == [("a", True), ("bad", False)], "three puts while running: one more, urgent"
    assert failed == ["bad"], "a run that raised is handed to `failed`, and the worker goes on"


def test_stopping_cancels_a_spare_mid_run_so_a_lost_leader_stops_acting_at_once() -> None:
    cancelled: list[str] = []

    async def scenario() -> None:
        async def run(key: str) -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(key)
                raise

        queue: WorkQueue[str] = WorkQueue(run, lambda key: None, workers=1, spares=1)
        queue.start()
        queue.put("ordinary")
        await asyncio.sleep(0.01)
        queue.put("due", urgent=True)  # the only worker is busy: a spare takes it
        await asyncio.sleep(0.01)
        assert queue._spares
        await queue.stop()
        assert not queue.running and not queue._spares

    asyncio.run(scenario())
    assert sorted(cancelled) == ["due", "ordinary"]


def test_wait_idle_returns_once_nothing_is_queued_or_running() -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def run(key: str) -> None:
            await release.wait()

        queue: WorkQueue[str] = WorkQueue(run, lambda key: None, workers=1)
        await asyncio.wait_for(queue.wait_idle(), 1)  # nothing yet: at once
        queue.start()
        queue.put("a")
        queue.put("b")
        waiter = asyncio.create_task(queue.wait_idle())
        await asyncio.sleep(0.02)
        assert not waiter.done(), "a runs and b waits"
        release.set()
        await asyncio.wait_for(waiter, 1)
        assert not queue.busy()
        queue.put("c")  # runs at once (release is set)
        assert queue.busy()
        await asyncio.wait_for(queue.wait_idle(), 1)
        await queue.stop()

    asyncio.run(scenario())


def test_urgent_keys_put_at_once_beyond_the_idle_workers_get_spares() -> None:
    """A group of deadlines falls due at one instant (their startTimes share a second). Every put saw
    the same idle worker, so no spare started, and the rest waited for whole passes to finish: the
    late tail of the deadline at 20 jobs per second (docs/benchmarks.md)."""
    started: list[str] = []

    async def scenario() -> None:
        release = asyncio.Event()

        async def run(key: str) -> None:
            started.append(key)
            await release.wait()

        queue: WorkQueue[str] = WorkQueue(run, lambda key: None, workers=2, spares=3)
        queue.start()
        queue.put("ordinary")
        await asyncio.sleep(0.01)  # one worker busy, one idle
        for i in range(6):
            queue.put(f"due-{i}", urgent=True)
        await asyncio.sleep(0.01)
        assert sorted(started) == ["due-0", "due-1", "due-2", "due-3", "ordinary"], "1 idle worker + 3 spares"
        release.set()
        await asyncio.sleep(0.01)
        assert len(started) == 7 and not queue.busy()
        await queue.stop()

    asyncio.run(scenario())
