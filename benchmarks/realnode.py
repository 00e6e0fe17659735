"""The real-node tier's figures, printed (never timed assertions): `python -m benchmarks.realnode`.

1. build: `devcluster/build-node.sh` when everything is cached (the cold times are in the README);
2. warm start: `devcluster up --real-node` from nothing to the node Ready (goal <= 20 s), and the
   kubelet's own share (started -> Ready);
3. a pod from create to Running, and to a finished `dial` through CoreDNS (netcheck);
4. each registered job benchmark (create -> finish), with the operator running inside the node's
   namespace: add one with `@job_benchmark("name")` on a function `(cluster, operator, namespace) ->
   str` that creates the job, waits for it to finish and returns a one-line result to print (the
   training images named in JOB_IMAGES are built if needed and imported first, timed apart);
   registered here: the real-node tests' JAXJob, XGBoostJob, PaddleJob and MPIJob
   (tests/realnode/family_jobs.py, the same jobs), each with the log lines that prove its ranks met;
5. `down` to nothing left;
6. the create-to-finish times the last test runs recorded (`$JOBWARDEN_CACHE/realnode/job-times.json`).

Goal per job: 120 s on 2 cores (issue 28).

Runs on its own cluster, `bench-realnode` (--name), which it brings down first and at the end."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "realnode"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import family_jobs  # noqa: E402
import training  # noqa: E402
from devcluster import cluster as devcluster  # noqa: E402
from devcluster import realnode  # noqa: E402
from devcluster.operator import LocalOperator  # noqa: E402

JobBenchmark = Callable[[devcluster.Cluster, LocalOperator, str], str]
JOB_BENCHMARKS: dict[str, JobBenchmark] = {}
JOB_IMAGES: set[str] = set()  # packaging/training-images.sh names the registered jobs run


def job_benchmark(name: str) -> Callable[[JobBenchmark], JobBenchmark]:
    """Register a job benchmark (see the module docstring); it runs in a fresh namespace."""

    def register(fn: JobBenchmark) -> JobBenchmark:
        JOB_BENCHMARKS[name] = fn
        return fn

    return register


def _family_job(run: Callable[[devcluster.Cluster, str], family_jobs.Run], *needles: str) -> JobBenchmark:
    """A job of tests/realnode/family_jobs.py, with its workload ConfigMap; prints its proof lines."""

    def bench(c: devcluster.Cluster, _op: LocalOperator, namespace: str) -> str:
        c.kubectl("apply", "-f", "-", input=json.dumps(family_jobs.workload_configmap(namespace)))
        done = run(c, namespace)
        return "".join(f"\n    {line}" for needle in needles for line in done.lines_with(needle))

    return bench


JOB_IMAGES.update(("training", "training-jax"))
job_benchmark("JAXJob")(_family_job(family_jobs.run_jaxjob, "allgather", "sharded sum"))
job_benchmark("XGBoostJob")(_family_job(family_jobs.run_xgboostjob, "allreduce sum", "after 5 rounds"))
job_benchmark("PaddleJob")(_family_job(family_jobs.run_paddlejob, "paddle node"))
job_benchmark("MPIJob")(_family_job(family_jobs.run_mpijob, "allreduce sum"))


def import_images(c: devcluster.Cluster) -> None:
    began = time.monotonic()
    archives = training.build_images(*sorted(JOB_IMAGES))
    print(f"training-images.sh {' '.join(sorted(JOB_IMAGES))}: {time.monotonic() - began:6.2f} s")
    for image, archive in archives.items():
        began = time.monotonic()
        realnode.import_image(c, archive)
        size = archive.stat().st_size / 1e6
        print(f"import {image} ({size:.0f} MB archive): {time.monotonic() - began:6.2f} s")


def print_recorded_times() -> None:
    path = devcluster.cache_dir() / "realnode" / "job-times.json"
    if not path.exists():
        return
    print(f"the last test runs recorded ({path}):")
    for kind, entry in json.loads(path.read_text()).items():
        print(f"  {kind:12s} create -> finish {entry['seconds']:6.1f} s  ({entry['at']})")


def _wait_phase(c: devcluster.Cluster, pod: str, phases: tuple[str, ...], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        phase = c.kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}", check=False).stdout
        if phase in phases:
            return phase
        time.sleep(0.05)
    raise TimeoutError(f"pod {pod} not in {phases} after {timeout}s")


def bench_pods(c: devcluster.Cluster) -> None:
    c.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "peers"},
                "spec": {"clusterIP": "None", "selector": {"app": "bench"}, "ports": [{"port": 7000}]},
            }
        ),
    )
    began = time.monotonic()
    c.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(realnode.netcheck_pod("server", ["serve", "7000"], {"app": "bench"})),
    )
    _wait_phase(c, "server", ("Running",))
    print(f"pod create -> Running:              {time.monotonic() - began:6.2f} s")
    began = time.monotonic()
    c.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(realnode.netcheck_pod("client", ["dial", "server.peers:7000"], {"app": "bench"})),
    )
    phase = _wait_phase(c, "client", ("Succeeded", "Failed"))
    print(f"pod create -> dial done ({phase}):   {time.monotonic() - began:6.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.realnode", description=__doc__)
    parser.add_argument("--name", default="bench-realnode")
    args = parser.parse_args(argv)
    reason = realnode.unavailable_reason()
    if reason:
        print(f"this host cannot run a real node: {reason}")
        return 2
    began = time.monotonic()
    subprocess.run(["bash", str(ROOT / "devcluster" / "build-node.sh")], check=True, capture_output=True)
    print(f"build-node.sh, all cached:           {time.monotonic() - began:6.2f} s")
    devcluster.down(args.name)
    began = time.monotonic()
    c = devcluster.up(args.name, crds=ROOT / "crds", real_node=True)
    up = time.monotonic() - began
    timings = json.loads((c.root / "timings.json").read_text())
    print(f"warm start to node Ready (goal 20 s): {up:6.2f} s")
    print(f"  of which kubelet start -> Ready:    {timings['kubelet_to_ready']:6.2f} s")
    try:
        bench_pods(c)
        if JOB_BENCHMARKS:
            import_images(c)
            with tempfile.TemporaryDirectory() as tmp:
                op = LocalOperator(
                    c, Path(tmp) / "operator.log", list(realnode.OPERATOR_ARGS), netns=c.netns_path
                )
                op.start()
                try:
                    for name, fn in JOB_BENCHMARKS.items():
                        namespace = f"bench-{name}".lower()
                        c.kubectl("create", "namespace", namespace)
                        began = time.monotonic()
                        result = fn(c, op, namespace)
                        print(f"job {name}: create -> finish {time.monotonic() - began:6.2f} s  {result}")
                finally:
                    op.stop()
    finally:
        began = time.monotonic()
        devcluster.down(args.name)
        print(f"down:                                 {time.monotonic() - began:6.2f} s")
    print_recorded_times()
    return 0


if __name__ == "__main__":
    sys.exit(main())
