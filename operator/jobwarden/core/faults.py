"""How a refused child write shows in a job's status (pure).

Upstream only posts an event when the apiserver refuses a pod (`FailedCreatePod`), so a job whose pods
can never be created stays `Created` with nothing in `status` to say why. jobwarden also records the
refusal in `status`, the way a Deployment reports `ReplicaFailure`: a condition for the Kubeflow kinds,
`state.reason`/`state.message` for Volcano. It is cleared once the child is written."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jobwarden.core.plan import ChildFault
from jobwarden.core.timefmt import to_rfc3339

# Deployment's condition type for the same situation, so `kubectl wait --for=condition=...` users know it.
FAILURE_CONDITION = "ReplicaFailure"
_CHILD_KINDS = ("Pod", "Service", "ConfigMap", "Secret", "PodGroup", "PersistentVolumeClaim", "NetworkPolicy")
FAULT_REASONS = frozenset(
    f"Failed{verb}{kind}" for verb in ("Create", "Update", "Delete") for kind in _CHILD_KINDS
)


def summary(faults: Sequence[ChildFault]) -> tuple[str, str] | None:
    """(reason, message) of the first fault, with a count of the others; None without faults."""
    if not faults:
        return None
    first = faults[0]
    message = f"{first.verb} {first.kind.lower()} {first.name} failed: {first.message}"
    if len(faults) > 1:
        message += f" (and {len(faults) - 1} more refused child writes)"
    return first.reason, message[:1024]


def with_failure_condition(
    conditions: Sequence[dict[str, Any]], faults: Sequence[ChildFault], now: datetime
) -> list[dict[str, Any]]:
    """The conditions with the `ReplicaFailure` condition set (first in the list, so the printer
    column `conditions[-1:].type` keeps showing the lifecycle state), updated or removed."""
    rest = [dict(c) for c in conditions if c.get("type") != FAILURE_CONDITION]
    found = summary(faults)
    if found is None:
        return rest
    reason, message = found
    previous = next((c for c in conditions if c.get("type") == FAILURE_CONDITION), None)
    if previous and previous.get("reason") == reason and previous.get("message") == message:
        return [dict(previous), *rest]
    stamp = to_rfc3339(now)
    condition = {
        "type": FAILURE_CONDITION,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": str(previous.get("lastTransitionTime")) if previous else stamp,
    }
    return [condition, *rest]
