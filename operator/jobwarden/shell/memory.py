"""Handing freed heap back to the operating system (issue 13: RSS with 1000 live jobs).

A burst allocates and frees hundreds of MiB of short-lived JSON; glibc keeps what was freed in its heap
for reuse, so the RSS after a burst stays near its peak although the caches hold far less. Two glibc
calls fix that, through ctypes (no-ops where libc is not glibc, e.g. musl):
- `mallopt(M_ARENA_MAX, 2)` at start: each thread that allocates (the plans run in a thread pool)
  would otherwise get an arena of its own, up to 8 per core, each holding freed memory of its own;
- `malloc_trim(0)` once the operator has been quiet for a while after some work: the free pages of
  every arena go back to the kernel. It costs a few milliseconds, only after activity stops.

The cyclic garbage collector's full (generation 2) collections are moved to the same quiet moments.
CPython starts one by itself whenever enough objects have survived into the oldest generation, and a
full collection walks every tracked object the caches hold: 85 to 234 ms with 200 jobs live, during which
the event loop serves nothing. Those pauses were the late tail of run-policy lateness at 20 jobs per
second: whole groups of deadlines acted 0.25 to 0.4 s late at once (docs/benchmarks.md). So:
- `defer_full_collections()` at start freezes what the imports made (never garbage; ~56,000 objects,
  10 ms of every full collection) and raises the oldest generation's threshold out of reach; the young
  generations are collected as before, so short-lived cycles (most cyclic garbage) still go at once;
- `trim_when_quiet` runs the full collection, just before the trim, and at least every
  FULL_COLLECTION_MAX_SECONDS under work that never pauses, so cycles that reached the oldest
  generation cannot pile up."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2
QUIET_SECONDS = 10.0
FULL_COLLECTION_MAX_SECONDS = 300.0
OUT_OF_REACH = 1_000_000  # young collections between two full ones: never reached in practice


def glibc() -> Any | None:
    """The C library if it is glibc (it has malloc_trim), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_arenas(libc: Any | None = None) -> bool:
    """Call before threads start. True when the limit took effect."""
    libc = libc or glibc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, ARENAS))


def trim(libc: Any | None = None) -> bool:
    """True when memory was handed back."""
    libc = libc or glibc()
    return bool(libc is not None and libc.malloc_trim(0))


def defer_full_collections() -> None:
    """Call once the imports are done (see the module's docstring)."""
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, OUT_OF_REACH)


async def trim_when_quiet(
    activity: Callable[[], int], quiet: float = QUIET_SECONDS, most: float = FULL_COLLECTION_MAX_SECONDS
) -> None:
    """Collect fully and trim once after each stretch of work, when `activity` (a counter of work
    done) has not moved for `quiet` seconds, and collect at least every `most` seconds: work that
    pauses that long is never interrupted, work that never pauses is interrupted once per `most`."""
    libc = glibc()
    if libc is None:
        logger.info("not glibc: freed memory stays with the allocator")
    loop = asyncio.get_running_loop()
    last = done = activity()
    collected_at = loop.time()
    while True:
        await asyncio.sleep(quiet)
        now = activity()
        if (now == last and now != done) or loop.time() - collected_at >= most:
            gc.collect()
            collected_at = loop.time()
            if libc is not None:
                trim(libc)
            done = now
        last = now
