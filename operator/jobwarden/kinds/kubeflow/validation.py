"""Admission rules shared by TFJob, PyTorchJob and MXJob (`kubeflow.org/v1`). What is one framework's
own (its `KubeflowShape`, its spec checks) lives in that framework's module.

Create: what the training-operator's webhooks and controllers check (docs: kubeflow-v1 spec §7), plus
the seeds' shapes: replica keys in any case (`Ps` is `PS`), both run-policy layouts, replica counts
and restart policies, and names that make valid pods and Services.

Update: the seeds' contract. Only labels, annotations and the three run-policy fields
`activeDeadlineSeconds`, `ttlSecondsAfterFinished`, `cleanPodPolicy` (in either layout) may change;
every other path under `spec` is immutable. The seeds do not list `runPolicy.suspend`, so by default
only a create can suspend a job; the operator's `--allow-suspend-updates` adds `SUSPEND_PATH` to the
table (`KUBEFLOW_UPDATABLE_WITH_SUSPEND`). Where suspend may change, so may every replica template's
scheduling directives (`SCHEDULING_DIRECTIVES`) while the job is suspended and in the update that
suspends or resumes it, as batch/v1 Jobs allow (KEP-2926): what a queue such as Kueue writes when it
admits a job and restores when it evicts it. `kubeflow_contract` is the one source both the webhook
and the generated admission policy read, for every Kubeflow kind. Values that differ only by
defaulting or spelling
(replicas absent vs 1, `Ps` vs `PS`, `cpu: 2` vs `"2000m"`, a run-policy field moved between the two
layouts with the same value) are not changes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from jobwarden.core.admission import (
    POD_TEMPLATE_DETAIL,
    Allowance,
    Condition,
    UpdateContract,
    as_mapping,
    container_errors,
    dns1035_label_problems,
    duplicate,
    enum_errors,
    forbidden_changes,
    int_errors,
    invalid_value,
    is_int,
    job_name,
    required,
    show,
    unsupported,
)
from jobwarden.core.fielderrors import FieldError
from jobwarden.core.plan import Body
from jobwarden.core.podspec import pod_spec_errors
from jobwarden.core.runpolicy import CLEAN_POD_POLICIES, RUN_POLICY_FIELDS, layout_conflicts

KUBEFLOW_UPDATABLE: Final[tuple[str, ...]] = (
    "metadata.labels",
    "metadata.annotations",
    "spec.activeDeadlineSeconds",
    "spec.ttlSecondsAfterFinished",
    "spec.cleanPodPolicy",
    "spec.runPolicy.activeDeadlineSeconds",
    "spec.runPolicy.ttlSecondsAfterFinished",
    "spec.runPolicy.cleanPodPolicy",
)

# Suspending and resuming a running job (training-operator v1.7+): updatable only when the operator
# is started with `--allow-suspend-updates` (JOBWARDEN_ALLOW_SUSPEND_UPDATES).
SUSPEND_PATH: Final = "spec.runPolicy.suspend"
KUBEFLOW_UPDATABLE_WITH_SUSPEND: Final[tuple[str, ...]] = (*KUBEFLOW_UPDATABLE, SUSPEND_PATH)

# A replica template's scheduling directives (batch/v1's KEP-2926 list): with suspend updates allowed,
# they may change while the job is suspended, in the update that resumes it and in the one that
# suspends it again. Kueue writes them into every template in the update that resumes a job it admits
# and restores them in the update that suspends an evicted job. The pods of a suspended job do not
# exist, so nothing running changes; the pods made after the resume are made from the new templates.
SCHEDULING_DIRECTIVES: Final = (
    "metadata.labels",
    "metadata.annotations",
    "spec.nodeSelector",
    "spec.tolerations",
    "spec.schedulingGates",
)


def is_suspended(job: Body) -> bool:
    return as_mapping(as_mapping(job.get("spec")).get("runPolicy")).get("suspend") is True


def _suspended_cel(spec: str) -> str:
    return f"{spec}[?'runPolicy'].orValue({{}})[?'suspend'].orValue(false) == true"


SUSPENDED_BEFORE_OR_AFTER: Final = Condition(
    name="suspendedBeforeOrAfter",
    holds=lambda old, new: is_suspended(old) or is_suspended(new),
    cel=f"{_suspended_cel('variables.oldSpec')} || {_suspended_cel('variables.newSpec')}",
)
WHILE_SUSPENDED: Final = (
    "while the job is suspended, and in the update that suspends or resumes it: every replica template's "
    + ", ".join(SCHEDULING_DIRECTIVES)
)


def kubeflow_contract(shape: KubeflowShape, updatable: tuple[str, ...]) -> UpdateContract:
    """The update contract of a Kubeflow kind: the table, the scheduling directives while suspended
    when suspend may change, and down to which field a refusal names a change in a replica spec (the
    replica type, its `replicas`/`restartPolicy`/template fields, a container's fields)."""
    replica = f"spec.{shape.replica_specs_field}.*"
    allowances: tuple[Allowance, ...] = ()
    if SUSPEND_PATH in updatable:
        directives = tuple(f"{replica}.template.{d}" for d in SCHEDULING_DIRECTIVES)
        allowances = (Allowance(SUSPENDED_BEFORE_OR_AFTER, directives, WHILE_SUSPENDED),)
    detail = tuple(f"{replica}.template.{d}" for d in POD_TEMPLATE_DETAIL)
    return UpdateContract(updatable, allowances, detail)


REPLICA_RESTART_POLICIES: Final = ("Always", "OnFailure", "Never", "ExitCode")
POD_RESTART_POLICIES: Final = ("Always", "OnFailure", "Never")
MANAGED_BY_VALUES: Final = ("kubeflow.org/training-operator", "kueue.x-k8s.io/multikueue")


def no_spec_errors(spec: Mapping[str, Any]) -> list[FieldError]:
    del spec
    return []


@dataclass(frozen=True)
class KubeflowShape:
    """What differs between the Kubeflow kinds, as far as admission cares. Each framework module
    (tfjob.py, pytorchjob.py, mxjob.py) declares its own."""

    kind: str
    replica_specs_field: str
    replica_types: tuple[str, ...]  # canonical spelling
    container_name: str  # the container the operator configures, which must exist in every replica
    default_restart_policy: str
    single_master_types: tuple[str, ...]  # at most one replica among these types together
    # Of `single_master_types`, those that must have exactly one replica (PyTorch's Master).
    exactly_one_types: tuple[str, ...] = ()
    # The framework's own checks of `spec` (e.g. TF's successPolicy), INVALID errors.
    spec_errors: Callable[[Mapping[str, Any]], list[FieldError]] = no_spec_errors


def canonical_replica_type(shape: KubeflowShape, key: str) -> str | None:
    """The canonical spelling of a replica-spec key (`Ps` -> `PS`), or None for an unknown type.

    Upstream's defaulting re-keys case variants the same way (MX upstream only for Scheduler, Server
    and Worker; here every MX type, so `tuner` is not silently a different type)."""
    lowered = key.lower()
    return next((t for t in shape.replica_types if t.lower() == lowered), None)


# --------------------------------------------------------------------------------------------------
# CREATE (and the new object on UPDATE)


def validate_kubeflow(shape: KubeflowShape, job: Body) -> list[FieldError]:
    """Every problem with a TFJob/PyTorchJob/MXJob as a whole object, severity INVALID."""
    # Every replica gets a headless Service named after the job, so the name must be a DNS-1035 label.
    name, name_errors = job_name(as_mapping(job.get("metadata")), dns1035_label_problems)
    spec = job.get("spec")
    if not isinstance(spec, Mapping):
        return [*name_errors, required("spec", f"a {shape.kind} needs a spec")]
    return [
        *name_errors,
        *_run_policy_errors(spec),
        *shape.spec_errors(spec),
        *_replica_specs_errors(shape, spec, name),
    ]


def _run_policy_errors(spec: Mapping[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    run_policy = spec.get("runPolicy")
    if run_policy is not None and not isinstance(run_policy, Mapping):
        errors.append(invalid_value("spec.runPolicy", run_policy, "must be an object"))
        run_policy = None
    for prefix, fields in (("spec", spec), ("spec.runPolicy", run_policy or {})):
        errors += enum_errors(f"{prefix}.cleanPodPolicy", fields.get("cleanPodPolicy"), CLEAN_POD_POLICIES)
        errors += int_errors(f"{prefix}.ttlSecondsAfterFinished", fields.get("ttlSecondsAfterFinished"), 0)
        # As batch/v1 Jobs: a deadline of 0 would fail the job before it starts.
        errors += int_errors(f"{prefix}.activeDeadlineSeconds", fields.get("activeDeadlineSeconds"), 1)
        errors += int_errors(f"{prefix}.backoffLimit", fields.get("backoffLimit"), 0)
    if run_policy:
        errors += enum_errors("spec.runPolicy.managedBy", run_policy.get("managedBy"), MANAGED_BY_VALUES)
    errors += [
        invalid_value(
            f"spec.{name}",
            top,
            f"conflicts with spec.runPolicy.{name}={show(nested)}; set it in one place only "
            "(spec.runPolicy is the current Kubeflow layout)",
        )
        for name, top, nested in layout_conflicts({**spec, "runPolicy": run_policy or {}})
    ]
    return errors


def _replica_specs_errors(
    shape: KubeflowShape, spec: Mapping[str, Any], job_name: str | None
) -> list[FieldError]:
    field = f"spec.{shape.replica_specs_field}"
    replica_specs = spec.get(shape.replica_specs_field)
    if not isinstance(replica_specs, Mapping) or not replica_specs:
        return [required(field, "must specify at least one replica type")]
    errors: list[FieldError] = []
    replicas_by_type: dict[str, Any] = {}
    for key, replica_spec in replica_specs.items():
        path = f"{field}.{key}"
        replica_type = canonical_replica_type(shape, str(key))
        if replica_type is None:
            errors.append(unsupported(path, key, shape.replica_types))
        elif replica_type in replicas_by_type:
            errors.append(duplicate(path, key, f"the same replica type as {replica_type}"))
        elif not isinstance(replica_spec, Mapping):
            errors.append(invalid_value(path, replica_spec, "must be an object"))
        else:
            replicas_by_type[replica_type] = _replicas(replica_spec)
            errors += _replica_errors(shape, path, replica_type, replica_spec, job_name)
    return errors + _master_count_errors(shape, field, replica_specs, replicas_by_type)


def _replica_errors(
    shape: KubeflowShape, path: str, replica_type: str, replica_spec: Mapping[str, Any], job_name: str | None
) -> list[FieldError]:
    replicas = _replicas(replica_spec)
    errors = int_errors(f"{path}.replicas", replicas, 0)
    errors += enum_errors(
        f"{path}.restartPolicy", replica_spec.get("restartPolicy"), REPLICA_RESTART_POLICIES
    )
    errors += _template_errors(shape, f"{path}.template", replica_spec.get("template"))
    if job_name and is_int(replicas) and replicas > 0:
        errors += _child_name_errors(path, f"{job_name}-{replica_type.lower()}-{replicas - 1}")
    return errors


def _replicas(replica_spec: Mapping[str, Any]) -> Any:
    replicas = replica_spec.get("replicas")
    return 1 if replicas is None else replicas  # upstream default


def _template_errors(shape: KubeflowShape, path: str, template: Any) -> list[FieldError]:
    pod_spec = as_mapping(as_mapping(template).get("spec"))
    errors = enum_errors(f"{path}.spec.restartPolicy", pod_spec.get("restartPolicy"), POD_RESTART_POLICIES)
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [*errors, required(f"{path}.spec.containers", "must specify at least one container")]
    errors += container_errors(f"{path}.spec.containers", containers)
    errors += pod_spec_errors(f"{path}.spec", pod_spec)
    if not any(as_mapping(c).get("name") == shape.container_name for c in containers):
        errors.append(
            required(
                f"{path}.spec.containers",
                f"must have at least one container with name {shape.container_name}",
            )
        )
    return errors


def _child_name_errors(path: str, child_name: str) -> list[FieldError]:
    """The last pod of a replica type, and its Service, are called `<job>-<type>-<index>`."""
    problems = dns1035_label_problems(child_name)
    if not problems:
        return []
    detail = "the pod and Service name of this replica type's last replica must be a DNS-1035 label: "
    return [invalid_value(path, child_name, detail + ", ".join(problems))]


def _master_count_errors(
    shape: KubeflowShape, field: str, replica_specs: Mapping[str, Any], replicas_by_type: Mapping[str, Any]
) -> list[FieldError]:
    key_of = {canonical_replica_type(shape, str(k)): str(k) for k in reversed(list(replica_specs))}
    present = [t for t in shape.single_master_types if t in replicas_by_type]
    errors: list[FieldError] = []
    if len(present) > 1:
        roles = " or ".join(shape.single_master_types)
        errors.append(invalid_value(field, ", ".join(present), f"must not have more than 1 {roles} role"))
    for replica_type in present:
        replicas, path = replicas_by_type[replica_type], f"{field}.{key_of[replica_type]}.replicas"
        if replica_type in shape.exactly_one_types and is_int(replicas) and replicas != 1:
            errors.append(invalid_value(path, replicas, "must be 1"))
        elif is_int(replicas) and replicas > 1:
            errors.append(invalid_value(path, replicas, "must be 0 or 1: at most one replica of this type"))
    return errors


# --------------------------------------------------------------------------------------------------
# UPDATE


def check_kubeflow_update(
    shape: KubeflowShape, old: Body, new: Body, updatable: tuple[str, ...] = KUBEFLOW_UPDATABLE
) -> list[FieldError]:
    """Severity FORBIDDEN for every changed path outside what `kubeflow_contract` allows in this
    update, deepest path first in document order. Metadata other than labels/annotations is
    server-managed (or cannot change on UPDATE) and `status` is never compared."""
    contract = kubeflow_contract(shape, updatable)
    old_spec = _normalised_spec(shape, old.get("spec"))
    new_spec = _normalised_spec(shape, new.get("spec"))
    _drop_moved_run_policy(old_spec, new_spec, as_mapping(old.get("spec")), as_mapping(new.get("spec")))
    _drop_implicit_restart_policies(shape, old_spec, new_spec, old.get("spec"), new.get("spec"))
    errors = forbidden_changes(
        {"spec": old_spec}, {"spec": new_spec}, contract.allowed(old, new), listing=contract.listing()
    )
    spelling = {**_key_spelling(shape, old.get("spec")), **_key_spelling(shape, new.get("spec"))}
    return [_respelled(shape, error, spelling) for error in errors]


def _normalised_spec(shape: KubeflowShape, spec: Any) -> dict[str, Any]:
    """A copy of the spec with upstream's defaults filled in and replica keys in canonical case, so
    that only real changes differ."""
    result: dict[str, Any] = copy.deepcopy(dict(spec)) if isinstance(spec, Mapping) else {}
    replica_specs = result.get(shape.replica_specs_field)
    if isinstance(replica_specs, Mapping):
        result[shape.replica_specs_field] = _canonical_replica_specs(shape, replica_specs)
    if result.get("successPolicy") == "":  # TF's default success policy
        del result["successPolicy"]
    run_policy = result.get("runPolicy")
    if isinstance(run_policy, dict) and run_policy.get("suspend") is False:  # the CRD default
        del run_policy["suspend"]
    return result


def _canonical_replica_specs(shape: KubeflowShape, replica_specs: Mapping[str, Any]) -> dict[str, Any]:
    canonical: dict[str, Any] = {}
    for key, replica_spec in replica_specs.items():
        name = canonical_replica_type(shape, str(key)) or str(key)
        if name in canonical:  # `Ps` and `PS` both given: keep both so neither change is hidden
            name = str(key)
        if isinstance(replica_spec, dict):
            replica_spec["replicas"] = _replicas(replica_spec)
            replica_spec["restartPolicy"] = effective_restart_policy(shape, replica_spec)
        canonical[name] = replica_spec
    return canonical


def _drop_implicit_restart_policies(
    shape: KubeflowShape, old_spec: dict[str, Any], new_spec: dict[str, Any], old_raw: Any, new_raw: Any
) -> None:
    """The effective replica restartPolicy is filled in so that spelling out the policy in force is not
    a change. Where neither side spells it out at the replica level, drop it again: a change of the
    template's policy is then named at the template path only, never at a replica path that exists
    in neither object."""
    explicit = _explicit_restart_policies(shape, old_raw) | _explicit_restart_policies(shape, new_raw)
    for spec in (old_spec, new_spec):
        for name, replica_spec in as_mapping(spec.get(shape.replica_specs_field)).items():
            if name not in explicit and isinstance(replica_spec, dict):
                replica_spec.pop("restartPolicy", None)


def _explicit_restart_policies(shape: KubeflowShape, spec: Any) -> set[str]:
    replica_specs = as_mapping(as_mapping(spec).get(shape.replica_specs_field))
    return {
        canonical_replica_type(shape, str(key)) or str(key)
        for key, replica_spec in replica_specs.items()
        if as_mapping(replica_spec).get("restartPolicy")
    }


def effective_restart_policy(shape: KubeflowShape, replica_spec: Mapping[str, Any]) -> Any:
    """The replica's restartPolicy, else its pod template's, else the kind's default: the policy the
    controller applies, so spelling out the one in force is not a change."""
    template_spec = as_mapping(as_mapping(replica_spec.get("template")).get("spec"))
    return (
        replica_spec.get("restartPolicy")
        or template_spec.get("restartPolicy")
        or shape.default_restart_policy
    )


def _drop_moved_run_policy(
    old_spec: dict[str, Any], new_spec: dict[str, Any], old_raw: Mapping[str, Any], new_raw: Mapping[str, Any]
) -> None:
    """A run-policy field whose effective value is the same before and after is unchanged, even if
    it moved between `spec.<field>` and `spec.runPolicy.<field>`: drop it from both sides."""
    for name in RUN_POLICY_FIELDS:
        if _effective(old_raw, name) == _effective(new_raw, name):
            for spec in (old_spec, new_spec):
                spec.pop(name, None)
                if isinstance(spec.get("runPolicy"), dict):
                    spec["runPolicy"].pop(name, None)


def _effective(spec: Mapping[str, Any], name: str) -> Any:
    """The value in force; a conflict between the layouts equals nothing, so it is never dropped."""
    top, nested = spec.get(name), as_mapping(spec.get("runPolicy")).get(name)
    if top is not None and nested is not None and top != nested:
        return object()
    return top if top is not None else nested


def _key_spelling(shape: KubeflowShape, spec: Any) -> dict[str, str]:
    """canonical replica type -> the key as the user wrote it, so messages name their path."""
    replica_specs = as_mapping(as_mapping(spec).get(shape.replica_specs_field))
    spelling: dict[str, str] = {}
    for key in replica_specs:
        spelling.setdefault(canonical_replica_type(shape, str(key)) or str(key), str(key))
    return spelling


def _respelled(shape: KubeflowShape, error: FieldError, spelling: Mapping[str, str]) -> FieldError:
    prefix = f"spec.{shape.replica_specs_field}."
    if not error.path.startswith(prefix):
        return error
    replica_type, dot, rest = error.path[len(prefix) :].partition(".")
    path = prefix + spelling.get(replica_type, replica_type) + dot + rest
    return FieldError(path, error.message, error.severity)
