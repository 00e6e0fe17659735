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

# The child kinds the shell watches (label `app.kubernetes.io/managed-by=jobwarden`) and hands to
# the core, keyed by Kubernetes kind. Secrets are never watched (least privilege): a kind records
# the Secrets it made in the job's status instead, e.g. Volcano's `status.controlledResources`.
WATCHED_CHILD_KINDS = ("Pod", "Service", "ConfigMap")

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "jobwarden"


@dataclass(frozen=True)
class Settings:
    """Operator-wide knobs that change decisions (not how the shell talks to the API)."""

    cluster_domain: str = ""  # appended to `<svc>.<ns>.svc` in TF_CONFIG when set (CUSTOM_CLUSTER_DOMAIN)
    volcano_scheduler_installed: bool = False  # PodGroup CRD present
    volcano_fallback_to_default_scheduler: bool = True  # run Volcano jobs without Volcano's scheduler


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
    kind: str  # "Pod", "Service", "ConfigMap", "Secret", "PodGroup"
    name: str


@dataclass
class Plan:
    """What the shell must do for one job, in this order: write `status` (the full new status) if not
    None, fenced by the job's resourceVersion, and stop there if that write is refused; create,
    replace, delete children; post events; delete the job if `delete_job`; reconcile again at
    `wake_at` even if no watch event arrives (deadlines, TTL).

    The status goes first because it records the decision that the child writes act on (a terminal
    state, a restart count): a delete must never destroy the evidence of a decision that was not
    stored. A plan that writes children but no status is fenced by an unchanged status write."""

    create: list[Manifest] = field(default_factory=list)
    replace: list[Manifest] = field(default_factory=list)
    delete: list[ChildRef] = field(default_factory=list)
    status: dict[str, Any] | None = None
    events: list[Event] = field(default_factory=list)
    delete_job: bool = False
    wake_at: datetime | None = None

    @property
    def is_noop(self) -> bool:
        return not (self.create or self.replace or self.delete or self.events or self.delete_job) and (
            self.status is None
        )
