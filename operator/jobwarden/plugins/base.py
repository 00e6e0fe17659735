"""The interface every Volcano job plugin implements, and the job facts plugins read.

Upstream (`pkg/controllers/job/plugins/interface`) has four hooks: `OnPodCreate`, `OnJobAdd`,
`OnJobUpdate` and `OnJobDelete`. Here the three job hooks become declarations the kind reconciles
level-triggered, since a plan sees what exists rather than a stream of events:

- `on_pod_create(pod, job, task, index)` edits a pod manifest before it is created;
- `resources(job)` lists the children the plugin wants (OnJobAdd and OnJobUpdate in one);
- `on_job_delete(job)` names the children to remove when the whole job is killed.

A plugin records itself in `status.controlledResources["plugin-<name>"] = <name>`, as upstream does."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jobwarden.core.plan import Body, ChildRef, Manifest

FlagValue = bool | int | str

# Labels upstream puts on every pod of a job; the svc plugin's Service selects pods by them.
JOB_NAME_LABEL = "volcano.sh/job-name"
JOB_NAMESPACE_LABEL = "volcano.sh/job-namespace"
# On every child a plugin makes (jobwarden's own; upstream has none): with the job's controller
# ownerReference it says what a kill removes, whatever status.controlledResources recorded.
PLUGIN_LABEL = "jobwarden.dev/plugin"


def pod_name(job_name: str, task_name: str, index: int) -> str:
    """`<job>-<task>-<index>`, upstream's `MakePodName`."""
    return f"{job_name}-{task_name}-{index}"


@dataclass(frozen=True)
class TaskHosts:
    """What a plugin needs to know of a task to name its pods' hosts."""

    name: str
    replicas: int
    hostname: str  # the template's spec.hostname, "" when unset
    subdomain: str  # the template's spec.subdomain, "" when unset


@dataclass(frozen=True)
class JobContext:
    """The job as plugins see it: its body plus the task facts every plugin reads."""

    job: Body
    tasks: tuple[TaskHosts, ...]

    @classmethod
    def of(cls, job: Body) -> JobContext:
        tasks = tuple(
            TaskHosts(
                name=str(task.get("name") or ""),
                replicas=int(task.get("replicas") or 0),
                hostname=str(((task.get("template") or {}).get("spec") or {}).get("hostname") or ""),
                subdomain=str(((task.get("template") or {}).get("spec") or {}).get("subdomain") or ""),
            )
            for task in (job.get("spec") or {}).get("tasks") or []
        )
        return cls(job, tasks)

    @property
    def name(self) -> str:
        return str(self.job["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.job["metadata"]["namespace"])

    def task(self, name: str) -> TaskHosts | None:
        return next((t for t in self.tasks if t.name == name), None)

    def domain_name(self, task: TaskHosts, index: int) -> str:
        """`<hostname>.<subdomain>` of a replica (upstream `MakeDomainName`): the pod's name and the
        job's name unless the template fixes them."""
        hostname = task.hostname or pod_name(self.name, task.name, index)
        return f"{hostname}.{task.subdomain or self.name}"

    def hosts(self, task: TaskHosts) -> list[tuple[str, str]]:
        """(hostname, `<hostname>.<subdomain>`) of each replica. A template that fixes its hostname
        gives every replica the same name, so upstream lists it once."""
        entries = []
        for index in range(task.replicas):
            hostname = task.hostname or pod_name(self.name, task.name, index)
            entries.append((hostname, self.domain_name(task, index)))
            if task.hostname:
                break
        return entries


@dataclass(frozen=True)
class DesiredChild:
    """A child a plugin wants to exist. `build` is called only when the manifest is needed. It is
    deterministic: what is random or expensive to make (the ssh key pair) is left out of it and filled
    in by the plugin's `materialize` just before the shell creates the child.

    For a kind the shell watches (ConfigMap, Service) the kind creates the child when it is missing
    and replaces it when one of `synced_fields` differs from the live object; with no synced fields
    the child is create-only. A kind the shell never watches (Secret) is asked for while the plugin
    is not recorded in `status.controlledResources` and the child is not in `Observed.children` (where
    the shell puts the unwatched children it created or found existing); the plugin is recorded once
    the child is there."""

    kind: str
    name: str
    build: Callable[[], Manifest]
    synced_fields: tuple[str, ...] = field(default=())


class Flags:
    """Parsed plugin arguments with typed reads; see `jobwarden.plugins.registry.parse_flags`."""

    def __init__(self, values: Mapping[str, FlagValue]) -> None:
        self._values = dict(values)

    def boolean(self, name: str) -> bool:
        value = self._values[name]
        assert isinstance(value, bool), name
        return value

    def integer(self, name: str) -> int:
        value = self._values[name]
        assert isinstance(value, int) and not isinstance(value, bool), name
        return value

    def text(self, name: str) -> str:
        value = self._values[name]
        assert isinstance(value, str), name
        return value


class JobPlugin(ABC):
    """One Volcano job plugin. Subclasses set `name` and `flag_defaults` (flag name without dashes →
    default value, whose type is the flag's type) and build themselves from parsed flags."""

    name: ClassVar[str]
    flag_defaults: ClassVar[Mapping[str, FlagValue]] = {}
    # Upstream's plugins record `plugin-<name>` in `status.controlledResources`; hcclrank does not.
    records_itself: ClassVar[bool] = True
    # Reads what other plugins wrote into a pod (hcclrank reads `RANK`), so its `on_pod_create` runs last.
    runs_last: ClassVar[bool] = False

    @classmethod
    def from_flags(cls, flags: Flags) -> JobPlugin:
        del flags
        return cls()

    @property
    def controlled_key(self) -> str:
        return f"plugin-{self.name}"

    @property
    def child_labels(self) -> dict[str, str]:
        """The labels of every child this plugin makes."""
        return {PLUGIN_LABEL: self.name}

    @abstractmethod
    def on_pod_create(self, pod: Manifest, job: JobContext, task: str, index: int) -> None:
        """Edit a new pod's manifest in place (every plugin has something to add to its pods)."""

    def resources(self, job: JobContext) -> list[DesiredChild]:
        """The children this plugin wants while the job is alive."""
        return []

    def on_job_delete(self, job: JobContext) -> list[ChildRef]:
        """The children to remove when the whole job is killed (restarted, aborted, finished)."""
        return []

    @classmethod
    def materialize(cls, manifest: Manifest) -> Manifest:
        """A child manifest of this plugin's as it is created: what its plan only asked for filled in.
        Called by the shell (through the kind) on every manifest it creates; a manifest that is not
        this plugin's to complete comes back unchanged."""
        return manifest


# ---------------------------------------------------------------------------------------------
# Pod manifest edits shared by the plugins. Upstream applies them to containers and init
# containers alike.


def every_container(pod: Manifest) -> Iterator[dict[str, Any]]:
    spec = pod.setdefault("spec", {})
    for key in ("initContainers", "containers"):
        yield from spec.get(key) or []


def append_env(pod: Manifest, entries: list[dict[str, Any]]) -> None:
    for container in every_container(pod):
        container["env"] = [*(container.get("env") or []), *entries]


def open_port(container: dict[str, Any], port: int, name: str) -> None:
    """Declare `port` on the container under `name` unless some port entry already has that number."""
    ports = container.get("ports") or []
    if not any(p.get("containerPort") == port for p in ports):
        container["ports"] = [*ports, {"name": name, "containerPort": port}]


def add_volume(pod: Manifest, volume: dict[str, Any], mount: dict[str, Any]) -> None:
    """Add a pod volume and mount it into every container."""
    spec = pod.setdefault("spec", {})
    spec["volumes"] = [*(spec.get("volumes") or []), volume]
    for container in every_container(pod):
        container["volumeMounts"] = [*(container.get("volumeMounts") or []), dict(mount)]
