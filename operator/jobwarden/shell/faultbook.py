"""Per job: the child writes the apiserver refused, and the backoff of the retries they earn.

The controller keeps the retry timers; this book keeps what they are computed from, so the rules are
in one place:
- a refused write (a 403, a quota, a foreign object holding the name: `controller.is_refusal`) is
  shown in the job's status (`Observed.faults`) until the same write succeeds;
- failed passes back off exponentially, 5, 10, 20 … 300 s, however many events arrive meanwhile;
- a pass that an event triggers inside the backoff period skips the refused write and leaves it to the
  pending retry (`backing_off`): each attempt would double the backoff, so a few pod events would push
  the next retry, and the recovery once the cause is fixed, minutes out."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from jobwarden.core.plan import ChildFault

RETRY_DELAY_SECONDS = 5.0  # first retry after a failed write; doubles per failure, up to the maximum
MAX_RETRY_DELAY_SECONDS = 300.0

K = TypeVar("K", bound=Hashable)
FaultKey = tuple[str, str, str]  # (verb, kind, name)


class FaultBook(Generic[K]):
    def __init__(self) -> None:
        self._faults: dict[K, dict[FaultKey, ChildFault]] = {}
        self._failures: dict[K, int] = {}  # consecutive failed passes
        self._backoff_until: dict[K, float] = {}  # loop time the pending backoff retry is due
        self._deferred: set[K] = set()  # jobs whose last pass left a refused write to the retry

    def faults(self, key: K) -> tuple[ChildFault, ...]:
        """The refusals to show in the job's status."""
        return tuple(self._faults.get(key, {}).values())

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    def refused(self, key: K, fault: ChildFault) -> None:
        self._faults.setdefault(key, {})[(fault.verb, fault.kind, fault.name)] = fault

    def succeeded(self, key: K, verb: str, kind: str, name: str) -> None:
        found = self._faults.get(key)
        if found is not None:
            found.pop((verb, kind, name), None)
            if not found:
                del self._faults[key]

    def failed_pass(self, key: K, now: float) -> float:
        """One more failed pass: the delay until its retry (and the backoff period until then)."""
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(RETRY_DELAY_SECONDS * 2.0 ** (failures - 1), MAX_RETRY_DELAY_SECONDS)
        self._backoff_until[key] = now + delay
        return delay

    def backing_off(self, key: K, fault: FaultKey, now: float) -> bool:
        """Whether this write was refused and its retry is not due yet (the pass then skips it)."""
        if fault in self._faults.get(key, {}) and now < self._backoff_until.get(key, 0.0):
            self._deferred.add(key)
            return True
        return False

    def retry_due(self, key: K) -> None:
        """The retry timer went off: the pass it queues attempts the refused writes again."""
        self._backoff_until.pop(key, None)

    def pass_started(self, key: K) -> None:
        self._deferred.discard(key)

    def deferred(self, key: K) -> bool:
        return key in self._deferred

    def pass_succeeded(self, key: K) -> None:
        """A pass with nothing to retry: the backoff starts over, unless the pass skipped a refused
        write (then the pending retry's backoff holds)."""
        if key not in self._deferred:
            self._failures.pop(key, None)
            self._backoff_until.pop(key, None)

    def forget(self, key: K) -> None:
        """The job is gone."""
        self._failures.pop(key, None)
        self._backoff_until.pop(key, None)
        self._deferred.discard(key)
        self._faults.pop(key, None)
