"""What the burst, lateness and live benchmarks share: a bare async client (aiohttp, the admin client
certificate, raw JSON), list+watch streams recorded in this process, the operator's /proc figures and
Prometheus metrics, and the apiserver's request counters.

The figures are taken by watching, not by polling with kubectl: a kubectl listing of tens of thousands
of objects takes seconds and a CPU of its own on a 2-core machine, and a poll only says that a change
happened somewhere in the last interval, where a watch event says when it was seen."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import ssl
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from devcluster import cluster as devcluster
from devcluster.operator import LocalOperator

ROOT = Path(__file__).resolve().parent.parent

NAMESPACE = "default"
IMAGE = "registry.example/train:1"
CONTAINER = {
    "name": "pytorch",
    "image": IMAGE,
    "ports": [{"name": "pytorchjob-port", "containerPort": 23456}],
}
JOBS_PATH = f"/apis/kubeflow.org/v1/namespaces/{NAMESPACE}/pytorchjobs"
PODS_PATH = f"/api/v1/namespaces/{NAMESPACE}/pods"
SERVICES_PATH = f"/api/v1/namespaces/{NAMESPACE}/services"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
# Metadata only (as client-go's metadata informers ask): a pod's status and spec are most of its bytes,
# and counting needs neither. A watch offered the List form first answers with no events at all.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


def pytorchjob(name: str, run_policy: dict[str, Any] | None = None) -> dict[str, Any]:
    """One PyTorchJob of 1 Master + 3 Worker (4 pods, 4 headless services), with `run_policy` under
    `spec.runPolicy` if given."""
    template = {"spec": {"containers": [CONTAINER]}}
    spec: dict[str, Any] = {
        "pytorchReplicaSpecs": {
            "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": template},
            "Worker": {"replicas": 3, "restartPolicy": "OnFailure", "template": template},
        }
    }
    if run_policy:
        spec["runPolicy"] = run_policy
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def _ssl_context(cluster: devcluster.Cluster) -> ssl.SSLContext:
    pki = cluster.root / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return context


@dataclass
class Api:
    """A bare async client (aiohttp, admin client certificate, raw JSON, keep-alive). `answers` counts
    the status codes of the writes, so a benchmark can say how many of its creates failed."""

    cluster: devcluster.Cluster
    session: aiohttp.ClientSession
    answers: Counter[int] = field(default_factory=Counter)

    @classmethod
    def open(cls, cluster: devcluster.Cluster, concurrency: int, total_timeout: float | None = 120) -> Api:
        """`total_timeout` None for watches, which stay open for the whole run."""
        connector = aiohttp.TCPConnector(ssl=_ssl_context(cluster), limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=30)
        return cls(cluster, aiohttp.ClientSession(connector=connector, timeout=timeout))

    async def post(self, path: str, body: dict[str, Any]) -> int:
        async with self.session.post(self.cluster.server + path, json=body) as response:
            await response.read()
            self.answers[response.status] += 1
            return response.status

    async def patch_status(self, path: str, status: dict[str, Any]) -> int:
        """A merge patch of the `status` subresource at `path` (what a kubelet does to a pod)."""
        headers = {"Content-Type": "application/merge-patch+json"}
        url = f"{self.cluster.server}{path}/status"
        async with self.session.patch(url, data=json.dumps({"status": status}), headers=headers) as response:
            await response.read()
            self.answers[response.status] += 1
            return response.status

    async def close(self) -> None:
        await self.session.close()


async def bounded(concurrency: int, jobs: Iterable[Awaitable[Any]]) -> None:
    """Await `jobs` with at most `concurrency` in flight (the way a client with a pool would)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(coro: Awaitable[Any]) -> None:
        async with gate:
            await coro

    await asyncio.gather(*(one(j) for j in jobs))


OnEvent = Callable[[str, dict[str, Any]], None]


@dataclass
class Watch:
    """List, then watch, one collection, calling `on_event(type, object)` for every listed object (as
    ADDED) and every event after it. The stream is reopened from the last resourceVersion when the
    apiserver ends it, and relisted (every object ADDED again) on 410 Gone: consumers key their state
    by name, so a repeat does no harm. A deletion missed during a relist is not reported, so a relist
    is logged to stderr for whoever judges the run."""

    api: Api
    path: str
    on_event: OnEvent
    selector: str = ""
    metadata_only: bool = False
    resource_version: str = ""
    task: asyncio.Task[None] | None = None

    def _headers(self, watch: bool) -> dict[str, str]:
        if not self.metadata_only:
            return {}
        return {"Accept": METADATA_WATCH if watch else METADATA_LIST}

    async def start(self) -> None:
        """Returns once the first listing was delivered (the consumer's state is then current)."""
        await self._list()
        self.task = asyncio.create_task(self._watch_forever())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _list(self) -> None:
        """Paginated (500 a page): one page of 80,000 pods would be a ~300 MB answer."""
        token = ""
        while True:
            query = {"limit": "500", "labelSelector": self.selector, "continue": token}
            url = f"{self.api.cluster.server}{self.path}?{urlencode({k: v for k, v in query.items() if v})}"
            async with self.api.session.get(url, headers=self._headers(watch=False)) as response:
                response.raise_for_status()
                page = await response.json()
            for item in page.get("items") or []:
                self.on_event("ADDED", item)
            self.resource_version = page["metadata"]["resourceVersion"]
            token = page["metadata"].get("continue", "")
            if not token:
                return

    async def _watch_forever(self) -> None:
        while True:
            gone = await self._watch_once()
            if gone:
                print(f"[watch] {self.path}: 410 Gone, relisting", file=sys.stderr, flush=True)
                await self._list()

    async def _watch_once(self) -> bool:
        """One watch stream until the apiserver closes it; True if the resourceVersion was too old."""
        query = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "3600",
            "resourceVersion": self.resource_version,
            "labelSelector": self.selector,
        }
        url = f"{self.api.cluster.server}{self.path}?{urlencode({k: v for k, v in query.items() if v})}"
        async with self.api.session.get(url, headers=self._headers(watch=True)) as response:
            if response.status == 410:
                return True
            response.raise_for_status()
            buffer = b""
            async for chunk in response.content.iter_any():
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    if line.strip() and self._deliver(json.loads(line)):
                        return True
        return False

    def _deliver(self, event: dict[str, Any]) -> bool:
        kind, obj = event["type"], event["object"]
        if kind == "ERROR":
            return int(obj.get("code", 0)) == 410
        self.resource_version = obj["metadata"]["resourceVersion"]
        if kind != "BOOKMARK":
            self.on_event(kind, obj)
        return False


@dataclass
class ObjectCounter:
    """How many pods and services matching `selector` exist, from two metadata-only watches; `reached`
    resolves at the event that brings the count to a target."""

    api: Api
    selector: str
    names: dict[str, set[str]] = field(default_factory=lambda: {"pods": set(), "services": set()})
    watches: list[Watch] = field(default_factory=list)
    _targets: list[tuple[int, asyncio.Future[float]]] = field(default_factory=list)

    def count(self) -> int:
        return len(self.names["pods"]) + len(self.names["services"])

    def _on(self, resource: str) -> OnEvent:
        def on_event(kind: str, obj: dict[str, Any]) -> None:
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                self.names[resource].discard(name)
            else:
                self.names[resource].add(name)
            self._check()

        return on_event

    def _check(self) -> None:
        for target, future in self._targets:
            if not future.done() and self.count() >= target:
                future.set_result(time.monotonic())

    async def start(self) -> None:
        for resource, path in (("pods", PODS_PATH), ("services", SERVICES_PATH)):
            watch = Watch(self.api, path, self._on(resource), self.selector, metadata_only=True)
            await watch.start()
            self.watches.append(watch)

    async def stop(self) -> None:
        for watch in self.watches:
            await watch.stop()

    async def reached(self, target: int, timeout: float) -> float:
        """The monotonic instant the count first reached `target` (seen in a watch event)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._targets.append((target, future))
        self._check()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"only {self.count()} of {target} pods+services after {timeout:.0f}s"
            ) from None


async def wait_for(
    future: asyncio.Future[Any], watches: list[Watch], timeout: float, what: Callable[[], str]
) -> Any:
    """The result of `future`, or the error of a watch that died first (a stopped watch would
    otherwise show as a timeout many minutes later), or TimeoutError naming `what()`."""
    tasks = [w.task for w in watches if w.task]
    done, _ = await asyncio.wait([future, *tasks], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if future in done:
        return future.result()
    for task in done:
        task.result()
        raise RuntimeError("a watch ended")
    raise TimeoutError(f"waited {timeout:.0f}s for {what()}")


def wait_idle(threshold: float = 1.2, timeout: float = 120) -> float:
    """Wait until the 1-minute load average drops below `threshold` (or give up); returns it."""
    deadline = time.monotonic() + timeout
    load = os.getloadavg()[0]
    while load > threshold and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    return load


def fresh_cluster(name: str) -> devcluster.Cluster:
    devcluster.down(name)
    return devcluster.up(name, crds=ROOT / "crds")


@dataclass
class Running:
    """A fresh cluster with the operator started and settled: its pid, its idle RSS, the load."""

    cluster: devcluster.Cluster
    operator: LocalOperator
    pid: int
    rss_idle_mib: float
    load: float


@contextlib.contextmanager
def operator_on_fresh_cluster(name: str, log: Path) -> Iterator[Running]:
    """Every timed jobwarden run: a fresh cluster, the operator started, 2 s for its first lists,
    its idle RSS, then an idle machine; the operator is stopped afterwards whatever happened."""
    cluster = fresh_cluster(name)
    operator = LocalOperator(cluster, log)
    operator.start()
    try:
        assert operator.process is not None
        pid = operator.process.pid
        time.sleep(2)
        idle = proc_rss_mib(pid)
        yield Running(cluster, operator, pid, idle, wait_idle())
    finally:
        operator.stop()


def _get_text(url: str, context: ssl.SSLContext | None = None) -> str:
    with urllib.request.urlopen(url, context=context, timeout=30) as response:
        return str(response.read().decode())


def _samples(text: str, metric: str) -> Iterable[tuple[dict[str, str], float]]:
    """The samples of one metric in the Prometheus text format, as (labels, value)."""
    for line in text.splitlines():
        if line.startswith(metric + "{") or line.startswith(metric + " "):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            yield labels, float(line.rsplit(" ", 1)[1])


def request_counts(cluster: devcluster.Cluster) -> Counter[tuple[str, str, str, str]]:
    """apiserver_request_total by (verb, resource, subresource, code)."""
    text = _get_text(cluster.server + "/metrics", _ssl_context(cluster))
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for labels, value in _samples(text, "apiserver_request_total"):
        key = tuple(labels.get(k, "") for k in ("verb", "resource", "subresource", "code"))
        counts[key] += int(value)  # type: ignore[index]
    return counts


# What only the operator does in these benchmarks (the scheduler binds and kwok patches pod status, so
# pod PATCHes and bindings are theirs, and the lateness run's own master PATCHes too; events are posted
# by the scheduler as well and are left out).
OPERATOR_REQUESTS = {
    ("POST", "pods", ""),
    ("POST", "services", ""),
    ("PUT", "pytorchjobs", "status"),
    ("DELETE", "pods", ""),
    ("DELETE", "services", ""),
    ("DELETE", "pytorchjobs", ""),
}


def operator_requests(before: Counter[Any], after: Counter[Any]) -> dict[str, int]:
    diff = after - before
    out: dict[str, int] = {}
    for (verb, resource, sub, code), n in sorted(diff.items()):
        if (verb, resource, sub) in OPERATOR_REQUESTS and n:
            out[f"{verb} {resource}{'/' + sub if sub else ''} {code}"] = n
    return out


def operator_metric(port: int, metric: str) -> float:
    """The sum over all label sets of one of the operator's metrics (e.g. a histogram's `_count`)."""
    text = _get_text(f"http://127.0.0.1:{port}/metrics")
    return sum(value for _, value in _samples(text, metric))


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster_cpu_seconds(cluster: devcluster.Cluster, operator_pid: int | None = None) -> dict[str, float]:
    """CPU seconds used so far by each of the cluster's processes, the operator and this process (the
    load generator), so a timed window's share per component is the difference of two calls."""
    pids = {**cluster.pids, **({"operator": operator_pid} if operator_pid else {})}
    used = {name: proc_cpu_seconds(pid) for name, pid in pids.items() if Path(f"/proc/{pid}").exists()}
    own = os.times()
    return {**used, "benchmark": own.user + own.system}


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before[name], 2) for name in after if name in before}


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    """The q-quantile by nearest rank (no interpolation: with 30 values p99 is the maximum)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: list[float]) -> dict[str, Any]:
    """p50/p99/max of a list of seconds, with the values kept for whoever wants other quantiles."""
    if not values:
        return {"n": 0}
    rounded = [round(v, 4) for v in values]
    return {
        "n": len(values),
        "p50": pct(values, 0.5),
        "p99": pct(values, 0.99),
        "max": max(values),
        "values": rounded,
    }
