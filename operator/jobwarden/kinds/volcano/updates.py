"""The seeds' update contract for the Volcano Job, stricter than upstream.

Only labels, annotations, `generateName`, and per task `replicas` and `template` may change; tasks are
matched by name and may not be added, removed, renamed or reordered; `spec.minAvailable` is immutable.
A scale is checked against the job's and the task's `minAvailable`. Values that differ only by
Volcano's defaulting (queue, maxRetry, task and job `minAvailable`, plugins the mutating webhook adds,
controller-filled `volumeClaimName`) are not changes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from jobwarden.core.admission import (
    UpdateContract,
    as_mapping,
    forbidden_changes,
    int_errors,
    invalid_value,
    is_int,
    not_updatable,
)
from jobwarden.core.fielderrors import FieldError, forbidden
from jobwarden.core.plan import Body
from jobwarden.kinds.volcano import defaults
from jobwarden.kinds.volcano.validation import (
    job_min_available_error,
    task_min_available_errors,
    task_name,
    task_replicas,
    total_replicas,
)

VOLCANO_UPDATABLE: Final[tuple[str, ...]] = (
    "metadata.labels",
    "metadata.annotations",
    "metadata.generateName",
    "spec.tasks[*].replicas",
    "spec.tasks[*].template",
)

# How precisely the admission policy names a change: a task's fields (`spec.tasks[1].minAvailable`) and
# inside its policies, dependsOn and partitionPolicy, the job's policies; the rest of the spec at its first
# level. Not `spec.plugins`: there an empty argument list means something (KEEP_EMPTY), so it is
# compared whole.
# `plugins: {env: []}` enables a plugin with no arguments: there the empty list is not "absent".
KEEP_EMPTY: Final = ("spec.plugins.*",)
VOLCANO_CONTRACT: Final = UpdateContract(
    VOLCANO_UPDATABLE,
    keep_empty=KEEP_EMPTY,
    detail=(
        "spec.tasks[*].policies[*].*",
        "spec.tasks[*].dependsOn.*",
        "spec.tasks[*].partitionPolicy.*",
        "spec.policies[*].*",
    ),
)


def check_volcano_update(old: Body, new: Body) -> list[FieldError]:
    """FORBIDDEN for every changed path outside `VOLCANO_UPDATABLE` and for added/removed/renamed
    tasks; INVALID for a scale that the new replica counts cannot satisfy. Metadata other than the
    updatable fields is server-managed (or cannot change on UPDATE); `status` is never compared."""
    old_raw, new_raw = as_mapping(old.get("spec")), as_mapping(new.get("spec"))
    old_spec, new_spec = _normalised_pair(old_raw, new_raw)
    old_tasks, new_tasks = _tasks(old_spec), _tasks(new_spec)
    task_list_errors = _task_list_errors(old_tasks, new_tasks)
    return [
        *forbidden_changes(
            {"spec": _without_tasks(old_spec)},
            {"spec": _without_tasks(new_spec)},
            VOLCANO_UPDATABLE,
            KEEP_EMPTY,
        ),
        *task_list_errors,
        *_task_changes(old_tasks, new_tasks),
        # Totals only mean something when the same tasks are being scaled.
        *_scale_errors(_tasks(old_raw), _tasks(new_raw), new_raw.get("minAvailable"), not task_list_errors),
    ]


def _tasks(spec: Mapping[str, Any]) -> list[Any]:
    tasks = spec.get("tasks")
    return tasks if isinstance(tasks, list) else []


def _without_tasks(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in spec.items() if key != "tasks"}


def _normalised_pair(
    old_raw: Mapping[str, Any], new_raw: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copies of both specs with Volcano's create-time defaults filled in the same way, so that only
    real changes differ. Defaults that depend on counts use the *old* object's counts, because Volcano
    fixes them when the job is created (a later scale does not move them)."""
    old_spec, new_spec = copy.deepcopy(dict(old_raw)), copy.deepcopy(dict(new_raw))
    old_replicas = {task_name(t, i): task_replicas(t) for i, t in enumerate(_tasks(old_spec))}
    for spec in (old_spec, new_spec):
        _default_job_fields(spec)
        for index, task in enumerate(_tasks(spec)):
            if isinstance(task, dict):
                _default_task_fields(task, old_replicas.get(task_name(task, index), task_replicas(task)))
    old_minimum = _sum_task_minimums(_tasks(old_spec))
    for spec in (old_spec, new_spec):
        spec["minAvailable"] = defaults.job_min_available(spec.get("minAvailable"), old_minimum)
    return old_spec, new_spec


def _default_job_fields(spec: dict[str, Any]) -> None:
    spec["queue"] = defaults.queue(spec.get("queue"))
    spec["schedulerName"] = defaults.scheduler_name(spec.get("schedulerName"))
    spec["maxRetry"] = defaults.max_retry(spec.get("maxRetry"))
    plugins = spec.get("plugins")
    if isinstance(plugins, dict):
        defaults.default_plugins(plugins)
    for volume in spec.get("volumes") or []:
        if isinstance(volume, dict) and volume.get("volumeClaim") is not None:
            volume.pop("volumeClaimName", None)  # filled in by the controller, as upstream ignores it


def _default_task_fields(task: dict[str, Any], replicas_at_creation: Any) -> None:
    task["maxRetry"] = defaults.max_retry(task.get("maxRetry"))
    task["minAvailable"] = defaults.task_min_available(task, replicas_at_creation)


def _sum_task_minimums(tasks: list[Any]) -> Any:
    minimums = [as_mapping(t).get("minAvailable") for t in tasks]
    return sum(minimums) if all(is_int(m) for m in minimums) else None


def _task_list_errors(old_tasks: list[Any], new_tasks: list[Any]) -> list[FieldError]:
    old_names = [task_name(t, i) for i, t in enumerate(old_tasks)]
    new_names = [task_name(t, i) for i, t in enumerate(new_tasks)]
    if len(old_names) != len(new_names):
        before, after = ", ".join(old_names), ", ".join(new_names)
        return [
            forbidden(
                "spec.tasks",
                f"job updates may not add or remove tasks (before: [{before}], after: [{after}]), "
                "only scale them with spec.tasks[*].replicas; updatable fields: "
                + ", ".join(VOLCANO_UPDATABLE),
            )
        ]
    return [
        not_updatable(f"spec.tasks[{index}].name", VOLCANO_UPDATABLE)
        for index, (old_name, new_name) in enumerate(zip(old_names, new_names, strict=True))
        if old_name != new_name
    ]


def _task_changes(old_tasks: list[Any], new_tasks: list[Any]) -> list[FieldError]:
    """Compare tasks by name (wherever they now sit), reporting paths at their new index."""
    old_by_name: dict[str, Any] = {}
    for index, task in enumerate(old_tasks):
        old_by_name.setdefault(task_name(task, index), task)
    errors: list[FieldError] = []
    for index, task in enumerate(new_tasks):
        name = task_name(task, index)
        if name in old_by_name:
            base = ("spec", "tasks", index)
            errors += forbidden_changes(old_by_name[name], task, VOLCANO_UPDATABLE, KEEP_EMPTY, base)
    return errors


def _scale_errors(
    old_tasks: list[Any], new_tasks: list[Any], min_available: Any, same_tasks: bool
) -> list[FieldError]:
    """The new replica counts, where they changed, must still satisfy the immutable minimums."""
    old_replicas = {task_name(t, i): task_replicas(t) for i, t in enumerate(old_tasks)}
    errors: list[FieldError] = []
    for index, task in enumerate(new_tasks):
        replicas = task_replicas(task)
        if old_replicas.get(task_name(task, index)) == replicas:
            continue
        errors += int_errors(f"spec.tasks[{index}].replicas", replicas, 0)
        why = "; minAvailable cannot be changed, so the task cannot be scaled below it"
        errors += task_min_available_errors(index, as_mapping(task).get("minAvailable"), replicas, why)
    old_total, new_total = total_replicas(old_tasks), total_replicas(new_tasks)
    if not same_tasks or old_total == new_total or new_total is None:
        return errors
    if not is_int(min_available) or min_available <= new_total:
        return errors
    if old_total is not None and new_total < old_total:
        detail = (
            f"scaling the tasks down to {new_total} replicas in total would leave fewer than minAvailable; "
            f"spec.minAvailable cannot be changed, so keep at least {min_available} replicas in total"
        )
        return [*errors, invalid_value("spec.minAvailable", min_available, detail)]
    return [*errors, job_min_available_error(min_available, new_total)]
