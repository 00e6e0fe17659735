"""The real-training figures, printed (never timed assertions): `python -m benchmarks.realnode_training`.

1. the training images: size in podman's storage, OCI archive size, the last build's seconds, and
   the time `packaging/training-images.sh` takes now (0.1 s when up to date; a build otherwise);
2. on a real-node cluster of its own (`bench-training`, brought down first and at the end): the
   images' import into the node's containerd, then each real training job of the tests
   (tests/realnode/training.py: the same jobs, the same checks' evidence) from create to finish, with
   the operator running inside the node's network namespace, and the log lines that prove its ranks
   met;
3. the times the last test run recorded (`$JOBWARDEN_CACHE/realnode/job-times.json`), for comparison.

Goal per job: 120 s on 2 cores (issue 28)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "realnode"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import training  # noqa: E402
from devcluster import cluster as devcluster  # noqa: E402
from devcluster import realnode  # noqa: E402
from devcluster.operator import LocalOperator  # noqa: E402

PODMAN_ENV = {
    "CONTAINERS_CONF": str(ROOT / "packaging" / "podman" / "containers.conf"),
    "PATH": "/usr/bin:/bin",
}


def print_images() -> dict[str, Path]:
    began = time.monotonic()
    archives = training.build_images()
    print(f"training-images.sh now:               {time.monotonic() - began:6.2f} s")
    for image, archive in archives.items():
        name = archive.name.removesuffix(".oci.tar")
        seconds = archive.with_name(f"{name}.build-seconds")
        built = f"{int(seconds.read_text())} s" if seconds.exists() else "?"
        size = subprocess.run(
            ["podman", "image", "inspect", "--format", "{{.Size}}", image],
            capture_output=True, text=True, check=False, env=PODMAN_ENV,
        ).stdout.strip()  # fmt: skip
        shown = f"{int(size) / 1e6:.0f} MB" if size.isdigit() else "not in podman's storage"
        print(
            f"image {image}: {shown}, archive {archive.stat().st_size / 1e6:.0f} MB,"
            f" last build + export {built}"
        )
    return archives


def run_jobs(name: str, archives: dict[str, Path]) -> None:
    devcluster.down(name)
    c = devcluster.up(name, crds=ROOT / "crds", real_node=True)
    try:
        for archive in archives.values():
            began = time.monotonic()
            realnode.import_image(c, archive)
            print(f"import {archive.name}: {time.monotonic() - began:6.2f} s")
        with tempfile.TemporaryDirectory() as tmp:
            op = LocalOperator(
                c, Path(tmp) / "operator.log", netns=c.netns_path, extra_args=list(realnode.OPERATOR_ARGS)
            )
            op.start()
            try:
                for kind, runner in training.RUNNERS.items():
                    namespace = "bench-" + kind.lower().replace(" ", "-")
                    c.kubectl("create", "namespace", namespace)
                    training.wait_until(
                        lambda ns=namespace: (
                            c.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0
                        ),
                        30,
                        "the default ServiceAccount",
                    )
                    training.apply(c, training.workload_configmap(namespace))
                    run = runner(c, namespace)
                    print(f"job {kind}: create -> finish {run.seconds:6.1f} s (goal 120 s)")
                    for line in run.proof:
                        print(f"    {line}")
            finally:
                op.stop()
    finally:
        devcluster.down(name)


def print_recorded() -> None:
    path = devcluster.cache_dir() / "realnode" / "job-times.json"
    if not path.exists():
        print("no job times recorded by the tests yet")
        return
    for kind, entry in json.loads(path.read_text()).items():
        print(f"last test run, {kind}: {entry['seconds']} s ({entry['at']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.realnode_training", description=__doc__)
    parser.add_argument("--name", default="bench-training")
    parser.add_argument("--no-jobs", action="store_true", help="only the images and the recorded times")
    args = parser.parse_args(argv)
    archives = print_images()
    if not args.no_jobs:
        reason = realnode.unavailable_reason()
        if reason:
            print(f"this host cannot run a real node: {reason}")
        else:
            run_jobs(args.name, archives)
    print_recorded()
    return 0


if __name__ == "__main__":
    sys.exit(main())
