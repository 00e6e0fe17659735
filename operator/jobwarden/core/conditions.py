"""Job conditions the way the Kubeflow training operators keep them (`status.conditions[]`).

A condition is `{type, status, reason, message, lastUpdateTime, lastTransitionTime}`. `set_condition`
applies the upstream update rule (training-operator `pkg/util/status.go`):

- a finished job (a `Succeeded` or `Failed` condition with status True) never changes again. Upstream
  freezes only after Failed and relies on an early exit to keep Succeeded stable; freezing after
  both, as the 2019 operators did, gives the same result with one rule;
- setting a condition that already holds with the same status and reason changes nothing (the message
  is not refreshed), so replanning the same observation is idempotent;
- a condition whose status stays the same keeps its `lastTransitionTime`;
- `Running` and `Restarting` exclude each other: adding one drops the other;
- `Succeeded` / `Failed` flip `Running` to status False. Unlike upstream they flip `Restarting`
  too, so a failed job never still claims to be restarting.

The functions never mutate their input; they return a new list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jobwarden.core.timefmt import to_rfc3339

Condition = dict[str, Any]

CREATED = "Created"
RUNNING = "Running"
RESTARTING = "Restarting"
SUSPENDED = "Suspended"
SUCCEEDED = "Succeeded"
FAILED = "Failed"

TRUE = "True"
FALSE = "False"

FINISHED = (SUCCEEDED, FAILED)

# Adding the key condition removes these from the list.
_DISPLACES: Mapping[str, tuple[str, ...]] = {RUNNING: (RESTARTING,), RESTARTING: (RUNNING,)}
# Finishing keeps these in the list but says they no longer hold.
_ENDED_BY_FINISH = (RUNNING, RESTARTING)


def find(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def holds(conditions: Sequence[Mapping[str, Any]], type_: str) -> bool:
    """Whether a condition of this type is present with status True."""
    found = find(conditions, type_)
    return found is not None and found.get("status") == TRUE


def is_finished(conditions: Sequence[Mapping[str, Any]]) -> bool:
    return any(holds(conditions, t) for t in FINISHED)


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    reason: str,
    message: str,
    now: datetime,
    status: str = TRUE,
) -> list[Condition]:
    """The list with `type_` set; equal to the input when the rule says nothing changes."""
    current = [dict(c) for c in conditions]
    existing = find(current, type_) or {}
    same_status = existing.get("status") == status
    if is_finished(current) or (same_status and existing.get("reason") == reason):
        return current
    stamp = to_rfc3339(now)
    kept_transition = existing.get("lastTransitionTime") if same_status else None
    new: Condition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": kept_transition or stamp,
    }
    displaced = (type_, *_DISPLACES.get(type_, ()))
    kept = [c for c in current if c.get("type") not in displaced]
    if type_ in FINISHED and status == TRUE:
        kept = [_ended(c) for c in kept]
    return [*kept, new]


def _ended(condition: Condition) -> Condition:
    if condition.get("type") in _ENDED_BY_FINISH:
        return {**condition, "status": FALSE}
    return condition
