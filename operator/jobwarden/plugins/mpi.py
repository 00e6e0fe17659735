"""The `mpi` plugin (upstream `pkg/controllers/job/plugins/distributed-framework/mpi/mpi.go`).

Flags: `--master` (default `master`), `--worker` (default `worker`), `--port` (default 22). Every
container and init container of every pod declares the port (`mpijob-port`) unless one of its ports
already has that number; the containers of the master task's pods get `MPI_HOST`, the worker task's
hosts (`<host>.<subdomain>`, comma-separated; one entry when the template fixes the hostname). The
plugin creates nothing and records `plugin-mpi`. The mpi plugin implies `svc` and `ssh` (Volcano's
mutating webhook adds them; here `plugins/registry.py` does, in memory).

Where upstream breaks, this runs: a job with only a master task gets no `MPI_HOST` (upstream returns
early for a missing worker task; issue 4609 panicked an older controller) and a worker task without
`replicas` gives `MPI_HOST=""` (issue 4271). The launcher starting only once its workers run (issue
2402) is a `dependsOn` the user writes on the master task (`dependsOn: {name: [worker]}`); upstream's
automatic one is disabled, and jobwarden adds none either."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from jobwarden.core.plan import Manifest
from jobwarden.plugins.base import Flags, FlagValue, JobContext, JobPlugin, every_container, open_port

MPI_HOST_ENV = "MPI_HOST"
PORT_NAME = "mpijob-port"


@dataclass(frozen=True)
class MpiPlugin(JobPlugin):
    name: ClassVar[str] = "mpi"
    flag_defaults: ClassVar[Mapping[str, FlagValue]] = {"master": "master", "worker": "worker", "port": 22}

    master: str = "master"
    worker: str = "worker"
    port: int = 22

    @classmethod
    def from_flags(cls, flags: Flags) -> JobPlugin:
        return cls(flags.text("master"), flags.text("worker"), flags.integer("port"))

    def on_pod_create(self, pod: Manifest, job: JobContext, task: str, index: int) -> None:
        hosts = self.worker_hosts(job) if task == self.master else None
        for container in every_container(pod):
            open_port(container, self.port, PORT_NAME)
            if hosts is not None:
                container["env"] = [*(container.get("env") or []), {"name": MPI_HOST_ENV, "value": hosts}]

    def worker_hosts(self, job: JobContext) -> str | None:
        """The worker task's hosts, comma-separated; None when the job has no worker task."""
        worker = job.task(self.worker)
        if worker is None:
            return None
        return ",".join(fqdn for _, fqdn in job.hosts(worker))
