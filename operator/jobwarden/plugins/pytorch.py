"""The `pytorch` plugin (upstream `pkg/controllers/job/plugins/distributed-framework/pytorch/pytorch.go`).

Flags: `--master` (default `master`), `--worker` (default `worker`), `--port` (default 23456),
`--wait-master-enabled` (default false), `--wait-master-timeout` (default 300 s),
`--wait-master-image` (default `busybox:1.36.1`). When the job has the master task, every container
(not init containers) of every pod gets `MASTER_ADDR` (the master's replica 0 host,
`<host>.<subdomain>`), `MASTER_PORT`, `WORLD_SIZE` (the master's and the worker's replicas) and, in
the master and worker tasks, `RANK` (master 0, worker `index + 1`), and declares the port
(`pytorchjob-port`) unless it has it. With `--wait-master-enabled` a worker pod gets the init
container `wait-for-master` that polls the master's port until the timeout. A job without the master
task gets nothing from this plugin, as upstream (which only logs it). The plugin creates nothing,
records `plugin-pytorch` and implies `svc`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from jobwarden.core.plan import Manifest
from jobwarden.plugins.base import Flags, FlagValue, JobContext, JobPlugin, open_port

PORT_NAME = "pytorchjob-port"
WAIT_CONTAINER = "wait-for-master"


@dataclass(frozen=True)
class PytorchPlugin(JobPlugin):
    name: ClassVar[str] = "pytorch"
    flag_defaults: ClassVar[Mapping[str, FlagValue]] = {
        "master": "master",
        "worker": "worker",
        "port": 23456,
        "wait-master-enabled": False,
        "wait-master-timeout": 300,
        "wait-master-image": "busybox:1.36.1",
    }

    master: str = "master"
    worker: str = "worker"
    port: int = 23456
    wait_master: bool = False
    wait_timeout: int = 300
    wait_image: str = "busybox:1.36.1"

    @classmethod
    def from_flags(cls, flags: Flags) -> JobPlugin:
        return cls(
            master=flags.text("master"),
            worker=flags.text("worker"),
            port=flags.integer("port"),
            wait_master=flags.boolean("wait-master-enabled"),
            wait_timeout=flags.integer("wait-master-timeout"),
            wait_image=flags.text("wait-master-image"),
        )

    def on_pod_create(self, pod: Manifest, job: JobContext, task: str, index: int) -> None:
        master = job.task(self.master)
        if master is None:
            return
        address = job.domain_name(master, 0)
        env = [
            {"name": "MASTER_ADDR", "value": address},
            {"name": "MASTER_PORT", "value": str(self.port)},
            {"name": "WORLD_SIZE", "value": str(self.world_size(job))},
        ]
        rank = {self.master: 0, self.worker: index + 1}.get(task)
        if rank is not None:
            env.append({"name": "RANK", "value": str(rank)})
        spec = pod.setdefault("spec", {})
        if task == self.worker and task != self.master and self.wait_master:
            self._add_wait_container(spec, address)
        for container in spec.get("containers") or []:
            open_port(container, self.port, PORT_NAME)
            container["env"] = [*(container.get("env") or []), *env]

    def world_size(self, job: JobContext) -> int:
        return sum(t.replicas for t in job.tasks if t.name in (self.master, self.worker))

    def _add_wait_container(self, spec: dict[str, Any], address: str) -> None:
        init = spec.get("initContainers") or []
        if any(c.get("name") == WAIT_CONTAINER for c in init):
            return
        script = _wait_script(address, self.port, self.wait_timeout)
        container = {"name": WAIT_CONTAINER, "image": self.wait_image, "command": ["sh", "-c", script]}
        spec["initContainers"] = [*init, container]


def _wait_script(address: str, port: int, timeout: int) -> str:
    """A POSIX shell loop: succeed once `address:port` accepts a TCP connection, fail after `timeout`.
    What it prints is upstream's, word for word (`kubectl logs -c wait-for-master` reads the same
    under both controllers); tests/unit keeps the messages equal."""
    return "\n".join(
        [
            f'echo "Waiting for master node {address}:{port} to be ready..."',
            f"TIMEOUT={timeout}",
            "ELAPSED=0",
            f"until {{ nc -z {address} {port} || echo > /dev/tcp/{address}/{port}; }} 2>/dev/null; do",
            "  if [ $ELAPSED -ge $TIMEOUT ]; then",
            '    echo "Timeout waiting for master after ${TIMEOUT} seconds"',
            "    exit 1",
            "  fi",
            '  echo "Master not ready yet, retrying in 2 seconds... (elapsed: ${ELAPSED}s)"',
            "  sleep 2",
            "  ELAPSED=$((ELAPSED + 2))",
            "done",
            'echo "Master node is ready!"',
        ]
    )
