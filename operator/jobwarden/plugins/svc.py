"""The `svc` plugin: stable DNS names for every pod, and the job's host lists as files and env.

- each pod gets `hostname` = its name and `subdomain` = the job name (unless the template sets them),
  so it resolves as `<job>-<task>-<i>.<job>` through the headless Service `<job>`;
- the ConfigMap `<job>-svc` holds, per task `t` (`t'` = `t` with `-` → `_`, `T` = `t'` upper-cased),
  `<t'>.host` (hosts one per line), `VC_<T>_HOSTS` (comma-separated) and `VC_<T>_NUM`. It is mounted
  at `/etc/volcano` in every container, and rewritten when the job scales;
- with `--inject-hosts-env` (default true) every container gets `VC_<T>_HOSTS` and `VC_<T>_NUM` of
  every task from that ConfigMap. Env is read once at start: running pods keep the values they
  started with, only the mounted files follow a scale (as upstream).

- the NetworkPolicy `<job>` (upstream `svc.go` createNetworkPolicyIfNotExist): the job's pods
  (`volcano.sh/job-name`, `volcano.sh/job-namespace`) accept ingress only from the job's own pods.
  Created when missing, never rewritten (as upstream), removed with the Service by a whole-job kill;
  `--disable-network-policy` leaves it out. Enforcing it is the network plugin's business."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from jobwarden.core.children import child_metadata, manifest
from jobwarden.core.plan import ChildRef, Manifest
from jobwarden.plugins.base import (
    JOB_NAME_LABEL,
    JOB_NAMESPACE_LABEL,
    DesiredChild,
    Flags,
    FlagValue,
    JobContext,
    JobPlugin,
    TaskHosts,
    add_volume,
    append_env,
)

CONFIG_DIR = "/etc/volcano"


def configmap_name(job: JobContext) -> str:
    return f"{job.name}-svc"


def hosts_key(task_name: str) -> str:
    return f"VC_{_env_task(task_name)}_HOSTS"


def num_key(task_name: str) -> str:
    return f"VC_{_env_task(task_name)}_NUM"


def hostfile_key(task_name: str) -> str:
    """`mpiworker.host`: the file `/etc/volcano/<t'>.host`."""
    return f"{task_name.replace('-', '_')}.host"


def _env_task(task_name: str) -> str:
    return task_name.replace("-", "_").upper()


@dataclass(frozen=True)
class SvcPlugin(JobPlugin):
    name: ClassVar[str] = "svc"
    flag_defaults: ClassVar[Mapping[str, FlagValue]] = {
        "publish-not-ready-addresses": False,
        "disable-network-policy": False,
        "inject-hosts-env": True,
    }

    publish_not_ready_addresses: bool = False
    inject_hosts_env: bool = True
    network_policy: bool = True

    @classmethod
    def from_flags(cls, flags: Flags) -> JobPlugin:
        return cls(
            publish_not_ready_addresses=flags.boolean("publish-not-ready-addresses"),
            inject_hosts_env=flags.boolean("inject-hosts-env"),
            network_policy=not flags.boolean("disable-network-policy"),
        )

    def on_pod_create(self, pod: Manifest, job: JobContext, task: str, index: int) -> None:
        spec = pod.setdefault("spec", {})
        spec["hostname"] = spec.get("hostname") or pod["metadata"]["name"]
        spec["subdomain"] = spec.get("subdomain") or job.name
        if self.inject_hosts_env:
            append_env(pod, [_from_configmap(job, key) for t in job.tasks for key in _env_keys(t)])
        volume = {"name": configmap_name(job), "configMap": {"name": configmap_name(job)}}
        add_volume(pod, volume, {"name": configmap_name(job), "mountPath": CONFIG_DIR})

    def resources(self, job: JobContext) -> list[DesiredChild]:
        children = [
            DesiredChild("ConfigMap", configmap_name(job), lambda: self._configmap(job), ("data",)),
            DesiredChild("Service", job.name, lambda: self._service(job)),
        ]
        if self.network_policy:
            children.append(
                DesiredChild("NetworkPolicy", job.name, lambda: network_policy(job, self.child_labels))
            )
        return children

    def on_job_delete(self, job: JobContext) -> list[ChildRef]:
        refs = [ChildRef("ConfigMap", configmap_name(job)), ChildRef("Service", job.name)]
        return [*refs, ChildRef("NetworkPolicy", job.name)] if self.network_policy else refs

    def _configmap(self, job: JobContext) -> Manifest:
        metadata = child_metadata(job.job, configmap_name(job), self.child_labels)
        return manifest("v1", "ConfigMap", metadata, data=hosts_data(job))

    def _service(self, job: JobContext) -> Manifest:
        spec = {
            "clusterIP": "None",
            "selector": {JOB_NAME_LABEL: job.name, JOB_NAMESPACE_LABEL: job.namespace},
            "publishNotReadyAddresses": self.publish_not_ready_addresses,
        }
        return manifest("v1", "Service", child_metadata(job.job, job.name, self.child_labels), spec=spec)


def network_policy(job: JobContext, labels: Mapping[str, str] | None = None) -> Manifest:
    """Ingress to the job's pods only from the job's pods."""
    own_pods = {"matchLabels": {JOB_NAME_LABEL: job.name, JOB_NAMESPACE_LABEL: job.namespace}}
    spec = {
        "podSelector": own_pods,
        "ingress": [{"from": [{"podSelector": own_pods}]}],
        "policyTypes": ["Ingress"],
    }
    metadata = child_metadata(job.job, job.name, labels)
    return manifest("networking.k8s.io/v1", "NetworkPolicy", metadata, spec=spec)


def hosts_data(job: JobContext) -> dict[str, str]:
    """The ConfigMap's data: every task's hosts, as a file and as env values."""
    data: dict[str, str] = {}
    for task in job.tasks:
        hosts = [fqdn for _, fqdn in job.hosts(task)]
        data[hostfile_key(task.name)] = "\n".join(hosts)
        data[hosts_key(task.name)] = ",".join(hosts)
        data[num_key(task.name)] = str(len(hosts))
    return data


def _env_keys(task: TaskHosts) -> tuple[str, str]:
    return hosts_key(task.name), num_key(task.name)


def _from_configmap(job: JobContext, key: str) -> dict[str, Any]:
    return {"name": key, "valueFrom": {"configMapKeyRef": {"name": configmap_name(job), "key": key}}}
