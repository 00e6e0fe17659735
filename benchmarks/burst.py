"""Burst benchmark: how fast jobwarden turns N PyTorchJobs (1 Master + 3 Worker) into their 4 pods and
4 headless services, against a bare client creating the same 8 objects per job directly; and, each on
a fresh cluster of its own, run-policy lateness under a burst (`--lateness`) and N live jobs held
(`--live`).

    python -m benchmarks.burst [--n 100 500 1000] [--lateness 1000] [--live 10000] [--json out.json]
    python -m benchmarks.plot out.json docs/benchmarks

Every timed run gets a fresh local cluster (one at a time) and waits for an idle machine first; the
load average is printed with each figure. Printed per N: seconds until every pod and service exists
(from the first create, seen by a watch in this process), the ratio to the raw client, the operator's
CPU seconds per job and RSS after the burst, and the API requests the operator made by verb and code
(from the apiserver's `apiserver_request_total`, restricted to what only the operator writes). At the
end one table holds every figure of the run; `--json` also keeps the time series the plots are drawn
from (objects existing every 0.25 s, and the operator's RSS)."""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devcluster import cluster as devcluster

from benchmarks import kube
from benchmarks.kube import JOB_NAME_LABEL, JOBS_PATH, NAMESPACE, Api, ObjectCounter
from jobwarden import kinds
from jobwarden.core.plan import Observed, Settings

SAMPLE_SECONDS = 0.25


def raw_children(name: str) -> list[tuple[str, dict[str, Any]]]:
    """What the raw client creates for one job: the same 4 pods and 4 headless services jobwarden
    makes (the pure core's plan for the same PyTorchJob: its labels, env, init container, ports),
    without the ownerReference, since no job exists to own them."""
    job = kube.pytorchjob(name)
    job["metadata"] |= {"uid": name, "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"}
    kind = kinds.by_kind(job["apiVersion"], job["kind"])
    assert kind is not None
    plan = kind.plan(Observed(job=job, children={}, now=datetime.now(UTC), settings=Settings()))
    out: list[tuple[str, dict[str, Any]]] = []
    for manifest in plan.create:
        body = copy.deepcopy(dict(manifest))
        body["metadata"].pop("ownerReferences", None)
        out.append(({"Pod": "pods", "Service": "services"}[body["kind"]], body))
    assert len(out) == 8, out
    return out


def minimal_children(name: str) -> list[tuple[str, dict[str, Any]]]:
    """The lighter bodies the harness's raw client made before 2026-12-01 (2 labels, 1 container,
    no env): `--raw-bodies minimal` keeps the earlier sessions' figures comparable."""
    out: list[tuple[str, dict[str, Any]]] = []
    for slot in ("master-0", "worker-0", "worker-1", "worker-2"):
        child = f"{name}-{slot}"
        labels = {JOB_NAME_LABEL: name, "slot": slot}
        pod = {"metadata": {"name": child, "labels": labels}, "spec": {"containers": [kube.CONTAINER]}}
        service = {
            "metadata": {"name": child, "labels": labels},
            "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "p", "port": 23456}]},
        }
        out += [("pods", pod), ("services", service)]
    return out


RAW_BODIES = {"same": raw_children, "minimal": minimal_children}


def raw_creates(n: int, bodies: str = "same") -> Callable[[Api], list[Awaitable[int]]]:
    # Made before the clock starts: planning 1000 jobs' children takes about a second.
    made = [child for i in range(n) for child in RAW_BODIES[bodies](f"raw-{i}")]

    def creates(api: Api) -> list[Awaitable[int]]:
        return [api.post(f"/api/v1/namespaces/{NAMESPACE}/{resource}", body) for resource, body in made]

    return creates


def job_creates(n: int, prefix: str = "job") -> Callable[[Api], list[Awaitable[int]]]:
    def creates(api: Api) -> list[Awaitable[int]]:
        return [api.post(JOBS_PATH, kube.pytorchjob(f"{prefix}-{i}")) for i in range(n)]

    return creates


async def sample(
    series: list[list[float]], started: float, counter: ObjectCounter, pid: int | None, every: float
) -> None:
    """Append [seconds since the first create, pods+services existing(, operator RSS MiB)] every
    `every` seconds until cancelled."""
    while True:
        point = [round(time.monotonic() - started, 3), counter.count()]
        if pid is not None:
            point.append(round(kube.proc_rss_mib(pid), 1))
        series.append(point)
        await asyncio.sleep(every)


async def timed_burst(
    cluster: devcluster.Cluster,
    creates: Callable[[Api], list[Awaitable[int]]],
    selector: str,
    expected: int,
    concurrency: int,
    pid: int | None = None,
    timeout: float = 900,
) -> dict[str, Any]:
    """Create everything `creates` gives (`concurrency` at a time) and wait until `expected` pods and
    services exist; returns the seconds from the first create, the time series and the create answers."""
    api = Api.open(cluster, concurrency)
    counter = ObjectCounter(Api.open(cluster, 4, total_timeout=None), selector)
    await counter.start()
    cpu_before = kube.cluster_cpu_seconds(cluster, pid)
    series: list[list[float]] = []
    started = time.monotonic()
    sampler = asyncio.create_task(sample(series, started, counter, pid, SAMPLE_SECONDS))
    try:
        await kube.bounded(concurrency, creates(api))
        done = await counter.reached(expected, timeout)
    finally:
        sampler.cancel()
        await counter.stop()
        await counter.api.close()
        await api.close()
    cpu = kube.cpu_used(cpu_before, kube.cluster_cpu_seconds(cluster, pid))
    series.append([round(done - started, 3), counter.count(), *series[-1][2:]])
    return {"seconds": done - started, "series": series, "answers": dict(api.answers), "cpu": cpu}


def bench_raw(name: str, n: int, concurrency: int, bodies: str = "same") -> dict[str, Any]:
    cluster = kube.fresh_cluster(name)
    load = kube.wait_idle()
    creates = raw_creates(n, bodies)
    result = asyncio.run(timed_burst(cluster, creates, JOB_NAME_LABEL, 8 * n, concurrency, timeout=600))
    return {**result, "load": load, "bodies": bodies}


def bench_jobwarden(name: str, n: int, concurrency: int, log_dir: Path) -> dict[str, Any]:
    with kube.operator_on_fresh_cluster(name, log_dir / f"burst-operator-{n}.log") as running:
        cluster, pid = running.cluster, running.pid
        cpu_before, requests_before = kube.proc_cpu_seconds(pid), kube.request_counts(cluster)
        burst = timed_burst(cluster, job_creates(n), JOB_NAME_LABEL, 8 * n, concurrency, pid)
        result = asyncio.run(burst)
        time.sleep(3)  # let the status writes that follow the last create land
        cpu = kube.proc_cpu_seconds(pid) - cpu_before
        return {
            **result,
            "load": running.load,
            "cpu_ms_per_job": 1000 * cpu / n,
            "rss_idle_mib": running.rss_idle_mib,
            "rss_mib": kube.proc_rss_mib(pid),
            "requests": kube.operator_requests(requests_before, kube.request_counts(cluster)),
        }


def run_bursts(
    name: str, sizes: list[int], concurrency: int, log_dir: Path, repeat: int = 1, bodies: str = "same"
) -> dict[str, Any]:
    """Per N, `repeat` pairs (raw client, then jobwarden, each on a fresh cluster); the pair with the
    median ratio is kept whole, every pair's ratio is kept in `ratios` (this machine is noisy)."""
    results: dict[str, Any] = {}
    for n in sizes:
        pairs = [burst_pair(name, n, concurrency, log_dir, bodies) for _ in range(repeat)]
        ratios = [pair["ratio"] for pair in pairs]
        results[str(n)] = {**sorted(pairs, key=lambda p: p["ratio"])[len(pairs) // 2], "ratios": ratios}
        if repeat > 1:
            listed = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"N={n}: median ratio {results[str(n)]['ratio']:.2f} of {listed}", flush=True)
    return results


def burst_pair(name: str, n: int, concurrency: int, log_dir: Path, bodies: str = "same") -> dict[str, Any]:
    raw = bench_raw(name, n, concurrency, bodies)
    jw = bench_jobwarden(name, n, concurrency, log_dir)
    ratio = raw["seconds"] / jw["seconds"]
    print(
        f"N={n}: raw client {raw['seconds']:.2f} s ({8 * n / raw['seconds']:.0f} objects/s, load "
        f"{raw['load']:.2f}); jobwarden {jw['seconds']:.2f} s = {ratio:.2f} x raw "
        f"(load {jw['load']:.2f}); "
        f"CPU {jw['cpu_ms_per_job']:.1f} ms/job; RSS idle {jw['rss_idle_mib']:.0f} MiB -> "
        f"{jw['rss_mib']:.0f} MiB with {n} jobs",
        flush=True,
    )
    for label, run in (("raw client", raw), ("jobwarden", jw)):
        print(f"  CPU seconds in the {label}'s burst: {json.dumps(run['cpu'])}", flush=True)
    per_job = {k: round(v / n, 2) for k, v in jw["requests"].items()}
    print(f"  operator API requests per job: {json.dumps(per_job)}", flush=True)
    return {"raw": raw, "jobwarden": jw, "ratio": ratio}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, nargs="*", help="burst sizes (default 100 500 if no other mode)")
    parser.add_argument("--lateness", type=int, nargs="*", default=[], help="jobs per lateness run")
    parser.add_argument("--live", type=int, nargs="*", default=[], help="live jobs to hold")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1, help="burst pairs per N (the median is kept)")
    parser.add_argument(
        "--raw-bodies",
        choices=sorted(RAW_BODIES),
        default="same",
        help="the raw client's objects: the same bodies jobwarden creates (default), or the lighter "
        "ones of the runs before 2026-12-01",
    )
    parser.add_argument("--ttl", type=int, default=3, help="ttlSecondsAfterFinished in the lateness run")
    parser.add_argument("--deadline", type=int, default=15, help="activeDeadlineSeconds, lateness run")
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="lateness: create the deadline jobs while the masters are being finished, not after",
    )
    parser.add_argument(
        "--stagger",
        type=float,
        default=0.0,
        help="lateness: spread the Master PATCHes evenly over this many seconds (default: all at once)",
    )
    parser.add_argument("--hold", type=float, default=60, help="seconds the live jobs are held")
    parser.add_argument(
        "--settle-cap", type=float, help="longest wait for the live jobs to settle (default 60 + N/20 s)"
    )
    parser.add_argument("--cluster", default="burst", help="name of the local cluster (recreated per run)")
    parser.add_argument("--json", type=Path, help="also write the figures and time series as JSON here")
    args = parser.parse_args()
    if args.n is None:
        args.n = [] if args.lateness or args.live else [100, 500]
    return args


def main() -> int:
    from benchmarks import lateness, live, report

    args = parse_args()
    log_dir = devcluster.cache_dir() / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"burst": {}, "lateness": {}, "live": {}}
    try:
        results["burst"] = run_bursts(
            args.cluster, args.n, args.concurrency, log_dir, args.repeat, args.raw_bodies
        )
        for n in args.lateness:
            options = lateness.Options(
                n, args.ttl, args.deadline, args.concurrency, args.overlap, args.stagger
            )
            label = f"{n} spread {args.stagger:g} s" if args.stagger else str(n)
            results["lateness"][label] = lateness.bench(args.cluster, options, log_dir)
        for n in args.live:
            results["live"][str(n)] = live.bench(
                args.cluster, n, args.concurrency, args.hold, log_dir, args.settle_cap
            )
    finally:
        devcluster.down(args.cluster)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    print(report.table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
