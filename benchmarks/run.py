"""Benchmarks that print figures (never timed assertions): `make bench`.

1. admission: the webhook handler's review latency (p50/p99) over a few thousand UPDATE reviews of the
   seed bodies, in-process (what the pure engine costs per request).
2. admission overhead: the latency of a `replace` through the real apiserver with no admission, the
   ValidatingAdmissionPolicy only, the webhook only, and both (p50/p99, same run, same job).
3. client choice: how long a synchronous Kubernetes client call blocks the event loop that kopf's
   watches and webhook share, vs kubernetes_asyncio (the reason the shell is async).
4. run-policy timing: TTL and activeDeadlineSeconds lateness measured end to end by the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from devcluster import cluster as devcluster  # noqa: E402
from devcluster.operator import LocalOperator  # noqa: E402

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
    """Event-loop stalls while concurrent handlers make API calls: a ticker asks to run every 1 ms;
    the gaps it sees are how long the webhook and the watches would have waited. Both clients are
    warmed up (connections, TLS) before measuring."""
    from kubernetes import client, config
    from kubernetes_asyncio import client as aclient
    from kubernetes_asyncio import config as aconfig

    handlers = 20

    async def measure(handler: Callable[[], Any]) -> tuple[float, list[float]]:
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
        await asyncio.gather(*(handler() for _ in range(handlers)))
        elapsed = time.perf_counter() - started
        stop = True
        await task
        return elapsed, stalls or [elapsed]

    sync_api = client.CoreV1Api(config.new_client_from_config(config_file=str(c.kubeconfig)))
    sync_api.list_namespaced_pod("default")  # warm-up

    async def sync_handler() -> None:
        for _ in range(n // handlers):
            sync_api.list_namespaced_pod("default")  # blocks the loop for the whole round trip
            await asyncio.sleep(0)  # a handler yields between calls: the ticker may run here

    async def run_async() -> tuple[float, list[float]]:
        await aconfig.load_kube_config(config_file=str(c.kubeconfig))
        async with aclient.ApiClient() as api_client:
            api = aclient.CoreV1Api(api_client)
            await asyncio.gather(*(api.list_namespaced_pod("default") for _ in range(handlers)))  # warm-up

            async def async_handler() -> None:
                for _ in range(n // handlers):
                    await api.list_namespaced_pod("default")

            return await measure(async_handler)

    import pykube

    pykube_api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(c.kubeconfig)))
    list(pykube.Pod.objects(pykube_api, namespace="default"))  # warm-up

    async def pykube_handler() -> None:
        for _ in range(n // handlers):
            list(pykube.Pod.objects(pykube_api, namespace="default"))  # also blocks the loop
            await asyncio.sleep(0)

    sync_elapsed, sync_stalls = asyncio.run(measure(sync_handler))
    pykube_elapsed, pykube_stalls = asyncio.run(measure(pykube_handler))
    async_elapsed, async_stalls = asyncio.run(run_async())
    sync_p99, async_p99 = pct(sync_stalls, 0.99), pct(async_stalls, 0.99)
    print(
        f"client inside async handlers ({handlers} concurrent handlers, {n} GETs, loopback apiserver): "
        f"loop stall p99/max: sync kubernetes {fmt_ms(sync_p99)}/{fmt_ms(max(sync_stalls))}, "
        f"kubernetes_asyncio {fmt_ms(async_p99)}/{fmt_ms(max(async_stalls))} "
        f"(p99 ratio {sync_p99 / async_p99:.1f}x); total {sync_elapsed:.2f}s vs {async_elapsed:.2f}s "
        f"(throughput ratio {sync_elapsed / async_elapsed:.1f}x); pykube-ng (sync too) stall p99 "
        f"{fmt_ms(pct(pykube_stalls, 0.99))}, total {pykube_elapsed:.2f}s"
    )


def _replace_latency(c: devcluster.Cluster, namespace: str, n: int) -> list[float]:
    body = creatable(load_seed("pytorchjob-put.request.json"), namespace)
    c.kubectl("apply", "-f", "-", input=json.dumps(body))
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(c.kubeconfig)))
    timings = []
    for i in range(n):
        while True:  # the operator's status writes bump resourceVersion: retry a conflict, time a success
            current = api.get_namespaced_custom_object(
                "kubeflow.org", "v1", namespace, "pytorchjobs", "pytorch-test"
            )
            current["spec"]["ttlSecondsAfterFinished"] = 3000 + i
            started = time.perf_counter()
            try:
                api.replace_namespaced_custom_object(
                    "kubeflow.org", "v1", namespace, "pytorchjobs", "pytorch-test", current
                )
            except client.exceptions.ApiException as exc:
                if exc.status == 409:
                    continue
                raise
            timings.append(time.perf_counter() - started)
            break
    return timings


def start_operator(c: devcluster.Cluster) -> LocalOperator:
    operator = LocalOperator(c, c.root / "logs" / "bench-operator.log")
    operator.start()
    time.sleep(2)  # let the initial listing settle before timing anything
    return operator


POLICY_BINDINGS = ("jobwarden-updates.kubeflow.org", "jobwarden-updates.batch.volcano.sh")
MODES = {  # name -> (policy bound, webhook registered)
    "no admission": (False, False),
    "policy only": (True, False),
    "webhook only": (False, True),
    "both": (True, True),
}


def _dry_run_refusal(c: devcluster.Cluster, verb: str, body: dict[str, Any]) -> str:
    out = c.kubectl(verb, "--dry-run=server", "-f", "-", input=json.dumps(body), check=False)
    return out.stderr if out.returncode else ""


def _admission_state(c: devcluster.Cluster, namespace: str) -> tuple[bool, bool]:
    """(policy in force, webhook in force), as the apiserver answers right now: the policy refuses a
    forbidden replace; only the webhook checks a CREATE (a malformed container name)."""
    current = json.loads(c.kubectl("get", "pytorchjob", "pytorch-test", "-n", namespace, "-o", "json").stdout)
    current["spec"]["backoffLimit"] = 99
    policy = "ValidatingAdmissionPolicy" in _dry_run_refusal(c, "replace", current)
    bad = creatable(load_seed("pytorchjob-put.request.json"), namespace)
    bad["metadata"]["name"] = "probe"
    bad["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["name"] = "Bad_Name"
    webhook = "validate.jobwarden.dev" in _dry_run_refusal(c, "create", bad)
    return policy, webhook


def _set_admission(
    c: devcluster.Cluster, namespace: str, saved: dict[str, str], policy: bool, webhook: bool
) -> None:
    """Bind/unbind the policies and register/unregister the webhook from the objects saved at start,
    then wait until the apiserver answers accordingly."""
    for kind, names, wanted in (
        ("validatingadmissionpolicybinding", POLICY_BINDINGS, policy),
        ("validatingwebhookconfiguration", ("jobwarden",), webhook),
    ):
        for name in names:
            exists = c.kubectl("get", kind, name, check=False).returncode == 0
            if exists and not wanted:
                c.kubectl("delete", kind, name)
            elif wanted and not exists:
                c.kubectl("create", "-f", "-", input=saved[name])
    _poll(lambda: _admission_state(c, namespace) == (policy, webhook), timeout=60)


def _saved(c: devcluster.Cluster, kind: str, name: str) -> str:
    obj = json.loads(c.kubectl("get", kind, name, "-o", "json").stdout)
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        obj["metadata"].pop(key, None)
    return json.dumps(obj)


def bench_admission_modes(c: devcluster.Cluster, n: int) -> None:
    """The latency of a replace that changes a spec field (so every layer judges it) through the real
    apiserver, with no admission, the policy only, the webhook only, and both (same run, same job)."""
    namespace = "bench-admission"
    c.kubectl("create", "namespace", namespace, check=False)
    saved = {name: _saved(c, "validatingadmissionpolicybinding", name) for name in POLICY_BINDINGS}
    saved["jobwarden"] = _saved(c, "validatingwebhookconfiguration", "jobwarden")
    _replace_latency(c, namespace, 20)  # create the job, warm connections and caches
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    rounds = 10  # modes take turns, so a load change on this shared machine hits all of them alike
    try:
        for _ in range(rounds):
            for mode, (policy, webhook) in MODES.items():
                _set_admission(c, namespace, saved, policy, webhook)
                results[mode] += _replace_latency(c, namespace, max(1, n // rounds))
    finally:
        _set_admission(c, namespace, saved, True, True)
    base = pct(results["no admission"], 0.5)
    print(f"replace through the apiserver ({n} each in {rounds} interleaved rounds, a spec field changed):")
    print("| admission | p50 | p99 | p50 vs none |")
    print("| --- | --- | --- | --- |")
    for mode, timings in results.items():
        p50 = pct(timings, 0.5)
        print(
            f"| {mode} | {fmt_ms(p50)} | {fmt_ms(pct(timings, 0.99))} | "
            f"{p50 / base:.2f}x ({(p50 - base) * 1000:+.2f} ms) |"
        )


def _job(c: devcluster.Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    out = c.kubectl("get", "pytorchjob", name, "-n", namespace, "-o", "json", check=False)
    return dict(json.loads(out.stdout)) if out.returncode == 0 else None


def _poll(check: Callable[[], Any], timeout: float = 60) -> tuple[Any, float]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value, time.time()
        time.sleep(0.05)
    raise SystemExit("timed out")


def bench_runpolicy_lateness(c: devcluster.Cluster, n: int) -> None:
    """activeDeadlineSeconds: when Failed shows vs startTime + deadline; ttlSecondsAfterFinished: when
    the job is gone vs completionTime + ttl. Timestamps in status have second precision; the operator
    computes its due times from those same truncated values, so the lateness is exact to the polling
    interval (50 ms) plus one GET."""
    from jobwarden.core.timefmt import from_rfc3339

    namespace = "bench-lateness"
    c.kubectl("create", "namespace", namespace, check=False)
    while c.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode:
        time.sleep(0.2)
    deadline_late: list[float] = []
    ttl_late: list[float] = []
    for i in range(n):
        body = creatable(load_seed("pytorchjob-put.request.json"), namespace)
        body["metadata"]["name"] = name = f"late-{i}"
        body["spec"]["activeDeadlineSeconds"] = 3
        body["spec"]["ttlSecondsAfterFinished"] = 2
        c.kubectl("apply", "-f", "-", input=json.dumps(body))

        def failed(name: str = name) -> dict[str, Any] | None:
            job = _job(c, namespace, name)
            conditions = (job or {}).get("status", {}).get("conditions", [])
            return job if any(x["type"] == "Failed" and x["status"] == "True" for x in conditions) else None

        job, seen_failed = _poll(failed)
        start = from_rfc3339(job["status"]["startTime"])
        completion = from_rfc3339(job["status"]["completionTime"])
        assert start and completion
        deadline_late.append(seen_failed - (start.timestamp() + 3))
        _, seen_gone = _poll(lambda name=name: _job(c, namespace, name) is None)
        ttl_late.append(seen_gone - (completion.timestamp() + 2))
    print(
        f"run-policy lateness over {n} PyTorchJobs (deadline 3 s, ttl 2 s): deadline "
        f"median {statistics.median(deadline_late):.3f} s max {max(deadline_late):.3f} s; ttl median "
        f"{statistics.median(ttl_late):.3f} s max {max(ttl_late):.3f} s "
        f"(upstream: deadline waits for the next unrelated event or resync)"
    )
    c.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reviews", type=int, default=4000)
    parser.add_argument("--replaces", type=int, default=200)
    parser.add_argument("--gets", type=int, default=400)
    parser.add_argument("--lateness", type=int, default=5)
    parser.add_argument("--admission-only", action="store_true", help="only the replace latency table")
    args = parser.parse_args()
    if not args.admission_only:
        bench_admission(args.reviews)
    c = devcluster.up(os.environ.get("JOBWARDEN_BENCH_CLUSTER", "bench"), crds=ROOT / "crds")
    devcluster.install_crds(c, ROOT / "crds")
    if not args.admission_only:
        bench_client_blocking(c, args.gets)
    operator = start_operator(c)
    try:
        if not args.admission_only:
            bench_runpolicy_lateness(c, args.lateness)
        bench_admission_modes(c, args.replaces)
    finally:
        operator.stop()
        c.kubectl("delete", "namespace", "bench-admission", "--wait=false", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
