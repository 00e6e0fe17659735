"""Volcano's create-time defaults (what its mutating webhook fills in), in one place.

jobwarden never writes them back. Two readers apply them, with the counts that fit their purpose:
- the plan reads a job through them with its *current* replica counts, so a scale moves the defaulted
  minimums with the replicas (nothing stores them);
- the update contract compares old and new through them with the *old* object's counts, because
  Volcano fixes them when the job is created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from jobwarden.core.admission import as_mapping, is_int

DEFAULT_QUEUE: Final = "default"
# The scheduler a Volcano job asks for when it names none (the mutating webhook's `--scheduler-name`).
VOLCANO_SCHEDULER: Final = "volcano"
DEFAULT_MAX_RETRY: Final = 3
# Plugins after which the mutating webhook adds `svc` (and `mpi` also `ssh`).
PLUGINS_IMPLYING_SVC: Final = ("tensorflow", "mpi", "pytorch", "ray")


def queue(value: Any) -> Any:
    return DEFAULT_QUEUE if value in (None, "") else value


def scheduler_name(value: Any) -> Any:
    return VOLCANO_SCHEDULER if value in (None, "") else value


def max_retry(value: Any) -> Any:
    """Job and task `maxRetry`: 0 or unset means 3."""
    return DEFAULT_MAX_RETRY if value in (None, 0) else value


def task_min_available(task: Mapping[str, Any], replicas: Any) -> Any:
    """A task's `minAvailable`: as given, else `minPartitions * partitionSize` for a partitioned task,
    else `replicas` (the task's replicas when the default is taken)."""
    given = task.get("minAvailable")
    if given is not None:
        return given
    partition = as_mapping(task.get("partitionPolicy"))
    minimum, size = partition.get("minPartitions"), partition.get("partitionSize")
    if is_int(minimum) and minimum > 0 and is_int(size) and size > 0:
        return minimum * size
    return replicas


def job_min_available(value: Any, task_minimums: Any) -> Any:
    """The job's `minAvailable`: 0 or unset means the sum of the tasks' minimums."""
    return task_minimums if value in (None, 0) else value


def default_plugins(plugins: dict[str, Any]) -> None:
    """The plugins the mutating webhook adds, in place: the plan reads the job with them (the
    distributed-framework plugins name hosts the svc plugin makes resolvable; mpi launches over ssh)."""
    if any(p in plugins for p in PLUGINS_IMPLYING_SVC):
        plugins.setdefault("svc", [])
    if "mpi" in plugins:
        plugins.setdefault("ssh", [])
