"""The `tensorflow` plugin (upstream `pkg/controllers/job/plugins/distributed-framework/tensorflow/`
`tensorflow.go`).

Flags: `--ps` (default `ps`), `--worker` (`worker`), `--chief` (`chief`), `--evaluator`
(`evaluator`), `--port` (2222). Every container (not init containers) gets `TF_CONFIG`:
`{"cluster": {"ps": [...], "worker": [...], "chief": [...], "evaluator": [...]}, "task": {"type": T,
"index": i}}` with `<host>.<subdomain>:<port>` per replica of the task named for each role (a role
without hosts is left out, Go's omitempty), the pod's role (the task name itself when it names no
role) and index. A job of a single task with a single replica gets nothing (not distributed). The
plugin creates nothing, records `plugin-tensorflow` and implies `svc`. The JSON keys are in upstream's
order, compact, as Go's `json.Marshal` writes them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from jobwarden.core.plan import Manifest
from jobwarden.plugins.base import Flags, FlagValue, JobContext, JobPlugin

TF_CONFIG = "TF_CONFIG"
ROLES = ("ps", "worker", "chief", "evaluator")  # upstream's clusterInfo field order
_TYPE_ORDER = ("chief", "worker", "ps", "evaluator")  # upstream's getTaskType switch order


@dataclass(frozen=True)
class TensorflowPlugin(JobPlugin):
    name: ClassVar[str] = "tensorflow"
    flag_defaults: ClassVar[Mapping[str, FlagValue]] = {**{role: role for role in ROLES}, "port": 2222}

    task_of_role: tuple[tuple[str, str], ...] = tuple((role, role) for role in ROLES)
    port: int = 2222

    @classmethod
    def from_flags(cls, flags: Flags) -> JobPlugin:
        return cls(tuple((role, flags.text(role)) for role in ROLES), flags.integer("port"))

    def on_pod_create(self, pod: Manifest, job: JobContext, task: str, index: int) -> None:
        if len(job.tasks) == 1 and job.tasks[0].replicas == 1:
            return
        value = json.dumps(self.tf_config(job, task, index), separators=(",", ":"))
        for container in pod.setdefault("spec", {}).get("containers") or []:
            container["env"] = [*(container.get("env") or []), {"name": TF_CONFIG, "value": value}]

    def tf_config(self, job: JobContext, task: str, index: int) -> dict[str, Any]:
        cluster: dict[str, list[str]] = {}
        for role, task_name in self.task_of_role:
            hosts_task = job.task(task_name)
            if hosts_task is not None and hosts_task.replicas > 0:
                hosts = [f"{job.domain_name(hosts_task, i)}:{self.port}" for i in range(hosts_task.replicas)]
                cluster[role] = hosts
        roles = dict(self.task_of_role)
        role = next((r for r in _TYPE_ORDER if roles[r] == task), task)
        return {"cluster": cluster, "task": {"type": role, "index": index}}
