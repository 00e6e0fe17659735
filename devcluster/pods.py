"""Finish pods on demand, the way a kubelet would report it.

kwok moves scheduled pods to Running but never finishes them (see kwok-stages.yaml). Tests and the
demo call these helpers, which PATCH the pod's `status` subresource with a terminal phase and
`containerStatuses[].state.terminated.exitCode` (or, for an in-place container restart, a bumped
`restartCount` with `lastState.terminated`). No kwok stage matches a terminal pod, so nothing
overwrites the result."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from devcluster.cluster import Cluster


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _get(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json")
    return dict(json.loads(out.stdout))


def wait_running(cluster: Cluster, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        result = cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json", check=False)
        if result.returncode == 0:
            pod = dict(json.loads(result.stdout))
            if pod.get("status", {}).get("phase") == "Running":
                return pod
        if time.monotonic() > deadline:
            raise TimeoutError(f"pod {namespace}/{name} did not become Running in {timeout}s")
        time.sleep(0.3)


def _patch_status(cluster: Cluster, namespace: str, name: str, status: dict[str, Any]) -> None:
    cluster.kubectl(
        "patch",
        "pod",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def finish(
    cluster: Cluster, namespace: str, name: str, exit_code: int = 0, reason: str | None = None
) -> None:
    """Terminate every container of a Running pod with `exit_code`: phase Succeeded for 0, else Failed."""
    pod = wait_running(cluster, namespace, name)
    _patch_status(cluster, namespace, name, finished_status(pod, exit_code, reason))


def finished_status(pod: dict[str, Any], exit_code: int = 0, reason: str | None = None) -> dict[str, Any]:
    """The status a kubelet reports once every container of the Running `pod` exited with `exit_code`
    (for callers that PATCH it with a client of their own, e.g. to finish many pods at once)."""
    now = _now()
    terminated = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": pod["status"].get("startTime", now),
        "finishedAt": now,
    }
    statuses = [
        {**cs, "ready": False, "started": False, "state": {"terminated": terminated}}
        for cs in pod["status"].get("containerStatuses", [])
    ]
    phase = "Succeeded" if exit_code == 0 else "Failed"
    conditions = [
        {**c, "status": "False", "lastTransitionTime": now}
        if c["type"] in ("Ready", "ContainersReady")
        else c
        for c in pod["status"].get("conditions", [])
    ]
    return {"phase": phase, "containerStatuses": statuses, "conditions": conditions}


def restart_container(cluster: Cluster, namespace: str, name: str, exit_code: int = 1) -> int:
    """Simulate a kubelet restarting the pod's first container in place after it exited with
    `exit_code` (restartPolicy OnFailure/Always). Returns the new restartCount."""
    pod = wait_running(cluster, namespace, name)
    now = _now()
    statuses = pod["status"]["containerStatuses"]
    first = statuses[0]
    count = int(first.get("restartCount", 0)) + 1
    statuses[0] = {
        **first,
        "restartCount": count,
        "lastState": {
            "terminated": {"exitCode": exit_code, "reason": "Error", "startedAt": now, "finishedAt": now}
        },
        "state": {"running": {"startedAt": now}},
    }
    _patch_status(cluster, namespace, name, {"containerStatuses": statuses})
    return count
