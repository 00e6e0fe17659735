"""shell/memory.py: the glibc calls take effect here (the image and CI are glibc), and the trim comes
once after a stretch of work, never during it."""

from __future__ import annotations

import asyncio
from typing import Any

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
