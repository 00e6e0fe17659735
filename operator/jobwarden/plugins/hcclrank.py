"""The `hcclrank` plugin (upstream `pkg/controllers/job/plugins/distributed-framework/hcclrank/hcclrank.go`).

Flags: `--master` (default `master`), `--worker` (default `worker`). A pod without the annotation
`hccl/rankIndex` gets it: the value of a container's `RANK` env when one is set (e.g. by the pytorch
plugin), else the task index in the master task, `master replicas + index` in the worker task;
pods of other tasks get none. Upstream runs plugins in Go's random map order, so whether it sees the
pytorch plugin's `RANK` varies; here the registry runs hcclrank after the others, so it always does.
The plugin creates nothing and records nothing (upstream's job hooks do nothing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from jobwarden.core.plan import Manifest
from jobwarden.plugins.base import Flags, FlagValue, JobContext, JobPlugin

RANK_ANNOTATION = "hccl/rankIndex"


@dataclass(frozen=True)
class HcclRankPlugin(JobPlugin):
    name: ClassVar[str] = "hcclrank"
    flag_defaults: ClassVar[Mapping[str, FlagValue]] = {"master": "master", "worker": "worker"}
    records_itself: ClassVar[bool] = False
    runs_last: ClassVar[bool] = True

    master: str = "master"
    worker: str = "worker"

    @classmethod
    def from_flags(cls, flags: Flags) -> JobPlugin:
        return cls(flags.text("master"), flags.text("worker"))

    def on_pod_create(self, pod: Manifest, job: JobContext, task: str, index: int) -> None:
        annotations = pod.setdefault("metadata", {}).setdefault("annotations", {})
        if annotations.get(RANK_ANNOTATION):
            return
        rank = _rank_env(pod) or self._rank_of(job, task, index)
        if rank is not None:
            annotations[RANK_ANNOTATION] = rank

    def _rank_of(self, job: JobContext, task: str, index: int) -> str | None:
        if task == self.master:
            return str(index)
        if task == self.worker:
            master = job.task(self.master)
            return str((master.replicas if master else 0) + index)
        return None


def _rank_env(pod: Manifest) -> str | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == "RANK" and env.get("value"):
                return str(env["value"])
    return None
