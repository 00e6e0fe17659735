"""shell/memory.py: the glibc calls take effect here (the image and CI are glibc), and the trim comes
once after a stretch of work, never during it."""

from __future__ import annotations

import asyncio
import gc
import itertools
from typing import Any

import pytest

from jobwarden.shell import memory


def test_on_glibc_the_arena_limit_and_the_trim_take_effect() -> None:
    libc = memory.glibc()
    assert libc is not None, "CI and the image run on glibc (Debian)"
    assert memory.limit_arenas(libc)
    memory.trim(libc)  # returns whether memory went back; that depends on the heap, not on us


class CountingLibc:
    def __init__(self) -> None:
        self.trims = 0

    def malloc_trim(self, pad: int) -> int:
        self.trims += 1
        return 1

    def mallopt(self, option: int, value: int) -> int:
        return 1


def test_the_trim_comes_once_after_work_stops_and_never_while_it_goes_on(monkeypatch: Any) -> None:
    libc = CountingLibc()
    monkeypatch.setattr(memory, "glibc", lambda: libc)
    work = [0]

    async def scenario() -> None:
        task = asyncio.create_task(memory.trim_when_quiet(lambda: work[0], quiet=0.05))
        for _ in range(40):  # busy: the counter moves every 5 ms
            work[0] += 1
            await asyncio.sleep(0.005)
        assert libc.trims == 0, "never while the work goes on"
        await asyncio.sleep(0.2)
        assert libc.trims == 1, "once the work stopped"
        await asyncio.sleep(0.2)
        assert libc.trims == 1, "and not again while nothing happens"
        task.cancel()

    asyncio.run(scenario())


def test_full_collections_are_deferred_but_young_ones_stay_automatic() -> None:
    before = gc.get_threshold()
    try:
        memory.defer_full_collections()
        young, middle, full = gc.get_threshold()
        assert (young, middle) == before[:2] and full == memory.OUT_OF_REACH
        assert gc.get_freeze_count() > 0, "what the imports made is frozen"
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.parametrize("busy", [False, True], ids=["quiet after work", "never quiet"])
def test_a_full_collection_runs_when_quiet_and_at_least_every_bound(
    busy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    collections: list[float] = []
    ticks = itertools.count()
    work = 5  # calls of activity() that see new work before it stops (unless busy)

    def activity() -> int:
        tick = next(ticks)
        return tick if busy or tick < work else work

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        monkeypatch.setattr(gc, "collect", lambda *a: collections.append(loop.time() - started) or 0)
        task = asyncio.create_task(memory.trim_when_quiet(activity, quiet=0.01, most=0.2))
        await asyncio.sleep(0.45)
        task.cancel()

    asyncio.run(scenario())
    if busy:
        assert len(collections) == 2 and all(t >= 0.2 * (i + 1) for i, t in enumerate(collections))
    else:
        assert len(collections) == 2, "once after the work stopped, then at the bound while idle"
        assert collections[0] < 0.1 and collections[1] - collections[0] >= 0.2
