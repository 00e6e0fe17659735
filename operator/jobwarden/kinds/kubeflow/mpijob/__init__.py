"""MPIJob (`kubeflow.org/v2beta1`, `mpijobs`) as mpi-operator v0.8 runs it: ssh between the pods, a
hostfile of DNS names, the launcher as a batch/v1 Job.

- `spec.py`: the job in its defaulted view (upstream `SetDefaults_MPIJob`), names and labels;
- `children.py`: the Service, ConfigMap, Secret, worker Pods and launcher Job, env by MPI implementation;
- `ssh.py`: the ECDSA key pair the Secret carries (`materialize`);
- `plan.py`: one reconcile pass (upstream `syncHandler` and `updateMPIJobStatus`), its differences;
- `validation.py`: upstream's validation and the family's update contract;
- `views.py`: the job as the family's gang scheduling (`gang.py`) reads it.

It is a member of the Kubeflow family (same group, labels, conditions, update contract, gang
scheduling, `--allow-suspend-updates`) with a plan of its own: the v1 engine's one pod and Service per
replica does not fit a launcher Job and ssh workers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from jobwarden.core import conditions as cond
from jobwarden.core.admission import UpdateContract
from jobwarden.core.fielderrors import FieldError, render
from jobwarden.core.plan import Body, ChildRef, Event, Manifest, Observed, Plan
from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow.mpijob import ssh
from jobwarden.kinds.kubeflow.mpijob.plan import EVENT_MESSAGE_LIMIT, plan_mpijob
from jobwarden.kinds.kubeflow.mpijob.spec import JOB_NAME_LABEL, managed_elsewhere, read_mpijob
from jobwarden.kinds.kubeflow.mpijob.validation import MPIJOB_SHAPE, check_mpijob_update, validate_mpijob
from jobwarden.kinds.kubeflow.validation import (
    KUBEFLOW_UPDATABLE,
    KUBEFLOW_UPDATABLE_WITH_SUSPEND,
    kubeflow_contract,
)

VALIDATION_ERROR_REASON: Final = "ValidationError"
RESOURCE: Final = Resource("kubeflow.org", "v2beta1", "mpijobs", "MPIJob")
# Read by `phase`: the outcome first, then what the job is doing.
_PHASE_ORDER: Final = (cond.SUCCEEDED, cond.FAILED, cond.SUSPENDED, cond.RUNNING, cond.CREATED)


@dataclass(eq=False)
class MpiJobKind:
    resource: Resource = RESOURCE
    job_name_label: str = JOB_NAME_LABEL
    updatable: tuple[str, ...] = KUBEFLOW_UPDATABLE
    child_events: bool = True  # the family's per-child SuccessfulCreate*/SuccessfulDelete* events

    def validate(self, job: Body) -> list[FieldError]:
        return validate_mpijob(job)

    def check_update(self, old: Body, new: Body) -> list[FieldError]:
        return check_mpijob_update(old, new, self.updatable)

    def updatable_fields(self) -> list[str]:
        return list(self.updatable)

    def update_contract(self) -> UpdateContract:
        return kubeflow_contract(MPIJOB_SHAPE, self.updatable)

    def allowing_suspend_updates(self) -> MpiJobKind:
        return dataclasses.replace(self, updatable=KUBEFLOW_UPDATABLE_WITH_SUSPEND)

    def phase(self, status: Mapping[str, Any] | None) -> str:
        conditions = (status or {}).get("conditions") or []
        return next((t for t in _PHASE_ORDER if cond.holds(conditions, t)), "")

    def plan(self, observed: Observed) -> Plan:
        if managed_elsewhere(observed.job) or observed.job.get("metadata", {}).get("deletionTimestamp"):
            return Plan()
        errors = validate_mpijob(observed.job)
        if errors:
            # Admission refuses such a job; one stored past it is left alone, as upstream does.
            message = f"Found validation errors: {render(errors)}"[:EVENT_MESSAGE_LIMIT]
            return Plan(events=[Event("Warning", VALIDATION_ERROR_REASON, message)])
        return plan_mpijob(observed)

    def materialize(self, manifest: Manifest) -> Manifest:
        return ssh.materialize(manifest)

    def unwatched_children(self, job: Body) -> list[ChildRef]:
        """`<job>-ssh`: Secrets are never watched, so the shell reads it by name once per process and
        the plan sees the Secret made before a restart instead of asking for it again."""
        return [ChildRef("Secret", read_mpijob(job).secret_name)]


KIND: Final = MpiJobKind()

__all__ = ["KIND", "RESOURCE", "MpiJobKind"]
