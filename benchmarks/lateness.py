"""Run-policy lateness under a burst: how late cleanPodPolicy, ttlSecondsAfterFinished and
activeDeadlineSeconds act when N jobs fall due at once (issue 13: ≤ 0.25 s at p99).

On a fresh cluster with the operator running:
1. N PyTorchJobs `clean-<i>` with cleanPodPolicy Running and ttlSecondsAfterFinished `ttl` are created
   in a burst; once all 4N pods are Running, every Master pod is PATCHed Succeeded (the status a
   kubelet reports, devcluster/pods.py): all at once, or with `stagger` spread evenly over that many
   seconds. Each PATCH's answer time is recorded. The job then succeeds,
   its still-running workers must go (cleanPodPolicy) and `ttl` seconds after completionTime the job.
2. N PyTorchJobs `deadline-<i>` with activeDeadlineSeconds `deadline` are created (after step 1: in a
   burst, or spread over `stagger` seconds like the finishes; with `overlap`: in a burst while the
   Masters are being finished) and must fail at startTime+deadline.

Every instant is the wall-clock time an event was first seen by a watch in this process:
- cleanPodPolicy: the first (and the last) worker pod of the job seen terminating (deletionTimestamp)
  or deleted, minus the instant the Master's Succeeded phase was seen by the same watch (the pod event
  that decides it; the operator's watch sees it at about the same instant). The same against the
  answer to the PATCH is kept too: under a saturated apiserver the answer can come after the event.
- TTL: the job seen terminating or deleted, minus completionTime + ttl.
- deadline: the job seen with condition Failed=True, minus startTime + deadline.
completionTime and startTime have second precision; the operator computes its due instants from those
same truncated values, so the lateness is reported against them (the action can come up to 1 s
before completion + ttl measured from the true instant, never before the stored one)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from devcluster.pods import finished_status

from benchmarks import kube, report
from benchmarks.kube import JOB_NAME_LABEL, JOBS_PATH, PODS_PATH, Api, Watch

WORKERS = ("worker-0", "worker-1", "worker-2")


@dataclass
class Options:
    n: int
    ttl: int = 3
    deadline: int = 15
    concurrency: int = 32
    overlap: bool = False
    stagger: float = 0.0  # seconds over which the Master PATCHes are spread (0: all at once)


def group(job: str) -> str:
    """`clean` or `deadline`: the jobs of one step, by name prefix."""
    return job.split("-", 1)[0]


def _gone(kind: str, obj: dict[str, Any]) -> bool:
    return kind == "DELETED" or bool(obj["metadata"].get("deletionTimestamp"))


@dataclass
class Recorder:
    """What the figures need, from one watch on the jobs and one on their pods: the last object of each,
    and the wall-clock instant each change was first seen. Counts per (step, change) are kept as the
    events come, so waiting for "all N" costs nothing per event."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: dict[tuple[str, str], float] = field(default_factory=dict)
    running: dict[str, set[str]] = field(default_factory=dict)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    waiters: list[tuple[tuple[str, str], int, asyncio.Future[None]]] = field(default_factory=list)
    watches: list[Watch] = field(default_factory=list)

    def _first(self, name: str, change: str, now: float, counted: bool = True) -> None:
        """Record the first sighting; `counted` ones count towards their step's "all N" (jobs only:
        pods share their job's name prefix, and 200 worker pods gone are not 200 jobs gone)."""
        if (name, change) not in self.seen:
            self.seen[name, change] = now
            if counted:
                self.counts[group(name), change] += 1
                self._check()

    def on_job(self, kind: str, obj: dict[str, Any]) -> None:
        now, name = time.time(), obj["metadata"]["name"]
        self.jobs[name] = obj
        for condition in obj.get("status", {}).get("conditions") or []:
            if condition["type"] in ("Succeeded", "Failed") and condition["status"] == "True":
                self._first(name, condition["type"], now)
        if _gone(kind, obj):
            self._first(name, "gone", now)

    def on_pod(self, kind: str, obj: dict[str, Any]) -> None:
        now, name = time.time(), obj["metadata"]["name"]
        step = group(obj["metadata"]["labels"][JOB_NAME_LABEL])
        self.pods[name] = obj
        running = self.running.setdefault(step, set())
        if _gone(kind, obj):
            self._first(name, "gone", now, counted=False)
            running.discard(name)
        elif obj.get("status", {}).get("phase") == "Running":
            running.add(name)
        elif obj.get("status", {}).get("phase") == "Succeeded":
            self._first(name, "PodSucceeded", now, counted=False)
        self.counts[step, "Running"] = len(running)
        self._check()

    def _check(self) -> None:
        for key, target, future in self.waiters:
            if not future.done() and self.counts[key] >= target:
                future.set_result(None)

    async def until(self, step: str, change: str, target: int, timeout: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(((step, change), target, future))
        self._check()
        what = f"{target} {step} {change} (seen {{}})"
        await kube.wait_for(future, self.watches, timeout, lambda: what.format(self.counts[step, change]))


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


async def staggered(seconds: float, items: list[str], call: Callable[[str], Awaitable[None]]) -> None:
    """`call(item)` for each item, started evenly over `seconds` (all at once when 0)."""
    step = seconds / max(len(items), 1)

    async def one(i: int, item: str) -> None:
        await asyncio.sleep(i * step)
        await call(item)

    await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))


async def create_jobs(
    api: Api, names: list[str], run_policy: dict[str, Any], concurrency: int, stagger: float = 0.0
) -> None:
    """POST the jobs in a burst, or one every stagger/len(names) seconds."""
    if not stagger:
        posts = [api.post(JOBS_PATH, kube.pytorchjob(name, run_policy)) for name in names]
        await kube.bounded(concurrency, posts)
        return

    async def one(name: str) -> None:
        await api.post(JOBS_PATH, kube.pytorchjob(name, run_policy))

    await staggered(stagger, names, one)


async def finish_masters(
    api: Api, recorder: Recorder, jobs: list[str], stagger: float = 0.0
) -> dict[str, tuple[float, float]]:
    """PATCH every job's Master pod Succeeded, at once or spread evenly over `stagger` seconds;
    (sent, answered) wall-clock instants per job."""
    times: dict[str, tuple[float, float]] = {}

    async def one(job: str) -> None:
        pod = f"{job}-master-0"
        status = finished_status(recorder.pods[pod])
        sent = time.time()
        await api.patch_status(f"{PODS_PATH}/{pod}", status)
        times[job] = (sent, time.time())

    await staggered(stagger, jobs, one)
    return times


def clean_lateness(recorder: Recorder, decided: dict[str, float]) -> tuple[list[float], list[float]]:
    """Per job: first and last worker seen going, minus the instant that decided it (`decided`)."""
    first: list[float] = []
    last: list[float] = []
    for job, at in decided.items():
        gone = [recorder.seen.get((f"{job}-{w}", "gone")) for w in WORKERS]
        known = [g for g in gone if g is not None]
        if known:
            first.append(min(known) - at)
        if len(known) == len(WORKERS):
            last.append(max(known) - at)
    return first, last


def succeeded_after(recorder: Recorder, answered: dict[str, float]) -> list[float]:
    """Per job: its Succeeded condition seen, minus the Master PATCH's answer (where the cleanPodPolicy
    time goes: deciding, or deleting)."""
    seen = ((recorder.seen.get((job, "Succeeded")), at) for job, at in answered.items())
    return [succeeded - at for succeeded, at in seen if succeeded is not None]


def ttl_lateness(recorder: Recorder, jobs: list[str], ttl: int) -> list[float]:
    out: list[float] = []
    for job in jobs:
        completion = recorder.jobs.get(job, {}).get("status", {}).get("completionTime")
        gone = recorder.seen.get((job, "gone"))
        if completion and gone is not None:
            out.append(gone - (_stamp(completion) + ttl))
    return out


def deadline_lateness(recorder: Recorder, jobs: list[str], deadline: int) -> tuple[list[float], Counter[str]]:
    """Lateness per job, and the reasons of the Failed conditions (all should be the deadline's)."""
    out: list[float] = []
    reasons: Counter[str] = Counter()
    for job in jobs:
        status = recorder.jobs.get(job, {}).get("status", {})
        failed = recorder.seen.get((job, "Failed"))
        if status.get("startTime") and failed is not None:
            out.append(failed - (_stamp(status["startTime"]) + deadline))
        for condition in status.get("conditions") or []:
            if condition["type"] == "Failed" and condition["status"] == "True":
                reasons[condition.get("reason", "")] += 1
    return out, reasons


async def run(cluster: Any, options: Options, pids: dict[str, int]) -> dict[str, Any]:
    """Steps 1 and 2 of the module docstring on a cluster whose operator is running; the CPU time of
    each of `pids` from the first Master PATCH to the last deadline failure."""
    n, recorder = options.n, Recorder()
    watch_api = Api.open(cluster, 4, total_timeout=None)
    api = Api.open(cluster, max(options.concurrency, 64))
    recorder.watches = watches = [
        Watch(watch_api, JOBS_PATH, recorder.on_job),
        Watch(watch_api, PODS_PATH, recorder.on_pod, selector=JOB_NAME_LABEL),
    ]
    clean = [f"clean-{i}" for i in range(n)]
    deadline = [f"deadline-{i}" for i in range(n)]
    deadline_policy = {"activeDeadlineSeconds": options.deadline}
    clean_policy = {"cleanPodPolicy": "Running", "ttlSecondsAfterFinished": options.ttl}
    timeout = 120 + n * 0.5
    try:
        for watch in watches:
            await watch.start()
        await create_jobs(api, clean, clean_policy, options.concurrency)
        await recorder.until("clean", "Running", 4 * n, timeout)
        cpu_before, started = {k: kube.proc_cpu_seconds(p) for k, p in pids.items()}, time.monotonic()
        finishing = finish_masters(api, recorder, clean, options.stagger)
        if options.overlap:
            patched, _ = await asyncio.gather(
                finishing, create_jobs(api, deadline, deadline_policy, options.concurrency)
            )
        else:
            patched = await finishing
        await recorder.until("clean", "gone", n, timeout + options.ttl)
        if not options.overlap:  # at the same rate as the finishes when they are spread
            await create_jobs(api, deadline, deadline_policy, options.concurrency, options.stagger)
        await recorder.until("deadline", "Failed", n, timeout + options.deadline)
        timed = time.monotonic() - started
        cpu = {k: kube.proc_cpu_seconds(p) - cpu_before[k] for k, p in pids.items()}
    finally:
        for watch in watches:
            await watch.stop()
        await watch_api.close()
        await api.close()
    answered = {job: t[1] for job, t in patched.items()}
    master_seen = {
        job: seen for job in clean if (seen := recorder.seen.get((f"{job}-master-0", "PodSucceeded")))
    }
    first, last = clean_lateness(recorder, master_seen)
    first_after_answer, _ = clean_lateness(recorder, answered)
    late_deadline, reasons = deadline_lateness(recorder, deadline, options.deadline)
    return {
        "options": vars(options),
        "clean_first_worker": kube.spread(first),
        "clean_last_worker": kube.spread(last),
        "clean_first_worker_after_answer": kube.spread(first_after_answer),
        "succeeded_seen": kube.spread(succeeded_after(recorder, answered)),
        "ttl": kube.spread(ttl_lateness(recorder, clean, options.ttl)),
        "deadline": kube.spread(late_deadline),
        "deadline_reasons": dict(reasons),
        "master_patch_seconds": kube.spread([b - a for a, b in patched.values()]),
        "answers": {str(k): v for k, v in api.answers.items()},
        "cpu_by_process": cpu,
        "timed_seconds": timed,
    }


def _line(label: str, figures: dict[str, Any]) -> str:
    if not figures["n"]:
        return f"{label}: none seen"
    ms = {k: 1000 * figures[k] for k in ("p50", "p99", "max")}
    return f"{label} p50/p99/max {ms['p50']:.0f}/{ms['p99']:.0f}/{ms['max']:.0f} ms (n={figures['n']})"


def _cpu_line(cpu: dict[str, float], wall: float) -> str:
    """Each process's share of one core while the run-policy actions were timed: how close the 2-core
    machine came to its limit."""
    shares = ", ".join(f"{name} {100 * seconds / wall:.0f} %" for name, seconds in cpu.items())
    return f"CPU from the first Master PATCH to the last deadline ({wall:.0f} s), % of one core: {shares}"


def bench(cluster_name: str, options: Options, log_dir: Path) -> dict[str, Any]:
    with kube.operator_on_fresh_cluster(
        cluster_name, log_dir / f"lateness-operator-{options.n}.log"
    ) as running:
        pids = {"operator": running.pid, **running.cluster.pids}
        result = asyncio.run(run(running.cluster, options, pids))
        load = running.load
        result.update(load=load, cpu_seconds=result["cpu_by_process"]["operator"])
    spread = f"spread over {options.stagger:g} s" if options.stagger else "all at once"
    print(
        f"lateness N={options.n} (ttl {options.ttl} s, deadline {options.deadline} s; Master PATCHes "
        f"{spread}, deadline jobs created {report.deadline_jobs(options.overlap, options.stagger)}; "
        f"load {load:.2f}):\n  "
        + "\n  ".join(
            [
                _line("cleanPodPolicy, first worker", result["clean_first_worker"]),
                _line("cleanPodPolicy, last worker", result["clean_last_worker"]),
                _line("(first worker, after the PATCH answer)", result["clean_first_worker_after_answer"]),
                _line("(Succeeded seen after the PATCH answer)", result["succeeded_seen"]),
                _line("TTL", result["ttl"]),
                _line("deadline", result["deadline"]) + f" reasons {result['deadline_reasons']}",
                _line("Master PATCH answer", result["master_patch_seconds"]),
                _cpu_line(result["cpu_by_process"], result["timed_seconds"]),
            ]
        ),
        flush=True,
    )
    return result
