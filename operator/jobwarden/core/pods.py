"""Reading a pod's state as a kubelet reports it; shared by every job kind."""

from __future__ import annotations

from jobwarden.core.plan import Body

POD_RUNNING, POD_PENDING, POD_SUCCEEDED, POD_FAILED = "Running", "Pending", "Succeeded", "Failed"


def pod_phase(pod: Body) -> str:
    # A pod the scheduler has not touched yet has no phase: it is as good as Pending.
    return str((pod.get("status") or {}).get("phase") or POD_PENDING)


def in_place_restarts(pod: Body) -> int:
    """Container restarts the kubelet made inside the pod (init and regular containers)."""
    status = pod.get("status") or {}
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def is_terminating(child: Body) -> bool:
    return bool((child.get("metadata") or {}).get("deletionTimestamp"))
