"""Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly one
reconciles (every replica serves the webhook, health and metrics).

Why our own loop and not `kubernetes_asyncio.leaderelection` (the maintained asyncio port of
client-go's): it cannot release the Lease on a graceful stop (client-go's ReleaseOnCancel), so a
rollout would leave nobody acting for a whole lease duration; it logs a traceback for every lost
race on the Lease; and it has no hook to stop acting the moment a renewal deadline passes. The
decisions are pure and unit-tested (core/lease.py); this module only reads and writes the Lease.

Timings are controller-runtime's defaults (15 s lease, 10 s renew deadline, 2 s retry), settable.
A leader that cannot renew within the renew deadline stops acting before its lease can expire on a
standby's clock (renew deadline < lease duration)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobwarden.core.lease import LeaseTimings, Observation, Record, claimed, may_take, observe, released
from jobwarden.shell import metrics, outage
from jobwarden.shell.api import reason_of
from jobwarden.shell.kubeclient import ApiError, KubeClient

logger = logging.getLogger(__name__)

Callback = Callable[[], Awaitable[None]]
RELEASE_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class LeaseOptions:
    name: str = "jobwarden-leader"
    namespace: str = "jobwarden-system"
    identity: str = ""
    timings: LeaseTimings = field(default_factory=LeaseTimings)


class LeaderElector:
    def __init__(
        self, client: KubeClient, options: LeaseOptions, on_lead: Callback, on_follow: Callback
    ) -> None:
        self.client = client
        self.options = options
        self.on_lead = on_lead
        self.on_follow = on_follow
        self.leading = False
        self._observation: Observation | None = None
        self._resource_version: str | None = None
        self._last_renewal = 0.0  # monotonic time of the last successful write as the leader
        # An unreachable apiserver: one WARNING, one INFO (the lost leadership is logged apart)
        self.outage = outage.Outage(f"lease {options.namespace}/{options.name}")

    async def run(self) -> None:
        """Forever: try to take or renew every retry period; act only while holding the Lease.
        Cancelling it leaves `leading` as it was, so that `release()` can hand the Lease over."""
        timings = self.options.timings
        while True:
            held = await self._try()
            if held and not self.leading:
                await self._become_leader()
            elif not held and self.leading and self._taken_by_another():
                await self._lose(
                    f"the lease is held by {self._observation and self._observation.record.holder}"
                )
            elif not held and self.leading and time.monotonic() - self._last_renewal > timings.renew_deadline:
                await self._lose("could not renew the lease within the renew deadline")
            await asyncio.sleep(self._next_try(held))

    def _next_try(self, held: bool) -> float:
        """The retry period; a standby watching a held Lease wakes at the instant it expires on its
        own clock instead (without this, polling adds up to a retry period to every failover)."""
        retry = self.options.timings.retry_period
        if held or self._observation is None or not self._taken_by_another():
            return retry
        record = self._observation.record
        expires = self._observation.since + max(record.lease_duration_seconds, 1)
        return min(retry, max(0.05, expires - time.monotonic()))

    def _taken_by_another(self) -> bool:
        holder = self._observation.record.holder if self._observation else ""
        return bool(holder) and holder != self.options.identity

    async def release(self) -> None:
        """Graceful stop: stop acting, then hand the Lease over at once (a standby takes it at its
        next retry, within `retry_period`)."""
        if not self.leading:
            return
        await self._lose("stopping")
        record = self._observation.record if self._observation else Record()
        try:
            # Bounded: with the apiserver gone, a stop must not hang on the hand-over (the standby
            # then takes the Lease when it expires instead).
            await asyncio.wait_for(self._release(record), RELEASE_TIMEOUT_SECONDS)
            logger.info("released lease %s/%s", self.options.namespace, self.options.name)
        except (ApiError, OSError, TimeoutError) as exc:
            logger.warning("could not release lease %s: %r", self.options.name, exc)

    async def _release(self, record: Record) -> None:
        """Write the released record; on a 409, read the Lease once and release it if it is still
        ours. The 409 happens when the stop cancelled a renewal whose write the apiserver had already
        applied: the renewed version is ours, only its resourceVersion never reached us."""
        try:
            await self._write(released(record, datetime.now(UTC)))
        except ApiError as exc:
            if exc.status != 409:
                raise
            lease = await self.client.get(self._path(self.options.name))
            current = Record.from_spec(lease.get("spec"))
            if current.holder != self.options.identity:
                return  # another replica holds it already
            self._resource_version = lease["metadata"].get("resourceVersion")
            await self._write(released(current, datetime.now(UTC)))

    async def _become_leader(self) -> None:
        self.leading = True
        metrics.LEADER.set(1)
        logger.info("became leader (lease %s/%s, identity %s)", self.options.namespace, self.options.name,
                    self.options.identity)  # fmt: skip
        await self.on_lead()

    async def _lose(self, why: str) -> None:
        self.leading = False
        metrics.LEADER.set(0)
        logger.warning("stopped leading: %s", why)
        await self.on_follow()

    async def _try(self) -> bool:
        options, now = self.options, time.monotonic()
        try:
            lease = await self.client.get(self._path(options.name))
        except ApiError as exc:
            if outage.transient(exc):
                self.outage.failed(exc)
                return False
            self.outage.succeeded()  # it answered
            if exc.status != 404:
                logger.warning("reading lease %s failed: %s", options.name, reason_of(exc))
                return False
            return await self._create()
        except (OSError, TimeoutError) as exc:
            if outage.unreachable(exc):
                self.outage.failed(exc)
            else:
                logger.warning("reading lease %s failed: %r", options.name, exc)
            return False
        self.outage.succeeded()
        self._resource_version = lease["metadata"].get("resourceVersion")
        current = Record.from_spec(lease.get("spec"))
        self._observation = observe(self._observation, current, now)
        if not may_take(self._observation, options.identity, now):
            return False
        return await self._claim(current)

    async def _create(self) -> bool:
        record = claimed(None, self.options.identity, self.options.timings, datetime.now(UTC))
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.options.name, "namespace": self.options.namespace},
            "spec": record.to_spec(),
        }
        try:
            created = await self.client.create(self._path(), body)
        except ApiError as exc:
            if exc.status != 409:  # 409: another replica created it first; read it next round
                logger.warning("creating lease %s failed: %s", self.options.name, reason_of(exc))
            return False
        self._accepted(record, created["metadata"]["resourceVersion"])
        return True

    async def _claim(self, current: Record) -> bool:
        record = claimed(current, self.options.identity, self.options.timings, datetime.now(UTC))
        try:
            await self._write(record)
        except ApiError as exc:
            if outage.transient(exc):
                self.outage.failed(exc)
            elif exc.status != 409:  # 409: another replica wrote it since we read it; not ours this round
                logger.warning("updating lease %s failed: %s", self.options.name, reason_of(exc))
            return False
        except (OSError, TimeoutError) as exc:
            if outage.unreachable(exc):
                self.outage.failed(exc)
            else:
                logger.warning("updating lease %s failed: %r", self.options.name, exc)
            return False
        return True

    async def _write(self, record: Record) -> None:
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.options.name,
                "namespace": self.options.namespace,
                "resourceVersion": self._resource_version,
            },
            "spec": record.to_spec(),
        }
        written = await self.client.replace(self._path(self.options.name), body)
        self._accepted(record, written["metadata"]["resourceVersion"])

    def _path(self, name: str = "") -> str:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.options.namespace}/leases"
        return f"{path}/{name}" if name else path

    def _accepted(self, record: Record, resource_version: str) -> None:
        self._resource_version = resource_version
        self._observation = Observation(record, time.monotonic())
        if record.holder == self.options.identity:
            self._last_renewal = time.monotonic()


async def cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
