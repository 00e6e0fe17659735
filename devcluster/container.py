"""The jobwarden image run with podman against a devcluster, as its Deployment runs it in a cluster.

`PodSpec.from_rendered(objects)` reads, from the rendered install (`kubectl kustomize manifests/`), what
the kubelet would give the operator container: the image, args (with `$(VAR)` expanded), env (values,
the `metadata.namespace` and `metadata.name` field references, the ConfigMap of `envFrom`), the user
and group, the read-only root filesystem, dropped capabilities, no privilege escalation, and the
emptyDir mounts as tmpfs. Nothing of that is repeated here. What differs from a cluster, and why:

- host network, with free loopback ports for the webhook, health and metrics servers (appended flags
  override the Deployment's `--*-port`; the Service and probes do not exist locally), bound to
  127.0.0.1, because the devcluster's apiserver calls the webhook at a 127.0.0.1 URL;
- a kubeconfig file mounted read-only instead of the in-cluster ServiceAccount token mount.

`ContainerOperator` is `LocalOperator` (same readiness check, same log file, same `restart`/`stopped`)
with `podman run` as its command. podman's settings for this machine are in
packaging/podman/containers.conf (docs/image.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster.cluster import Cluster
from devcluster.operator import ROOT, LocalOperator

CONTAINERS_CONF = ROOT / "packaging" / "podman" / "containers.conf"
KUBECONFIG_IN_CONTAINER = "/var/run/jobwarden/kubeconfig"
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout, check=check
    )


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in args: a defined variable is replaced, anything else kept."""
    return _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), value)


def _quantity_bytes(quantity: str) -> int:
    """The binary-suffixed quantities an emptyDir sizeLimit uses (32Mi)."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


@dataclass(frozen=True)
class PodSpec:
    """What `podman run` needs to reproduce the Deployment's operator container."""

    image: str
    args: tuple[str, ...]
    env: dict[str, str]
    user: int
    group: int
    read_only_root: bool
    drop_all_capabilities: bool
    no_new_privileges: bool
    tmpfs: dict[str, int] = field(default_factory=dict)  # mount path -> size in bytes

    @classmethod
    def from_rendered(
        cls, objects: list[dict[str, Any]], deployment: str = "jobwarden", pod_name: str = ""
    ) -> PodSpec:
        """`pod_name`: what `metadata.name` field references resolve to (default `<deployment>-podman`)."""
        dep = _one(objects, "Deployment", deployment)
        pod = dep["spec"]["template"]["spec"]
        [container] = pod["containers"]
        context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
        if not context.get("runAsNonRoot") or not context.get("runAsUser"):
            raise ValueError("the Deployment must run as a non-root numeric user")
        fields = {
            "metadata.namespace": dep["metadata"]["namespace"],
            "metadata.name": pod_name or f"{deployment}-podman",
        }
        env = cls._env(objects, fields, container)
        return cls(
            image=container["image"],
            args=tuple(expand(arg, env) for arg in container.get("args", [])),
            env=env,
            user=int(context["runAsUser"]),
            group=int(context.get("runAsGroup", context["runAsUser"])),
            read_only_root=bool(context.get("readOnlyRootFilesystem")),
            drop_all_capabilities="ALL" in context.get("capabilities", {}).get("drop", []),
            no_new_privileges=context.get("allowPrivilegeEscalation") is False,
            tmpfs=cls._tmpfs(pod, container),
        )

    @staticmethod
    def _env(
        objects: list[dict[str, Any]], fields: dict[str, str], container: dict[str, Any]
    ) -> dict[str, str]:
        """envFrom first, then env (env wins on a clash, as in Kubernetes); `fields`: the values of the
        pod fields a `fieldRef` may name."""
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            ref = source["configMapRef"]  # the only source the manifests use; a KeyError says otherwise
            env.update(_one(objects, "ConfigMap", ref["name"]).get("data", {}))
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = expand(var["value"], env)
            elif (path := var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")) in fields:
                env[var["name"]] = fields[path]
            else:
                raise ValueError(f"env {var['name']}: only values and fieldRefs to {sorted(fields)}")
        return env

    @staticmethod
    def _tmpfs(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, int]:
        """The container's writable mounts: emptyDirs, as memory-backed tmpfs of their size limit."""
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts: dict[str, int] = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "emptyDir" not in volume:
                raise ValueError(f"volume {mount['name']}: only emptyDir volumes can be reproduced")
            mounts[mount["mountPath"]] = _quantity_bytes(volume["emptyDir"].get("sizeLimit", "64Mi"))
        return mounts

    def run_options(self) -> list[str]:
        """`podman run` options for the user, filesystem and privileges of the spec."""
        options = [f"--user={self.user}:{self.group}"]
        if self.read_only_root:
            # Without --read-only-tmpfs=false podman adds writable /tmp, /var/tmp and /run of its own:
            # the only writable paths must be the Deployment's mounts.
            options += ["--read-only", "--read-only-tmpfs=false"]
        if self.drop_all_capabilities:
            options.append("--cap-drop=all")
        if self.no_new_privileges:
            options.append("--security-opt=no-new-privileges")
        for path, size in self.tmpfs.items():
            # An emptyDir is world-writable (0777), owned by root.
            options.append(f"--mount=type=tmpfs,destination={path},tmpfs-size={size},tmpfs-mode=1777")
        options += [f"--env={name}={value}" for name, value in sorted(self.env.items())]
        return options


class ContainerOperator(LocalOperator):
    """`jobwarden run` inside the image, started and stopped like the local subprocess."""

    def __init__(self, cluster: Cluster, log_path: Path, spec: PodSpec, kubeconfig: Path) -> None:
        super().__init__(cluster, log_path, kubeconfig=kubeconfig, register_webhook=False)
        self.spec = spec
        self.name = f"jobwarden-{cluster.name}-{self.webhook_port}"

    def command(self) -> list[str]:
        local = [
            f"--kubeconfig={KUBECONFIG_IN_CONTAINER}",
            "--webhook-bind=127.0.0.1",
            f"--webhook-port={self.webhook_port}",
            f"--health-port={self.health_port}",
            f"--metrics-port={self.metrics_port}",
        ]
        return [
            "podman", "run", "--rm", f"--name={self.name}", "--network=host", "--no-healthcheck",
            *self.spec.run_options(),
            f"--volume={self.kubeconfig}:{KUBECONFIG_IN_CONTAINER}:ro",
            self.spec.image, *self.spec.args, *local, *self.extra_args,
        ]  # fmt: skip

    def popen_env(self) -> dict[str, str]:
        return podman_env()

    def start(self, timeout: float = 60) -> None:
        """Start, after removing containers an interrupted run of this cluster's tests left behind
        (killing `podman run` does not stop its container)."""
        stale = podman(
            "ps", "--all", "--quiet", f"--filter=name=^jobwarden-{self.cluster.name}-"
        ).stdout.split()
        if stale:
            podman("rm", "--force", *stale, check=False)
        super().start(timeout)

    def kill(self) -> None:
        """SIGKILL the container itself: killing the `podman run` client would leave it running."""
        if self.process and self.process.poll() is None:
            podman("kill", "--signal=KILL", self.name, check=False)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            podman("stop", "--time=15", self.name, check=False, timeout=60)
            self.process.wait(30)

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a command in the running container (as its user)."""
        return podman("exec", self.name, *argv, check=False)

    def inspect(self) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(podman("container", "inspect", self.name).stdout)
        return found[0]
