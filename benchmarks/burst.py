"""Burst benchmark: how fast jobwarden turns N PyTorchJobs (1 Master + 3 Worker) into their 4 pods and
4 headless services, against a bare client creating the same 8 objects per job directly.

    python -m benchmarks.burst [--n 100 500 1000] [--concurrency 32]

Every timed run gets a fresh local cluster (one at a time) and waits for an idle machine first; the
load average is printed with each figure. Printed per N: seconds until every pod and service exists
(from the first create), the ratio to the raw client, the operator's CPU seconds per job and RSS after
the burst, and the API requests the operator made by verb and code (from the apiserver's
`apiserver_request_total`, restricted to what only the operator writes)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import ssl
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from devcluster import cluster as devcluster  # noqa: E402
from devcluster.operator import LocalOperator  # noqa: E402

CLUSTER = "burst"
NAMESPACE = "default"
IMAGE = "registry.example/train:1"
CONTAINER = {
    "name": "pytorch",
    "image": IMAGE,
    "ports": [{"name": "pytorchjob-port", "containerPort": 23456}],
}


def pytorchjob(name: str) -> dict[str, Any]:
    template = {"spec": {"containers": [CONTAINER]}}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": template},
                "Worker": {"replicas": 3, "restartPolicy": "OnFailure", "template": template},
            }
        },
    }


def raw_children(name: str) -> list[tuple[str, dict[str, Any]]]:
    """What the raw client creates for one job: the same 4 pods and 4 headless services."""
    out: list[tuple[str, dict[str, Any]]] = []
    for slot in ("master-0", "worker-0", "worker-1", "worker-2"):
        child = f"{name}-{slot}"
        labels = {"bench": name, "slot": slot}
        pod = {"metadata": {"name": child, "labels": labels}, "spec": {"containers": [CONTAINER]}}
        service = {
            "metadata": {"name": child, "labels": labels},
            "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "p", "port": 23456}]},
        }
        out += [("pods", pod), ("services", service)]
    return out


@dataclass
class Api:
    """A bare async client (aiohttp, admin client certificate, raw JSON, keep-alive)."""

    cluster: devcluster.Cluster
    session: aiohttp.ClientSession

    @classmethod
    def open(cls, cluster: devcluster.Cluster, concurrency: int) -> Api:
        pki = cluster.root / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
        return cls(cluster, aiohttp.ClientSession(connector=connector))

    async def post(self, path: str, body: dict[str, Any]) -> int:
        async with self.session.post(self.cluster.server + path, json=body) as response:
            await response.read()
            return response.status


async def _bounded(concurrency: int, jobs: list[Any]) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(coro: Any) -> None:
        async with gate:
            await coro

    await asyncio.gather(*(one(j) for j in jobs))


def count_children(cluster: devcluster.Cluster, selector: str) -> tuple[int, int]:
    pods = cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "name", "--chunk-size=0")
    services = cluster.kubectl(
        "get", "services", "-n", NAMESPACE, "-l", selector, "-o", "name", "--chunk-size=0"
    )
    return len(pods.stdout.split()), len(services.stdout.split())


def wait_children(cluster: devcluster.Cluster, selector: str, expected: int, timeout: float) -> float:
    """Poll (every 0.25 s) until `expected` pods and services exist; returns the monotonic instant."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods, services = count_children(cluster, selector)
        if pods >= expected and services >= expected:
            return time.monotonic()
        time.sleep(0.25)
    raise TimeoutError(
        f"only {count_children(cluster, selector)} of {expected} pods/services after {timeout}s"
    )


def wait_idle(threshold: float = 1.2, timeout: float = 120) -> float:
    """Wait until the 1-minute load average drops below `threshold` (or give up); returns it."""
    deadline = time.monotonic() + timeout
    load = os.getloadavg()[0]
    while load > threshold and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    return load


def request_counts(cluster: devcluster.Cluster) -> Counter[tuple[str, str, str, str]]:
    """apiserver_request_total by (verb, resource, subresource, code)."""
    pki = cluster.root / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with urllib.request.urlopen(cluster.server + "/metrics", context=context, timeout=30) as response:
        text = response.read().decode()
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        value = float(line.rsplit(" ", 1)[1])
        key = (
            labels.get("verb", ""),
            labels.get("resource", ""),
            labels.get("subresource", ""),
            labels.get("code", ""),
        )
        counts[key] += int(value)
    return counts


# What only the operator does in this benchmark (the scheduler binds and kwok patches pod status, so
# pod PATCHes and bindings are theirs; events are posted by the scheduler too and are left out).
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


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fresh_cluster() -> devcluster.Cluster:
    devcluster.down(CLUSTER)
    return devcluster.up(CLUSTER, crds=ROOT / "crds")


async def _raw_burst(cluster: devcluster.Cluster, n: int, concurrency: int) -> float:
    api = Api.open(cluster, concurrency)
    try:
        creates = [
            api.post(f"/api/v1/namespaces/{NAMESPACE}/{resource}", body)
            for i in range(n)
            for resource, body in raw_children(f"raw-{i}")
        ]
        started = time.monotonic()
        await _bounded(concurrency, creates)
        return started
    finally:
        await api.session.close()


def bench_raw(n: int, concurrency: int) -> dict[str, float]:
    cluster = fresh_cluster()
    load = wait_idle()
    started = asyncio.run(_raw_burst(cluster, n, concurrency))
    done = wait_children(cluster, "bench", 4 * n, timeout=600)
    return {"seconds": done - started, "load": load}


async def _job_burst(cluster: devcluster.Cluster, n: int, concurrency: int) -> float:
    api = Api.open(cluster, concurrency)
    try:
        path = f"/apis/kubeflow.org/v1/namespaces/{NAMESPACE}/pytorchjobs"
        started = time.monotonic()
        await _bounded(concurrency, [api.post(path, pytorchjob(f"job-{i}")) for i in range(n)])
        return started
    finally:
        await api.session.close()


def bench_jobwarden(n: int, concurrency: int, log_dir: Path) -> dict[str, Any]:
    cluster = fresh_cluster()
    operator = LocalOperator(cluster, log_dir / f"burst-operator-{n}.log")
    operator.start()
    try:
        assert operator.process is not None
        pid = operator.process.pid
        time.sleep(2)
        idle_rss = proc_rss_mib(pid)
        load = wait_idle()
        cpu_before, requests_before = proc_cpu_seconds(pid), request_counts(cluster)
        started = asyncio.run(_job_burst(cluster, n, concurrency))
        done = wait_children(cluster, "training.kubeflow.org/job-name", 4 * n, timeout=900)
        time.sleep(3)  # let the status writes that follow the last create land
        cpu = proc_cpu_seconds(pid) - cpu_before
        return {
            "seconds": done - started,
            "load": load,
            "cpu_ms_per_job": 1000 * cpu / n,
            "rss_idle_mib": idle_rss,
            "rss_mib": proc_rss_mib(pid),
            "requests": operator_requests(requests_before, request_counts(cluster)),
        }
    finally:
        operator.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    log_dir = devcluster.cache_dir() / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}
    try:
        for n in args.n:
            raw = bench_raw(n, args.concurrency)
            jw = bench_jobwarden(n, args.concurrency, log_dir)
            ratio = raw["seconds"] / jw["seconds"]
            results[n] = {"raw": raw, "jobwarden": jw, "ratio": ratio}
            print(
                f"N={n}: raw client {raw['seconds']:.2f} s ({8 * n / raw['seconds']:.0f} objects/s, load "
                f"{raw['load']:.2f}); jobwarden {jw['seconds']:.2f} s = {ratio:.2f} x raw "
                f"(load {jw['load']:.2f}); "
                f"CPU {jw['cpu_ms_per_job']:.1f} ms/job; RSS idle {jw['rss_idle_mib']:.0f} MiB -> "
                f"{jw['rss_mib']:.0f} MiB with {n} jobs",
                flush=True,
            )
            per_job = {k: round(v / n, 2) for k, v in jw["requests"].items()}
            print(f"  operator API requests per job: {json.dumps(per_job)}", flush=True)
    finally:
        devcluster.down(CLUSTER)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
