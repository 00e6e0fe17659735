"""What every job kind provides. A new kind is one module exposing a `KIND: JobKind` object plus
one line in `jobwarden.kinds.REGISTRY`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jobwarden.core.admission import UpdateContract
from jobwarden.core.fielderrors import FieldError
from jobwarden.core.plan import Body, ChildRef, Manifest, Observed, Plan


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


class JobKind(Protocol):
    resource: Resource
    # Labels every child of a job of this kind carries, so `kubectl get pods -l <key>=<job>` works.
    job_name_label: str
    # Whether each child created or deleted gets an event on the job (`SuccessfulCreatePod`, …): the
    # training-operator posts them for its kinds, Volcano's job controller never does.
    child_events: bool

    def validate(self, job: Body) -> list[FieldError]:
        """Create-time checks (and the new object on UPDATE): malformed input, severity INVALID."""
        ...

    def check_update(self, old: Body, new: Body) -> list[FieldError]:
        """The seeds' update contract: every path that changed but may not, severity FORBIDDEN,
        plus INVALID errors for allowed changes with bad values (e.g. a scale-down below minAvailable)."""
        ...

    def updatable_fields(self) -> list[str]:
        """The paths a replace or merge patch may change, for messages and the README table."""
        ...

    def update_contract(self) -> UpdateContract:
        """The update contract as data (the table, what may change under a condition, how precisely
        a refusal names a change), from which `kinds/policy.py` generates the admission policy."""
        ...

    def phase(self, status: Mapping[str, Any] | None) -> str:
        """The job's state as its printer column shows it (e.g. `Running`, `Succeeded`, `Completed`),
        read from a status; "" when there is none yet. Used for metrics and logs."""
        ...

    def plan(self, observed: Observed) -> Plan:
        """Given the job and its children, what should exist and what is the status. A deterministic
        function of `observed`: anything random or CPU-heavy a child needs is left to `materialize`."""
        ...

    def materialize(self, manifest: Manifest) -> Manifest:
        """The manifest of `plan.create` as it is sent to the apiserver: what the plan only asked for
        is filled in (e.g. an ssh key pair). Pure from the core's point of view but possibly CPU-heavy
        or random, so the shell calls it in a worker thread just before creating each manifest. Most
        kinds return the manifest unchanged."""
        ...

    def unwatched_children(self, job: Body) -> list[ChildRef]:
        """The children of kinds the shell never watches (Secrets) that this job may own. No cache
        holds them, so the shell looks each one up by name once per job and process and shows it in
        `Observed.children` when it exists and the job controls it: what a plan keeps or removes is
        decided from what exists, never from bookkeeping in status that a restart loses (issue 27).
        Most kinds have none."""
        ...
