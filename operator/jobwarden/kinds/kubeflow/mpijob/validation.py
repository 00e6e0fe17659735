"""Admission of MPIJobs: mpi-operator v0.8's own validation (`pkg/apis/kubeflow/validation`), run on
the defaulted job as upstream runs it, plus the pod checks the Kubeflow family makes; and the family's
update contract (`KUBEFLOW_UPDATABLE`, the same table the webhook and the generated admission policy
read for every kubeflow.org kind).

Upstream's rules (INVALID, 400): `mpiReplicaSpecs` is required and must hold a `Launcher` with exactly
1 replica; a `Worker`, when given, has at least 1 replica (an unset count defaults to 0 and is refused,
as upstream); each replica spec's `restartPolicy` is `Never` or `OnFailure` and its template has a
container; `slotsPerWorker`, `ttlSecondsAfterFinished`, `backoffLimit` are not negative;
`cleanPodPolicy` is `None`, `Running` or `All`; `mpiImplementation` is `OpenMPI`, `Intel` or `MPICH`;
`managedBy` is `kubeflow.org/mpi-operator` or `kueue.x-k8s.io/multikueue`; and `<name>-worker-<last>`
is a DNS-1035 label (reported at `metadata.name`). Paths are upstream's (`spec.mpiReplicaSpecs[Worker]`).

Stricter than upstream, each because the job could not run otherwise: `activeDeadlineSeconds` must be
at least 1 (the launcher Job refuses 0); `launcherCreationPolicy` is `AtStartup` or
`WaitForWorkersReady` (the enum upstream's CRD meant to have); replica types other than `Launcher` and
`Worker` are refused (upstream ignores them silently); a template volume may not be called `ssh-auth`
or `mpi-job-config` (the pods would carry two volumes of that name)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from jobwarden.core.admission import (
    as_mapping,
    container_errors,
    dns1035_label_problems,
    enum_errors,
    int_errors,
    invalid_value,
    is_int,
    required,
    unsupported,
)
from jobwarden.core.fielderrors import FieldError
from jobwarden.core.plan import Body
from jobwarden.core.podspec import pod_spec_errors
from jobwarden.core.runpolicy import CLEAN_POD_POLICIES
from jobwarden.kinds.kubeflow.mpijob.children import CONFIG_VOLUME, SSH_AUTH_VOLUME
from jobwarden.kinds.kubeflow.mpijob.spec import (
    AT_STARTUP,
    DEFAULT_CLEAN_POD_POLICY,
    DEFAULT_REPLICAS,
    DEFAULT_RESTART_POLICY,
    DEFAULT_SSH_AUTH_MOUNT_PATH,
    IMPLEMENTATIONS,
    KIND_NAME,
    LAUNCHER,
    LAUNCHER_CREATION_POLICIES,
    MPI_OPERATOR_CONTROLLER,
    MULTIKUEUE_CONTROLLER,
    OPENMPI,
    REPLICA_SPECS,
    WORKER,
)
from jobwarden.kinds.kubeflow.validation import KUBEFLOW_UPDATABLE, KubeflowShape, check_kubeflow_update

MPI_RESTART_POLICIES: Final = ("Never", "OnFailure")
MANAGED_BY_VALUES: Final = (MPI_OPERATOR_CONTROLLER, MULTIKUEUE_CONTROLLER)
RESERVED_VOLUMES: Final = (SSH_AUTH_VOLUME, CONFIG_VOLUME)

# The shape the family's update contract compares MPIJobs by (replica types in canonical spelling).
MPIJOB_SHAPE: Final = KubeflowShape(
    kind=KIND_NAME,
    replica_specs_field=REPLICA_SPECS,
    replica_types=(LAUNCHER, WORKER),
    container_name="",
    default_restart_policy=DEFAULT_RESTART_POLICY[WORKER],
    single_master_types=(LAUNCHER,),
)


def defaulted(body: Body) -> dict[str, Any]:
    """A copy of the job with upstream's SetDefaults_MPIJob applied (what both checks compare)."""
    job: dict[str, Any] = copy.deepcopy(dict(body))
    spec = job.get("spec")
    if not isinstance(spec, dict):
        return job
    for field, value in (
        ("slotsPerWorker", 1),
        ("runLauncherAsWorker", False),
        ("sshAuthMountPath", DEFAULT_SSH_AUTH_MOUNT_PATH),
        ("mpiImplementation", OPENMPI),
        ("launcherCreationPolicy", AT_STARTUP),
    ):
        if spec.get(field) in (None, ""):
            spec[field] = value
    run_policy = spec.get("runPolicy")
    if run_policy is None:
        run_policy = spec["runPolicy"] = {}
    if isinstance(run_policy, dict) and run_policy.get("cleanPodPolicy") is None:
        run_policy["cleanPodPolicy"] = DEFAULT_CLEAN_POD_POLICY
    for rtype, replica in as_mapping(spec.get(REPLICA_SPECS)).items():
        if isinstance(replica, dict) and rtype in DEFAULT_REPLICAS:
            if replica.get("replicas") is None:
                replica["replicas"] = DEFAULT_REPLICAS[rtype]
            if not replica.get("restartPolicy"):
                replica["restartPolicy"] = DEFAULT_RESTART_POLICY[rtype]
    return job


# --------------------------------------------------------------------------------------------------
# CREATE (and the new object on UPDATE)


def validate_mpijob(body: Body) -> list[FieldError]:
    job = defaulted(body)
    spec = job.get("spec")
    if not isinstance(spec, Mapping):
        return [required("spec", f"a {KIND_NAME} needs a spec")]
    return [
        *_name_errors(job),
        *_replica_specs_errors(spec.get(REPLICA_SPECS)),
        *int_errors("spec.slotsPerWorker", spec.get("slotsPerWorker"), 0),
        *_run_policy_errors(spec.get("runPolicy")),
        *enum_errors("spec.mpiImplementation", spec.get("mpiImplementation"), IMPLEMENTATIONS),
        *enum_errors(
            "spec.launcherCreationPolicy", spec.get("launcherCreationPolicy"), LAUNCHER_CREATION_POLICIES
        ),
        *_mount_path_errors(spec.get("sshAuthMountPath")),
    ]


def _name_errors(job: Mapping[str, Any]) -> list[FieldError]:
    """The last worker's pod and host name must be a DNS-1035 label (upstream validateMPIJobName)."""
    name = as_mapping(job.get("metadata")).get("name")
    if not isinstance(name, str) or not name:
        generate_name = as_mapping(job.get("metadata")).get("generateName")
        if isinstance(generate_name, str) and generate_name:
            name = generate_name[:58] + "xxxxx"  # the apiserver appends 5 characters
        else:
            return [required("metadata.name", "name or generateName is required")]
    worker = as_mapping(as_mapping(as_mapping(job.get("spec")).get(REPLICA_SPECS)).get(WORKER))
    replicas = worker.get("replicas")
    last = replicas - 1 if is_int(replicas) and replicas > 0 else 0
    hostname = f"{name}-worker-{last}"
    problems = dns1035_label_problems(hostname)
    if not problems:
        return []
    detail = f"will not able to create pod and service with invalid DNS label {hostname!r}: "
    return [invalid_value("metadata.name", name, detail + ", ".join(problems))]


def _replica_specs_errors(replica_specs: Any) -> list[FieldError]:
    path = f"spec.{REPLICA_SPECS}"
    if not isinstance(replica_specs, Mapping):
        return [required(path, "must have replica specs")]
    errors = [
        unsupported(f"{path}[{key}]", key, (LAUNCHER, WORKER))
        for key in replica_specs
        if key not in (LAUNCHER, WORKER)
    ]
    launcher = replica_specs.get(LAUNCHER)
    if not isinstance(launcher, Mapping):
        errors.append(required(f"{path}[{LAUNCHER}]", f"must have {LAUNCHER} replica spec"))
    else:
        errors += _replica_errors(f"{path}[{LAUNCHER}]", launcher)
        if is_int(launcher.get("replicas")) and launcher["replicas"] != 1:
            errors.append(invalid_value(f"{path}[{LAUNCHER}].replicas", launcher["replicas"], "must be 1"))
    worker = replica_specs.get(WORKER)
    if isinstance(worker, Mapping):
        errors += _replica_errors(f"{path}[{WORKER}]", worker)
        if is_int(worker.get("replicas")) and worker["replicas"] <= 0:
            detail = "must be greater than or equal to 1"
            errors.append(invalid_value(f"{path}[{WORKER}].replicas", worker["replicas"], detail))
    elif worker is not None:
        errors.append(invalid_value(f"{path}[{WORKER}]", worker, "must be an object"))
    return errors


def _replica_errors(path: str, replica: Mapping[str, Any]) -> list[FieldError]:
    errors = int_errors(f"{path}.replicas", replica.get("replicas"), 0)
    policy = replica.get("restartPolicy")
    if policy not in MPI_RESTART_POLICIES:
        errors.append(unsupported(f"{path}.restartPolicy", policy, MPI_RESTART_POLICIES))
    pod_spec = as_mapping(as_mapping(replica.get("template")).get("spec"))
    containers = pod_spec.get("containers")
    spec_path = f"{path}.template.spec"
    if not isinstance(containers, list) or not containers:
        return [*errors, required(f"{spec_path}.containers", "must define at least one container")]
    errors += container_errors(f"{spec_path}.containers", containers)
    errors += pod_spec_errors(spec_path, pod_spec)
    volumes = pod_spec.get("volumes")
    for index, volume in enumerate(volumes if isinstance(volumes, list) else []):
        if as_mapping(volume).get("name") in RESERVED_VOLUMES:
            detail = "is the name of a volume the operator adds to every pod of the job"
            errors.append(invalid_value(f"{spec_path}.volumes[{index}].name", volume["name"], detail))
    return errors


def _run_policy_errors(run_policy: Any) -> list[FieldError]:
    if not isinstance(run_policy, Mapping):
        return [invalid_value("spec.runPolicy", run_policy, "must be an object")]
    path = "spec.runPolicy"
    return [
        *enum_errors(f"{path}.cleanPodPolicy", run_policy.get("cleanPodPolicy"), CLEAN_POD_POLICIES),
        *int_errors(f"{path}.ttlSecondsAfterFinished", run_policy.get("ttlSecondsAfterFinished"), 0),
        # The launcher Job carries it, and a Job's deadline must be positive.
        *int_errors(f"{path}.activeDeadlineSeconds", run_policy.get("activeDeadlineSeconds"), 1),
        *int_errors(f"{path}.backoffLimit", run_policy.get("backoffLimit"), 0),
        *enum_errors(f"{path}.managedBy", run_policy.get("managedBy"), MANAGED_BY_VALUES),
    ]


def _mount_path_errors(path: Any) -> list[FieldError]:
    if isinstance(path, str) and path:
        return []
    return [required("spec.sshAuthMountPath", "must have a mount path for SSH credentials")]


# --------------------------------------------------------------------------------------------------
# UPDATE


def check_mpijob_update(
    old: Body, new: Body, updatable: tuple[str, ...] = KUBEFLOW_UPDATABLE
) -> list[FieldError]:
    """The family's contract on the defaulted jobs: spelling out a default is not a change."""
    return check_kubeflow_update(MPIJOB_SHAPE, defaulted(old), defaulted(new), updatable)
