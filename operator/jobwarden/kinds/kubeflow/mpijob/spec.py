"""An MPIJob (`kubeflow.org/v2beta1`) in its defaulted view, the way mpi-operator v0.8 reads it after
`SetDefaults_MPIJob` (`pkg/apis/kubeflow/v2beta1/default.go`): defaults are applied in memory and never
written back, so the stored spec is what the user (or the CRD's own schema defaults) wrote.

Defaults: `slotsPerWorker` 1, `runLauncherAsWorker` false, `sshAuthMountPath` `/root/.ssh`,
`mpiImplementation` `OpenMPI`, `launcherCreationPolicy` `AtStartup`, `runPolicy.cleanPodPolicy` `None`;
the Launcher has 1 replica and restartPolicy `OnFailure`, the Worker 0 replicas and `Never`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from jobwarden.core.plan import Body, NamedJob

API_VERSION: Final = "kubeflow.org/v2beta1"
KIND_NAME: Final = "MPIJob"
REPLICA_SPECS: Final = "mpiReplicaSpecs"
LAUNCHER: Final = "Launcher"
WORKER: Final = "Worker"

OPENMPI: Final = "OpenMPI"
INTEL: Final = "Intel"
MPICH: Final = "MPICH"
IMPLEMENTATIONS: Final = (OPENMPI, INTEL, MPICH)
AT_STARTUP: Final = "AtStartup"
WAIT_FOR_WORKERS_READY: Final = "WaitForWorkersReady"
LAUNCHER_CREATION_POLICIES: Final = (AT_STARTUP, WAIT_FOR_WORKERS_READY)

DEFAULT_SSH_AUTH_MOUNT_PATH: Final = "/root/.ssh"
DEFAULT_CLEAN_POD_POLICY: Final = "None"
DEFAULT_RESTART_POLICY: Final = {LAUNCHER: "OnFailure", WORKER: "Never"}
DEFAULT_REPLICAS: Final = {LAUNCHER: 1, WORKER: 0}

# runPolicy.managedBy: the value naming mpi-operator (or jobwarden in its place), and Kueue's.
MPI_OPERATOR_CONTROLLER: Final = "kubeflow.org/mpi-operator"
MULTIKUEUE_CONTROLLER: Final = "kueue.x-k8s.io/multikueue"

# Labels mpi-operator puts on the pods (pkg/apis/kubeflow/v2beta1/constants.go), and `app` on the rest.
OPERATOR_NAME_LABEL: Final = "training.kubeflow.org/operator-name"
JOB_NAME_LABEL: Final = "training.kubeflow.org/job-name"
JOB_ROLE_LABEL: Final = "training.kubeflow.org/job-role"
REPLICA_INDEX_LABEL: Final = "training.kubeflow.org/replica-index"
OPERATOR_NAME: Final = "mpi-operator"
APP_LABEL: Final = "app"


@dataclass(frozen=True)
class MpiReplica:
    """One replica spec with its defaults: count, pod template and restart policy."""

    type: str
    count: int
    template: Mapping[str, Any]
    restart_policy: str

    @property
    def pod_restart_policy(self) -> str:
        # ExitCode is refused at admission (upstream allows Never and OnFailure); a stored one runs as Never.
        return "Never" if self.restart_policy == "ExitCode" else self.restart_policy


@dataclass(frozen=True)
class RunPolicy:
    clean_pod_policy: str
    ttl_seconds_after_finished: int | None
    active_deadline_seconds: int | None
    backoff_limit: int | None
    suspend: bool
    managed_by: str | None
    scheduling_policy: Mapping[str, Any]


@dataclass(frozen=True)
class MpiJob(NamedJob):
    body: Body
    slots_per_worker: int
    run_launcher_as_worker: bool
    ssh_auth_mount_path: str
    implementation: str
    launcher_creation_policy: str
    run_policy: RunPolicy
    launcher: MpiReplica | None
    worker: MpiReplica | None

    @property
    def worker_count(self) -> int:
        return self.worker.count if self.worker else 0

    @property
    def launcher_name(self) -> str:
        return f"{self.name}-launcher"

    @property
    def config_name(self) -> str:
        return f"{self.name}-config"

    @property
    def secret_name(self) -> str:
        return f"{self.name}-ssh"

    def worker_name(self, index: int) -> str:
        return f"{self.name}-worker-{index}"

    def worker_index(self, pod_name: str) -> int | None:
        """The index of `<job>-worker-<i>`, else None."""
        prefix = f"{self.name}-worker-"
        rest = pod_name[len(prefix) :] if pod_name.startswith(prefix) else ""
        if rest.isdigit() and (rest == "0" or not rest.startswith("0")):
            return int(rest)
        return None


def read_mpijob(body: Body) -> MpiJob:
    spec = _mapping(body.get("spec"))
    specs = _mapping(spec.get(REPLICA_SPECS))
    slots = spec.get("slotsPerWorker")
    return MpiJob(
        body=body,
        slots_per_worker=1 if slots is None else int(slots),
        run_launcher_as_worker=bool(spec.get("runLauncherAsWorker") or False),
        ssh_auth_mount_path=str(spec.get("sshAuthMountPath") or DEFAULT_SSH_AUTH_MOUNT_PATH),
        implementation=str(spec.get("mpiImplementation") or OPENMPI),
        launcher_creation_policy=str(spec.get("launcherCreationPolicy") or AT_STARTUP),
        run_policy=_run_policy(_mapping(spec.get("runPolicy"))),
        launcher=_replica(LAUNCHER, specs.get(LAUNCHER)),
        worker=_replica(WORKER, specs.get(WORKER)),
    )


def managed_elsewhere(body: Body) -> bool:
    """`spec.runPolicy.managedBy` names a controller other than mpi-operator (MultiKueue)."""
    managed_by = _mapping(_mapping(body.get("spec")).get("runPolicy")).get("managedBy")
    return managed_by is not None and managed_by != MPI_OPERATOR_CONTROLLER


def _run_policy(policy: Mapping[str, Any]) -> RunPolicy:
    return RunPolicy(
        clean_pod_policy=str(policy.get("cleanPodPolicy") or DEFAULT_CLEAN_POD_POLICY),
        ttl_seconds_after_finished=policy.get("ttlSecondsAfterFinished"),
        active_deadline_seconds=policy.get("activeDeadlineSeconds"),
        backoff_limit=policy.get("backoffLimit"),
        suspend=bool(policy.get("suspend") or False),
        managed_by=policy.get("managedBy"),
        scheduling_policy=_mapping(policy.get("schedulingPolicy")),
    )


def _replica(rtype: str, spec: Any) -> MpiReplica | None:
    if not isinstance(spec, Mapping):
        return None
    count = spec.get("replicas")
    return MpiReplica(
        type=rtype,
        count=DEFAULT_REPLICAS[rtype] if count is None else int(count),
        template=_mapping(spec.get("template")),
        restart_policy=str(spec.get("restartPolicy") or DEFAULT_RESTART_POLICY[rtype]),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
