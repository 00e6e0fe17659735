"""N live jobs held (issue 13: 10,000 jobs, 40,000 pods on kwok): what the operator costs once the
jobs exist and nothing changes.

On a fresh cluster with the operator running: its RSS idle (no jobs); N PyTorchJobs created
(`concurrency` at a time) and all 4N pods and 4N services awaited; then until the operator's reconcile
count has not moved for 5 s (at most `settle_cap`, by default 60 s + N/20 s: its last Running status
writes done); then `hold`
seconds with nothing changing, over which are reported its RSS (held: at the end of the window),
bytes per job ((held - idle) / N), CPU used (seconds and % of one core), its reconciles per second
(`jobwarden_reconcile_seconds_count` from its /metrics: the steady-state reconcile rate) and the writes
only it makes (apiserver_request_total). The objects are counted by metadata-only watches in this
process and sampled every second with the operator's RSS, for the RSS-vs-live-jobs plot."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from devcluster import cluster as devcluster
from devcluster.operator import LocalOperator

from benchmarks import kube
from benchmarks.kube import JOB_NAME_LABEL, JOBS_PATH, Api, ObjectCounter

RECONCILES = "jobwarden_reconcile_seconds_count"
QUIET_SECONDS = 5


async def sample(series: list[list[float]], started: float, counter: ObjectCounter, pid: int) -> None:
    """[seconds, pods+services existing, operator RSS MiB] every second until cancelled."""
    while True:
        rss = await asyncio.to_thread(kube.proc_rss_mib, pid)
        series.append([round(time.monotonic() - started, 1), counter.count(), round(rss, 1)])
        await asyncio.sleep(1)


async def settle(operator: LocalOperator, cap: float) -> dict[str, Any]:
    """Wait until the operator's reconcile count stays put for QUIET_SECONDS, or `cap` seconds: a hold
    begun earlier measures the tail of the fill (the Running status writes), not the steady state."""
    started = quiet_since = time.monotonic()
    last = -1.0
    while time.monotonic() - started < cap:
        count = await asyncio.to_thread(kube.operator_metric, operator.metrics_port, RECONCILES)
        now = time.monotonic()
        if count != last:
            last, quiet_since = count, now
        elif now - quiet_since >= QUIET_SECONDS:
            return {"settle_seconds": now - started, "settled": True}
        await asyncio.sleep(1)
    return {"settle_seconds": time.monotonic() - started, "settled": False}


def snapshot(cluster: devcluster.Cluster, operator: LocalOperator, pid: int) -> dict[str, Any]:
    """The cumulative figures a window is the difference of."""
    return {
        "at": time.monotonic(),
        "cpu": kube.proc_cpu_seconds(pid),
        "reconciles": kube.operator_metric(operator.metrics_port, RECONCILES),
        "requests": kube.request_counts(cluster),
    }


async def fill_and_hold(
    cluster: devcluster.Cluster,
    operator: LocalOperator,
    n: int,
    concurrency: int,
    hold: float,
    settle_cap: float | None = None,
) -> dict[str, Any]:
    assert operator.process is not None
    pid = operator.process.pid
    api = Api.open(cluster, concurrency)
    counter = ObjectCounter(Api.open(cluster, 4, total_timeout=None), JOB_NAME_LABEL)
    await counter.start()
    series: list[list[float]] = []
    started = time.monotonic()
    sampler = asyncio.create_task(sample(series, started, counter, pid))
    try:
        posts = (api.post(JOBS_PATH, kube.pytorchjob(f"live-{i}")) for i in range(n))
        await kube.bounded(concurrency, posts)
        filled = await counter.reached(8 * n, timeout=300 + 0.5 * n) - started
        settled = await settle(operator, cap=settle_cap if settle_cap is not None else 60 + n / 20)
        before = await asyncio.to_thread(snapshot, cluster, operator, pid)
        await asyncio.sleep(hold)
        after = await asyncio.to_thread(snapshot, cluster, operator, pid)
        held = kube.proc_rss_mib(pid)
    finally:
        sampler.cancel()
        await counter.stop()
        await counter.api.close()
        await api.close()
    window = after["at"] - before["at"]
    cpu = after["cpu"] - before["cpu"]
    return {
        **settled,
        "fill_seconds": filled,
        "hold_seconds": window,
        "rss_held_mib": held,
        "cpu_seconds_held": cpu,
        "cpu_percent_held": 100 * cpu / window,
        "reconciles_per_second": (after["reconciles"] - before["reconciles"]) / window,
        "reconciles_before_hold": before["reconciles"],
        "requests_held": kube.operator_requests(before["requests"], after["requests"]),
        "answers": {str(k): v for k, v in api.answers.items()},
        "series": series,
    }


def summary(r: dict[str, Any]) -> str:
    settled = "settled" if r["settled"] else "NOT settled"
    return (
        f"live N={r['n']} ({8 * r['n']} pods+services in {r['fill_seconds']:.1f} s, load {r['load']:.2f}): "
        f"RSS idle {r['rss_idle_mib']:.0f} MiB -> held {r['rss_held_mib']:.0f} MiB "
        f"({r['bytes_per_job'] / 1024:.1f} KiB per job); {settled} after {r['settle_seconds']:.0f} s; "
        f"over {r['hold_seconds']:.0f} s held: CPU {r['cpu_seconds_held']:.2f} s "
        f"({r['cpu_percent_held']:.1f} % of a core), {r['reconciles_per_second']:.2f} reconciles/s "
        f"({r['reconciles_before_hold']:.0f} before the hold), writes {r['requests_held'] or 'none'}"
    )


def bench(
    cluster_name: str, n: int, concurrency: int, hold: float, log_dir: Path, settle_cap: float | None = None
) -> dict[str, Any]:
    with kube.operator_on_fresh_cluster(cluster_name, log_dir / f"live-operator-{n}.log") as running:
        result = asyncio.run(
            fill_and_hold(running.cluster, running.operator, n, concurrency, hold, settle_cap)
        )
    idle, load = running.rss_idle_mib, running.load
    result.update(n=n, load=load, rss_idle_mib=idle)
    result["bytes_per_job"] = (result["rss_held_mib"] - idle) * 2**20 / n
    print(summary(result), flush=True)
    return result
