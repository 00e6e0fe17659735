"""Benchmarks that print figures (never timed assertions): `make bench`.

1. admission: the webhook handler's review latency (p50/p99) over a few thousand UPDATE reviews of the
   seed bodies, in-process (what the pure engine costs per request).
2. webhook overhead: the latency of a `replace` through the real apiserver with the webhook
   registered vs not registered, printed as a ratio (same run, same machine).
3. client choice: how long a synchronous Kubernetes client call blocks the event loop that kopf's
   watches and webhook share, vs kubernetes_asyncio (the reason the shell is async).
4. run-policy timing: TTL and activeDeadlineSeconds lateness measured end to end by the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from devcluster import cluster as devcluster  # noqa: E402

from testlib import creatable, load_seed  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def bench_admission(n: int) -> None:
    from jobwarden import kinds
    from jobwarden.kinds.admission import review

    cases: list[tuple[Any, dict[str, Any], dict[str, Any]]] = []
    for seed, group, plural in (
        ("tfjob-put.request.json", "kubeflow.org", "tfjobs"),
        ("pytorchjob-put.request.json", "kubeflow.org", "pytorchjobs"),
        ("mxjob-put.request.json", "kubeflow.org", "mxjobs"),
        ("volcanojob-put.request.json", "batch.volcano.sh", "jobs"),
    ):
        kind = kinds.by_plural(group, plural)
        old = creatable(load_seed(seed), "bench")
        old["metadata"]["uid"] = "u"
        allowed = copy.deepcopy(old)
        allowed["metadata"]["labels"] = {"bench": "yes"}
        cases.append((kind, old, allowed))
    timings: list[float] = []
    for i in range(n):
        kind, old, new = cases[i % len(cases)]
        started = time.perf_counter()
        verdict = review(kind, "UPDATE", old, new)
        timings.append(time.perf_counter() - started)
        assert verdict.allowed
    print(
        f"admission review (in-process, {n} UPDATEs of the 4 seed bodies): "
        f"p50 {fmt_ms(pct(timings, 0.5))}, p99 {fmt_ms(pct(timings, 0.99))}, "
        f"mean {fmt_ms(statistics.fmean(timings))}"
    )


def bench_client_blocking(c: devcluster.Cluster, n: int) -> None:
    """Measure event-loop stalls: a ticker expects to run every 1 ms while n GETs run."""
    from kubernetes import client, config
    from kubernetes_asyncio import client as aclient
    from kubernetes_asyncio import config as aconfig

    async def measure(do_calls: Callable[[], Any]) -> tuple[float, float]:
        stalls: list[float] = []
        stop = False

        async def ticker() -> None:
            last = time.perf_counter()
            while not stop:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                stalls.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        started = time.perf_counter()
        await do_calls()
        elapsed = time.perf_counter() - started
        stop = True
        await task
        return elapsed, max(stalls)

    sync_api = client.CoreV1Api(config.new_client_from_config(config_file=str(c.kubeconfig)))

    async def sync_calls() -> None:
        for _ in range(n):
            sync_api.list_namespaced_pod("default")  # blocks the loop for the whole round trip

    async def async_calls() -> None:
        await aconfig.load_kube_config(config_file=str(c.kubeconfig))
        async with aclient.ApiClient() as api_client:
            api = aclient.CoreV1Api(api_client)
            for _ in range(n):
                await api.list_namespaced_pod("default")

    sync_elapsed, sync_stall = asyncio.run(measure(sync_calls))
    async_elapsed, async_stall = asyncio.run(measure(async_calls))
    print(
        f"client inside an async handler ({n} GETs): sync kubernetes worst loop stall "
        f"{fmt_ms(sync_stall)} (total {sync_elapsed:.2f}s); kubernetes_asyncio worst stall "
        f"{fmt_ms(async_stall)} (total {async_elapsed:.2f}s); stall ratio {sync_stall / async_stall:.1f}x"
    )


def _replace_latency(c: devcluster.Cluster, namespace: str, n: int) -> list[float]:
    body = creatable(load_seed("pytorchjob-put.request.json"), namespace)
    c.kubectl("apply", "-f", "-", input=json.dumps(body))
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(c.kubeconfig)))
    timings = []
    for i in range(n):
        current = api.get_namespaced_custom_object(
            "kubeflow.org", "v1", namespace, "pytorchjobs", "pytorch-test"
        )
        current["spec"]["ttlSecondsAfterFinished"] = 3000 + i
        started = time.perf_counter()
        api.replace_namespaced_custom_object(
            "kubeflow.org", "v1", namespace, "pytorchjobs", "pytorch-test", current
        )
        timings.append(time.perf_counter() - started)
    return timings


def bench_webhook_overhead(c: devcluster.Cluster, n: int) -> None:
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobwarden.cli",
            "run",
            "-A",
            f"--kubeconfig={c.kubeconfig}",
            "--webhook-url=https://127.0.0.1:19443",
            "--webhook-bind=127.0.0.1",
            "--webhook-port=19443",
            f"--webhook-work-dir={c.root / 'bench-webhook'}",
            "--health-port=0",
            "--metrics-port=0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        for ns in ("bench-on", "bench-off"):
            c.kubectl("create", "namespace", ns, check=False)
        deadline = time.monotonic() + 60
        while c.kubectl("get", "validatingwebhookconfiguration", "jobwarden", check=False).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("webhook configuration never appeared")
            time.sleep(0.5)
        time.sleep(2)
        on = _replace_latency(c, "bench-on", n)
        c.kubectl("delete", "validatingwebhookconfiguration", "jobwarden")
        off = _replace_latency(c, "bench-off", n)
    finally:
        operator.terminate()
        operator.wait(15)
        for ns in ("bench-on", "bench-off"):
            c.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    print(
        f"replace through the apiserver ({n} each): webhook on p50 {fmt_ms(pct(on, 0.5))} "
        f"p99 {fmt_ms(pct(on, 0.99))}; off p50 {fmt_ms(pct(off, 0.5))} p99 {fmt_ms(pct(off, 0.99))}; "
        f"p50 ratio on/off {pct(on, 0.5) / pct(off, 0.5):.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reviews", type=int, default=4000)
    parser.add_argument("--replaces", type=int, default=200)
    parser.add_argument("--gets", type=int, default=100)
    args = parser.parse_args()
    bench_admission(args.reviews)
    c = devcluster.up("bench")
    c.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    c.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    bench_client_blocking(c, args.gets)
    bench_webhook_overhead(c, args.replaces)
    return 0


if __name__ == "__main__":
    sys.exit(main())
