"""The children of an MPIJob as mpi-operator v0.8 makes them (`pkg/controller/mpi_job_controller.go`
newJobService, newConfigMap, updateDiscoverHostsInConfigMap, newSSHAuthSecret, newWorker,
newLauncherJob, newLauncherPodTemplate, setupSSHOnPod):

- the headless Service `<job>` selecting every pod of the job (launcher and workers), with
  `publishNotReadyAddresses` only when the launcher runs as a worker;
- the ConfigMap `<job>-config`: `hostfile` (`<pod>.<job>.<ns>.svc[.<domain>] slots=N` for OpenMPI,
  `<host>:N` for Intel MPI and MPICH; the launcher first when it runs as a worker) and
  `discover_hosts.sh` (an `echo` per Running worker, by name, for Horovod's elastic mode);
- the Secret `<job>-ssh`, `kubernetes.io/ssh-auth`: an ECDSA P-521 key (`ssh-privatekey`, PEM `EC
  PRIVATE KEY`) and its OpenSSH public key (`ssh-publickey`), mounted as `id_rsa`, `id_rsa.pub` and
  `authorized_keys` at `sshAuthMountPath` (mode 0600 at `/root/.ssh`);
- worker Pods `<job>-worker-<i>` with `hostname`/`subdomain`, the DNS search `<job>.<ns>.svc.<domain>`,
  `K_MPI_JOB_ROLE=worker` and, when the first container has neither command nor args, `/usr/sbin/sshd -De`;
- the launcher, a batch/v1 Job `<job>-launcher` carrying `ttlSecondsAfterFinished`,
  `activeDeadlineSeconds`, `backoffLimit` and `suspend` of the run policy, `podReplacementPolicy:
  Failed`, and a pod template with `K_MPI_JOB_ROLE=launcher`, the MPI implementation's env (OpenMPI
  `OMPI_MCA_*`, Intel `I_MPI_*`, MPICH `HYDRA_*`), `NVIDIA_VISIBLE_DEVICES` and
  `NVIDIA_DRIVER_CAPABILITIES` cleared unless the launcher is a worker too, and the config at `/etc/mpi`.

The env, the ssh volume and the config volume go to the first container, as upstream. Where the user's
container already sets a variable of the same name, the user's value is kept and ours is not added
(the Kubeflow family's rule; upstream appends its own after the user's)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, Final

from jobwarden.core.children import child_metadata, manifest
from jobwarden.core.plan import GENERATE_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Manifest, Settings
from jobwarden.kinds.kubeflow.mpijob.spec import (
    APP_LABEL,
    DEFAULT_SSH_AUTH_MOUNT_PATH,
    INTEL,
    JOB_NAME_LABEL,
    JOB_ROLE_LABEL,
    MPICH,
    OPENMPI,
    OPERATOR_NAME,
    OPERATOR_NAME_LABEL,
    REPLICA_INDEX_LABEL,
    MpiJob,
)

CONFIG_MOUNT_PATH: Final = "/etc/mpi"
CONFIG_VOLUME: Final = "mpi-job-config"
HOSTFILE: Final = "hostfile"
DISCOVER_HOSTS: Final = "discover_hosts.sh"
SSH_AUTH_VOLUME: Final = "ssh-auth"
SSH_AUTH_SECRET_TYPE: Final = "kubernetes.io/ssh-auth"
SSH_PRIVATE_KEY: Final = "ssh-privatekey"  # corev1.SSHAuthPrivateKey
SSH_PUBLIC_KEY: Final = "ssh-publickey"
# What the planned Secret carries instead of keys; `ssh.materialize` makes them.
GENERATE_SSH_AUTH: Final = "mpi-ssh-auth"
DEFAULT_WORKER_COMMAND: Final = ("/usr/sbin/sshd", "-De")
DEFAULT_CLUSTER_DOMAIN: Final = "cluster.local"  # upstream's fixed DNS search suffix
LAUNCHER_ROLE: Final = "launcher"
WORKER_ROLE: Final = "worker"
ROLE_ENV: Final = "K_MPI_JOB_ROLE"
POD_REPLACEMENT_POLICY: Final = "Failed"  # the launcher Job's podReplacementPolicy

SSH_VOLUME_ITEMS: Final = (
    {"key": SSH_PRIVATE_KEY, "path": "id_rsa"},
    {"key": SSH_PUBLIC_KEY, "path": "id_rsa.pub"},
    {"key": SSH_PUBLIC_KEY, "path": "authorized_keys"},
)
CONFIG_VOLUME_ITEMS: Final = (
    {"key": HOSTFILE, "path": HOSTFILE, "mode": 0o444},
    {"key": DISCOVER_HOSTS, "path": DISCOVER_HOSTS, "mode": 0o555},
)
_HOSTFILE_PATH: Final = f"{CONFIG_MOUNT_PATH}/{HOSTFILE}"
_CONNECTION_ATTEMPTS: Final = "-o ConnectionAttempts=10"
# The launcher's env by MPI implementation, in upstream's order; the slots variable follows.
IMPLEMENTATION_ENV: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    OPENMPI: (
        ("OMPI_MCA_orte_keep_fqdn_hostnames", "true"),
        ("OMPI_MCA_orte_default_hostfile", _HOSTFILE_PATH),
        ("OMPI_MCA_plm_rsh_args", _CONNECTION_ATTEMPTS),
    ),
    INTEL: (
        ("I_MPI_HYDRA_HOST_FILE", _HOSTFILE_PATH),
        ("I_MPI_HYDRA_BOOTSTRAP_EXEC_EXTRA_ARGS", _CONNECTION_ATTEMPTS),
    ),
    MPICH: (
        ("HYDRA_HOST_FILE", _HOSTFILE_PATH),
        ("HYDRA_LAUNCH_EXTRA_ARGS", _CONNECTION_ATTEMPTS),
    ),
}
SLOTS_ENV: Final[Mapping[str, str]] = {OPENMPI: "OMPI_MCA_orte_set_default_slots", INTEL: "I_MPI_PERHOST"}
# Cleared on the launcher (no value) so that it never grabs GPUs meant for the workers.
NVIDIA_CLEARED: Final = ("NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES")


def role_labels(job: MpiJob, role: str) -> dict[str, str]:
    """upstream defaultLabels: what the Service selects by (plus the role)."""
    return {OPERATOR_NAME_LABEL: OPERATOR_NAME, JOB_NAME_LABEL: job.name, JOB_ROLE_LABEL: role}


# ---------------------------------------------------------------------------------------------
# Service, ConfigMap, Secret


def service(job: MpiJob) -> Manifest:
    selector = {OPERATOR_NAME_LABEL: OPERATOR_NAME, JOB_NAME_LABEL: job.name}
    spec = {
        "clusterIP": "None",
        "selector": selector,
        # Only with the launcher as a worker: otherwise the launcher waits for itself to be Ready.
        "publishNotReadyAddresses": job.run_launcher_as_worker,
    }
    return manifest("v1", "Service", child_metadata(job.body, job.name, {APP_LABEL: job.name}), spec=spec)


def host_fqdn(job: MpiJob, host: str, cluster_domain: str) -> str:
    fqdn = f"{host}.{job.name}.{job.namespace}.svc"
    return f"{fqdn}.{cluster_domain}" if cluster_domain else fqdn


def hostfile(job: MpiJob, cluster_domain: str) -> str:
    hosts = [job.launcher_name] if job.run_launcher_as_worker else []
    hosts += [job.worker_name(i) for i in range(job.worker_count)]
    slots = job.slots_per_worker
    if job.implementation == OPENMPI:
        return "".join(f"{host_fqdn(job, h, cluster_domain)} slots={slots}\n" for h in hosts)
    if job.implementation in (INTEL, MPICH):
        return "".join(f"{host_fqdn(job, h, cluster_domain)}:{slots}\n" for h in hosts)
    return ""


def discover_hosts(job: MpiJob, running_workers: Iterable[str], cluster_domain: str) -> str:
    """`running_workers`: names of the job's Running worker pods; sorted by name as upstream."""
    hosts = [job.launcher_name] if job.run_launcher_as_worker else []
    hosts += sorted(running_workers)
    return "#!/bin/sh\n" + "".join(f"echo {host_fqdn(job, h, cluster_domain)}\n" for h in hosts)


def config_data(job: MpiJob, running_workers: Iterable[str], cluster_domain: str) -> dict[str, str]:
    return {
        HOSTFILE: hostfile(job, cluster_domain),
        DISCOVER_HOSTS: discover_hosts(job, running_workers, cluster_domain),
    }


def config_map(job: MpiJob, data: Mapping[str, str]) -> Manifest:
    metadata = child_metadata(job.body, job.config_name, {APP_LABEL: job.name})
    return manifest("v1", "ConfigMap", metadata, data=dict(data))


def requested_secret(job: MpiJob) -> Manifest:
    """The Secret as the plan asks for it: `materialize` (ssh.py) generates the key pair."""
    metadata = child_metadata(
        job.body, job.secret_name, {APP_LABEL: job.name}, {GENERATE_ANNOTATION: GENERATE_SSH_AUTH}
    )
    return manifest("v1", "Secret", metadata, type=SSH_AUTH_SECRET_TYPE)


# ---------------------------------------------------------------------------------------------
# Pods


def worker_pod(job: MpiJob, index: int, settings: Settings) -> Manifest:
    assert job.worker is not None
    name = job.worker_name(index)
    template = copy.deepcopy(dict(job.worker.template))
    template_meta = template.get("metadata") or {}
    spec = template.setdefault("spec", {})
    # With the launcher as a worker, the launcher is index 0 (Kueue's TAS needs unique indices).
    replica_index = index + 1 if job.run_launcher_as_worker else index
    labels = {
        **(template_meta.get("labels") or {}),
        **role_labels(job, WORKER_ROLE),
        REPLICA_INDEX_LABEL: str(replica_index),
    }
    _set_host(spec, name, job.name)
    domain = settings.cluster_domain or DEFAULT_CLUSTER_DOMAIN
    dns = spec.get("dnsConfig") or {}
    # Intel MPI and MPICH reach the launcher by its bare host name.
    dns["searches"] = [*(dns.get("searches") or []), f"{job.name}.{job.namespace}.svc.{domain}"]
    spec["dnsConfig"] = dns
    spec["restartPolicy"] = job.worker.pod_restart_policy
    containers = spec.get("containers") or []
    if containers:
        first = containers[0]
        if not first.get("command") and not first.get("args"):
            first["command"] = list(DEFAULT_WORKER_COMMAND)
        add_env(first, [(ROLE_ENV, WORKER_ROLE)])
    _mount_ssh(spec, job)
    metadata = child_metadata(job.body, name, labels, template_meta.get("annotations"))
    return manifest("v1", "Pod", metadata, spec=spec)


def launcher_job(job: MpiJob) -> Manifest:
    run_policy = job.run_policy
    spec: dict[str, Any] = {}
    for field, value in (
        ("ttlSecondsAfterFinished", run_policy.ttl_seconds_after_finished),
        ("activeDeadlineSeconds", run_policy.active_deadline_seconds),
        ("backoffLimit", run_policy.backoff_limit),
    ):
        if value is not None:
            spec[field] = value
    spec["template"] = launcher_template(job)
    # Terminating launcher pods are not replaced before they are gone (kubernetes#115844).
    spec["podReplacementPolicy"] = POD_REPLACEMENT_POLICY
    if run_policy.suspend:
        spec["suspend"] = True
    metadata = child_metadata(job.body, job.launcher_name, {APP_LABEL: job.name})
    return manifest("batch/v1", "Job", metadata, spec=spec)


def launcher_template(job: MpiJob) -> dict[str, Any]:
    assert job.launcher is not None
    template = copy.deepcopy(dict(job.launcher.template))
    template_meta = template.get("metadata") or {}
    spec = template.setdefault("spec", {})
    labels = {**(template_meta.get("labels") or {}), **role_labels(job, LAUNCHER_ROLE)}
    # The launcher's pods are the Job's; this label lets the shell's pod watch see them.
    labels[MANAGED_BY_LABEL] = MANAGED_BY_VALUE
    if job.run_launcher_as_worker:
        labels[REPLICA_INDEX_LABEL] = "0"
    _set_host(spec, job.launcher_name, job.name)
    containers = spec.get("containers") or []
    if containers:
        add_env(containers[0], launcher_env(job))
    _mount_ssh(spec, job)
    spec["restartPolicy"] = job.launcher.pod_restart_policy
    spec["volumes"] = [
        *(spec.get("volumes") or []),
        {
            "name": CONFIG_VOLUME,
            "configMap": {"name": job.config_name, "items": [dict(i) for i in CONFIG_VOLUME_ITEMS]},
        },
    ]
    if containers:
        _add_mount(containers[0], {"name": CONFIG_VOLUME, "mountPath": CONFIG_MOUNT_PATH})
    metadata: dict[str, Any] = {"labels": labels}
    if template_meta.get("annotations"):
        metadata["annotations"] = dict(template_meta["annotations"])
    return {"metadata": metadata, "spec": spec}


def launcher_env(job: MpiJob) -> list[tuple[str, str | None]]:
    """The launcher's variables in upstream's order; None is a variable set to nothing."""
    env: list[tuple[str, str | None]] = [(ROLE_ENV, LAUNCHER_ROLE)]
    env += IMPLEMENTATION_ENV.get(job.implementation, ())
    slots = SLOTS_ENV.get(job.implementation)
    if slots:
        env.append((slots, str(job.slots_per_worker)))
    if not job.run_launcher_as_worker:
        env += [(name, None) for name in NVIDIA_CLEARED]
    return env


def add_env(container: dict[str, Any], env: Iterable[tuple[str, str | None]]) -> None:
    """Append our variables after the container's own, skipping names the container sets itself."""
    own = list(container.get("env") or [])
    taken = {e.get("name") for e in own if isinstance(e, Mapping)}
    added = [{"name": k} if v is None else {"name": k, "value": v} for k, v in env if k not in taken]
    if own or added:
        container["env"] = [*own, *added]


def _set_host(spec: dict[str, Any], hostname: str, subdomain: str) -> None:
    spec["hostname"] = hostname
    spec["subdomain"] = subdomain  # the job's Service: `<host>.<job>.<ns>.svc` resolves
    if spec.get("hostNetwork"):
        # Host-network pods resolve the other pods' names only with this policy.
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"


def _mount_ssh(spec: dict[str, Any], job: MpiJob) -> None:
    secret: dict[str, Any] = {"secretName": job.secret_name, "items": [dict(i) for i in SSH_VOLUME_ITEMS]}
    if job.ssh_auth_mount_path == DEFAULT_SSH_AUTH_MOUNT_PATH:
        secret["defaultMode"] = 0o600  # sshd refuses keys others can read; elsewhere the user decides
    spec["volumes"] = [*(spec.get("volumes") or []), {"name": SSH_AUTH_VOLUME, "secret": secret}]
    containers = spec.get("containers") or []
    if containers:
        _add_mount(containers[0], {"name": SSH_AUTH_VOLUME, "mountPath": job.ssh_auth_mount_path})


def _add_mount(container: dict[str, Any], mount: dict[str, Any]) -> None:
    container["volumeMounts"] = [*(container.get("volumeMounts") or []), mount]
