"""The `env` plugin: every container and init container learns its replica index.

Upstream sets `VK_TASK_INDEX` (the original Volcano-kube-batch name) and `VC_TASK_INDEX`, both to
the pod's index within its task. It creates nothing else; it only records `plugin-env`."""

from __future__ import annotations

from typing import ClassVar

from jobwarden.core.plan import Manifest
from jobwarden.plugins.base import JobContext, JobPlugin, append_env

TASK_INDEX_ENV = ("VK_TASK_INDEX", "VC_TASK_INDEX")


class EnvPlugin(JobPlugin):
    name: ClassVar[str] = "env"

    def on_pod_create(self, pod: Manifest, job: JobContext, task: str, index: int) -> None:
        append_env(pod, [{"name": var, "value": str(index)} for var in TASK_INDEX_ENV])
