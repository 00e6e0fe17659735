"""The contract between the pure decision core and the imperative shell.

A kind's `plan(observed)` looks at one job and the children it owns (as the shell's watch caches
see them) and returns a `Plan`: what to create, replace or delete, the job's new status, the
events to post, and when to look again. The shell executes the plan and nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Body = Mapping[str, Any]
Manifest = dict[str, Any]


class NamedJob:
    """Name and namespace of a job, read from its stored body: the base of every kind's typed view
    of a job (a frozen dataclass that declares the `body` field itself)."""

    body: Body

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])


@dataclass(frozen=True)
class ChildKind:
    """A kind of child object jobwarden creates, and how the shell reaches and observes it."""

    kind: str
    api_version: str  # `v1` for the core group, else `<group>/<version>`
    plural: str
    # Watched (label `app.kubernetes.io/managed-by=jobwarden`) and handed to the core in
    # `Observed.children`. Secrets are never watched (least privilege): a kind records the Secrets
    # it made in the job's status instead, e.g. Volcano's `status.controlledResources`.
    watched: bool
    needs_crd: bool = False  # watched only when its CRD is installed

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


# The one table of child kinds; the shell's watches and API dispatch derive from it.
CHILD_KINDS: tuple[ChildKind, ...] = (
    ChildKind("Pod", "v1", "pods", watched=True),
    ChildKind("Service", "v1", "services", watched=True),
    ChildKind("ConfigMap", "v1", "configmaps", watched=True),
    ChildKind("Secret", "v1", "secrets", watched=False),
    ChildKind("PodGroup", "scheduling.volcano.sh/v1beta1", "podgroups", watched=True, needs_crd=True),
    ChildKind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", watched=True),
    ChildKind("PersistentVolumeClaim", "v1", "persistentvolumeclaims", watched=True),
    # MPIJob's launcher (`<job>-launcher`): its pods are the Job's, read through the Job's status.
    ChildKind("Job", "batch/v1", "jobs", watched=True),
)
CHILD_KINDS_BY_NAME: Mapping[str, ChildKind] = {c.kind: c for c in CHILD_KINDS}
# The child kinds the shell always watches and hands to the core, keyed by Kubernetes kind.
WATCHED_CHILD_KINDS: tuple[str, ...] = tuple(c.kind for c in CHILD_KINDS if c.watched and not c.needs_crd)

# Volcano's Command (`bus.volcano.sh/v1alpha1`): not a child, an order aimed at a job through its
# `target` (vcctl job suspend/resume). The shell watches them (when the CRD is installed), hands a
# job's pending ones to the core in `Observed.commands`, and deletes those a plan consumed.
COMMAND_KIND = ChildKind("Command", "bus.volcano.sh/v1alpha1", "commands", watched=True, needs_crd=True)
# Volcano's Queue (cluster-scoped): read so a job whose PodGroup waits on a missing or closed queue says so.
QUEUE_KIND = ChildKind("Queue", "scheduling.volcano.sh/v1beta1", "queues", watched=True, needs_crd=True)

# A manifest in `Plan.create` carrying this annotation is only a request: `JobKind.materialize` fills
# it in (e.g. an ssh key pair) before it is created; the shell runs that in a worker thread.
GENERATE_ANNOTATION = "jobwarden.dev/generate"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "jobwarden"


@dataclass(frozen=True)
class Settings:
    """Operator-wide knobs that change decisions (not how the shell talks to the API)."""

    cluster_domain: str = ""  # appended to `<svc>.<ns>.svc` in TF_CONFIG when set (CUSTOM_CLUSTER_DOMAIN)
    volcano_scheduler_installed: bool = False  # PodGroup CRD present
    volcano_fallback_to_default_scheduler: bool = True  # run Volcano jobs without Volcano's scheduler
    # "volcano": Kubeflow jobs are gang-scheduled by Volcano (a PodGroup each) when the PodGroup CRD is
    # installed, as training-operator's `--gang-scheduler-name=volcano`; "" (default): not at all.
    gang_scheduler: str = ""
    # PyTorch workers' `init-pytorch` container, which waits for the master's DNS name (upstream's
    # `--pytorch-init-container-image`, `-max-tries` and its template's resources).
    pytorch_init_image: str = "alpine:3.10"
    pytorch_init_max_tries: int = 100
    pytorch_init_resources: tuple[tuple[str, str], ...] = (
        ("limits.cpu", "100m"),
        ("limits.memory", "20Mi"),
        ("requests.cpu", "50m"),
        ("requests.memory", "10Mi"),
    )


@dataclass(frozen=True)
class ChildFault:
    """A child write the apiserver refused on the shell's last attempt (422 invalid, 403 quota, a name
    taken by an object the job does not own). The core shows it in the job's status until the same
    child is written successfully."""

    verb: str  # "Create", "Update", "Delete"
    kind: str  # "Pod", "Service", ...
    name: str
    message: str  # the apiserver's answer, e.g. `403 Forbidden: exceeded quota: ...`

    @property
    def reason(self) -> str:
        """Upstream's event reasons: `FailedCreatePod`, `FailedCreateService`, `FailedDeletePod`."""
        return f"Failed{self.verb}{self.kind}"


@dataclass(frozen=True)
class Observed:
    """Everything a decision may depend on. `children[kind][name]` holds only objects controlled
    (ownerReference controller=true) by this job; `faults` the child writes that failed last time."""

    job: Body
    children: Mapping[str, Mapping[str, Body]]
    now: datetime
    settings: Settings = Settings()
    faults: tuple[ChildFault, ...] = ()
    # Commands whose `target.uid` is this job's, not yet consumed, oldest first.
    commands: tuple[Body, ...] = ()
    # Volcano's Queues by name (cluster-scoped); None when their CRD is not installed.
    queues: Mapping[str, Body] | None = None

    def of_kind(self, kind: str) -> Mapping[str, Body]:
        return self.children.get(kind, {})

    @property
    def pods(self) -> Mapping[str, Body]:
        return self.of_kind("Pod")

    @property
    def services(self) -> Mapping[str, Body]:
        return self.of_kind("Service")

    @property
    def configmaps(self) -> Mapping[str, Body]:
        return self.of_kind("ConfigMap")


@dataclass(frozen=True)
class Event:
    """A core/v1 Event on the job, as `kubectl describe` shows it."""

    type: str  # "Normal" or "Warning"
    reason: str
    message: str


@dataclass(frozen=True)
class ChildRef:
    kind: str  # "Pod", "Service", "ConfigMap", "Secret", "PodGroup", "Job"
    name: str


@dataclass
class Plan:
    """What the shell must do for one job, in this order: write `status` (the full new status) if not
    None, fenced by the job's resourceVersion, and stop there if that write is refused; create,
    replace, patch, delete children; delete the consumed Commands; post events; delete the job if
    `delete_job`; reconcile again at `wake_at` even if no watch event arrives (deadlines, TTL).

    The status goes first because it records the decision that the child writes act on (a terminal
    state, a restart count): a delete must never destroy the evidence of a decision that was not
    stored. A plan that writes children but no status is fenced by an unchanged status write."""

    create: list[Manifest] = field(default_factory=list)
    replace: list[Manifest] = field(default_factory=list)
    # JSON merge patches (RFC 7386) of children others write too (Volcano's PodGroup, whose status the
    # scheduler writes): `apiVersion`, `kind` and `metadata.name` say which, the rest is the patch.
    # No resourceVersion: only the fields jobwarden owns change, so a racing writer is no conflict.
    patch: list[Manifest] = field(default_factory=list)
    delete: list[ChildRef] = field(default_factory=list)
    status: dict[str, Any] | None = None
    events: list[Event] = field(default_factory=list)
    delete_job: bool = False
    wake_at: datetime | None = None
    # The decision this plan carries out is failing the job for its active deadline (for metrics: the
    # shell counts from this, never from message text). Set only by the plan that makes the transition.
    deadline_exceeded: bool = False
    # Names of the `Observed.commands` this plan carried out (or found nothing to do for): the shell
    # deletes them after the status recording the action is written, never before.
    consumed_commands: list[str] = field(default_factory=list)

    @property
    def writes_children(self) -> bool:
        return bool(self.create or self.replace or self.patch or self.delete or self.consumed_commands)

    def only_reports_progress(self, finished: bool) -> bool:
        """Whether this plan's only write is a status of a job that is not `finished` (replica counts,
        a `Running` condition): a write that may wait a moment and be merged with the next ones. The
        pods of one job start within about a second of each other, and each start would otherwise
        cost a status write of its own (issue 13: ≤ 3 status writes per job). A status that records a
        finish (the TTL counts from it, cleanPodPolicy acts on it) or fences child writes never waits."""
        return self.status is not None and not (finished or self.writes_children or self.delete_job)

    @property
    def is_noop(self) -> bool:
        return not (self.writes_children or self.events or self.delete_job) and self.status is None
