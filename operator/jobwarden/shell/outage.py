"""An unreachable apiserver is a transient fault (issue 27): every path that talks to it backs off
(capped, jittered) and says so once.

A 15 s control-plane blip (an apiserver upgrade restarts it) used to cost 8,863 log lines: each
event post failing at once and logged, each failed status write a traceback from the work queue.
Now each path (`Outage`: event posts, status writes, child writes, child watches, kopf's watches,
the lease) logs one WARNING when it starts failing and one INFO when it answers again, and shows
the state in `jobwarden_apiserver_unreachable{path}`. What counts (`transient`) is an error without an
HTTP answer (refused, reset, closed, timed out) and a 502/503/504 (an apiserver shutting down or
starting answers 503); any other answer (a 409, a 422, a 500) is the apiserver's word and is
handled where it was before."""

from __future__ import annotations

import logging
import random
import socket
import time
from typing import Final

import aiohttp

from jobwarden.shell import metrics
from jobwarden.shell.kubeclient import ApiError

logger = logging.getLogger(__name__)

# The request paths' retry delays: 0.5 s doubling to this cap, each drawn from [d/2, d] so the passes
# of a burst that failed together do not come back together.
BACKOFF_BASE_SECONDS: Final = 0.5
BACKOFF_CAP_SECONDS: Final = 4.0


UNREACHABLE: Final = (
    ConnectionError,  # refused, reset, aborted; httppool's ConnectionLost and BadAnswer
    TimeoutError,
    socket.gaierror,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
)


def unreachable(exc: BaseException) -> bool:
    """No answer from the apiserver: connection refused, reset or closed, a timeout, a name that
    does not resolve, a body cut short. A plain OSError too: asyncio's "Multiple exceptions: [Errno
    111] Connect call failed" when every address of the host refused (never PermissionError or a
    certificate error, which are no transient fault)."""
    return isinstance(exc, UNREACHABLE) or type(exc) is OSError


def transient(exc: BaseException) -> bool:
    """Unreachable, or an apiserver that says it cannot serve now: 503 (shutting down, starting; the
    apiserver answers "apiserver is shutting down" for the last requests before it stops), 502 and
    504 from a proxy in front of it. Waited out like an outage, quietly."""
    return unreachable(exc) or (isinstance(exc, ApiError) and exc.status in (502, 503, 504))


def backoff(failures: int, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_CAP_SECONDS) -> float:
    """The delay after `failures` consecutive failures (1 = the first), jittered."""
    delay = min(cap, base * 2 ** max(0, failures - 1))
    return random.uniform(delay / 2, delay)


class Outage:
    """One path's view of the apiserver. `failed(exc, member)` and `succeeded(member)`: a path with
    several independent members (one watch stream per kind and namespace) is failing while any of its
    members is, so it says WARNING once when the first fails and INFO once when the last recovers."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.failures = 0  # consecutive failures of the path
        self._failing: set[str] = set()
        self._since = 0.0
        self._gauge = metrics.APISERVER_UNREACHABLE.labels(path)

    @property
    def failing(self) -> bool:
        return bool(self._failing)

    def failed(self, exc: BaseException, member: str = "") -> None:
        self.failures += 1
        if not self._failing:
            self._since = time.monotonic()
            self._gauge.set(1)
            logger.warning(
                "%s: the apiserver is unreachable (%s); retrying with backoff, quiet until it answers",
                self.path,
                describe(exc),
            )
        self._failing.add(member)

    def succeeded(self, member: str = "") -> None:
        if member not in self._failing:
            if not self._failing:
                self.failures = 0
            return
        self._failing.discard(member)
        if self._failing:
            return
        logger.info(
            "%s: the apiserver answers again, after %.1f s and %d failed attempts",
            self.path,
            time.monotonic() - self._since,
            self.failures,
        )
        self.failures = 0
        self._gauge.set(0)


def describe(exc: BaseException) -> str:
    """One line, never a traceback: `ClientConnectorError: Cannot connect to host …`."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    if isinstance(exc, _KopfError):
        return text  # kopf's own rendering, `ClientConnectorError(...)`
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class KopfRetries(logging.Filter):
    """kopf's own requests (its watches of the job kinds) log an ERROR line for every retry: ~4 a
    second for a 15 s outage. On the log handlers, this filter turns their series into the `Outage`
    lines: the first retry of a failing period becomes the WARNING, the others are dropped, and
    kopf's DEBUG "Request attempt … succeeded" (kopf's watching logger is set to DEBUG for it) becomes
    the INFO. kopf's other DEBUG lines of that logger are dropped unless the log level is DEBUG."""

    LOGGER = "kopf._cogs.clients.watching"

    def __init__(self, outage: Outage | None = None) -> None:
        super().__init__()
        self.outage = outage or Outage("kopf's watches")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Request attempt"):
            # by resource, not by URL: a later request for it (another resourceVersion) answering
            # ends the failure even when kopf gave up on the first one (it escalates after ~5 min)
            what = message.partition(": ")[2].partition(" -> ")[0].partition("?")[0]
            if "; will retry:" in message:
                self.outage.failed(_KopfError(message.rpartition(" -> ")[2]), what)
                return False
            if " succeeded: " in message:
                self.outage.succeeded(what)
                return False
        # kopf's "escalating" (an ERROR) goes out as kopf wrote it
        return record.levelno > logging.DEBUG or logging.getLogger().getEffectiveLevel() <= logging.DEBUG

    @classmethod
    def install(cls) -> KopfRetries:
        """On every handler of the root logger (kopf's), and kopf's watching logger at DEBUG."""
        retries = cls()
        for handler in logging.getLogger().handlers:
            handler.addFilter(retries)
        logging.getLogger(cls.LOGGER).setLevel(logging.DEBUG)
        return retries


class _KopfError(Exception):
    """kopf's error as its log line shows it (`ClientConnectorError(...)`)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
