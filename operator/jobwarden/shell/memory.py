"""Handing freed heap back to the operating system (issue 13: RSS with 1000 live jobs).

A burst allocates and frees hundreds of MiB of short-lived JSON; glibc keeps what was freed in its heap
for reuse, so the RSS after a burst stays near its peak although the caches hold far less. Two glibc
calls fix that, through ctypes (no-ops where libc is not glibc, e.g. musl):
- `mallopt(M_ARENA_MAX, 2)` at start: each thread that allocates (the plans run in a thread pool)
  would otherwise get an arena of its own, up to 8 per core, each holding freed memory of its own;
- `malloc_trim(0)` once the operator has been quiet for a while after some work: the free pages of
  every arena go back to the kernel. It costs a few milliseconds, only after activity stops."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2
QUIET_SECONDS = 10.0


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


async def trim_when_quiet(activity: Callable[[], int], quiet: float = QUIET_SECONDS) -> None:
    """Trim once after each stretch of work, when `activity` (a counter of work done) has not moved for
    `quiet` seconds: work that never pauses that long is never interrupted by a trim."""
    libc = glibc()
    if libc is None:
        logger.info("not glibc: freed memory stays with the allocator")
        return
    last = trimmed = activity()
    while True:
        await asyncio.sleep(quiet)
        now = activity()
        if now == last and now != trimmed:
            trim(libc)
            trimmed = now
        last = now
