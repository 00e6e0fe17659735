"""The `ssh` plugin: one key pair per job, trusted by every pod of the job (MPI-style launchers).

The Secret `<job>-ssh` holds `id_rsa` (PEM PKCS#1 RSA 2048), `id_rsa.pub` and `authorized_keys` (the
OpenSSH public key line) and `config` (no host key checks; a `Host` entry per replica). Every container
mounts it at `--ssh-key-file-path` (default `/root/.ssh`) through `subPath: .ssh`, mode 0600 (0644 for
another path, as upstream).

The plan stays a deterministic function of its input: the Secret it asks for carries only `config`
and the annotation `jobwarden.dev/generate: ssh-keypair` (plus, when the user gave
`--ssh-private-key`/`--ssh-public-key`, those texts in `jobwarden.dev/ssh-private-key`/`-public-key`).
`SshPlugin.materialize`, which the shell runs (through the kind) in a worker thread just before it
creates the Secret, generates the key pair (or uses the given key), writes the key files and removes
those annotations.

The shell never watches Secrets (least privilege), so the Secret is asked for only while
`status.controlledResources` lacks `plugin-ssh` and the shell has not reported the Secret in
`Observed.children["Secret"]` (created, or found existing); `plugin-ssh` is recorded once it has. As
upstream, the Secret is never rewritten while the job lives: subPath mounts do not see updates, so a
scaled-up job's new hosts are missing from `config`. That is not harmless: Open MPI shortens
`<pod>.<svc>` to `<pod>` by default and only `config` maps short names, so `mpirun` over a scaled-up
job cannot resolve the new workers unless it keeps the FQDNs (`--mca orte_keep_fqdn_hostnames 1`, as
tests/realnode/test_real_training.py does). Upstream Volcano behaves the same (its ssh.go)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jobwarden.core.children import child_metadata, manifest
from jobwarden.core.plan import GENERATE_ANNOTATION, ChildRef, Manifest
from jobwarden.plugins.base import DesiredChild, Flags, FlagValue, JobContext, JobPlugin, add_volume

DEFAULT_KEY_PATH = "/root/.ssh"
DEFAULT_PORT = 22
KEY_SIZE = 2048
SECRET_KEYS = ("id_rsa", "id_rsa.pub", "authorized_keys", "config")
SUB_PATH = ".ssh"
# What a planned Secret carries instead of keys; `materialize` consumes and removes these annotations.
GENERATE_SSH_KEYPAIR = "ssh-keypair"
GIVEN_PRIVATE_KEY_ANNOTATION = "jobwarden.dev/ssh-private-key"
GIVEN_PUBLIC_KEY_ANNOTATION = "jobwarden.dev/ssh-public-key"
_MATERIALIZE_ANNOTATIONS = (GENERATE_ANNOTATION, GIVEN_PRIVATE_KEY_ANNOTATION, GIVEN_PUBLIC_KEY_ANNOTATION)


def secret_name(job: JobContext) -> str:
    return f"{job.name}-ssh"


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_line: str  # `ssh-rsa AAAA…\n`, as Go's ssh.MarshalAuthorizedKey writes it


def generate_key_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # `BEGIN RSA PRIVATE KEY`: PKCS#1
        serialization.NoEncryption(),
    )
    return KeyPair(private_pem.decode(), _public_line(key.public_key()))


def _public_line(public_key: rsa.RSAPublicKey) -> str:
    openssh = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return openssh.decode() + "\n"


def _given_key_pair(private_pem: str, public_line: str) -> KeyPair:
    """The user's key (`--ssh-private-key`); its public half is derived when not given too."""
    if public_line:
        return KeyPair(private_pem, public_line)
    try:
        loaded = serialization.load_pem_private_key(private_pem.encode(), password=None)
    except (ValueError, TypeError):
        loaded = None
    derived = _public_line(loaded.public_key()) if isinstance(loaded, rsa.RSAPrivateKey) else ""
    return KeyPair(private_pem, derived)


@dataclass(frozen=True)
class SshPlugin(JobPlugin):
    name: ClassVar[str] = "ssh"
    flag_defaults: ClassVar[Mapping[str, FlagValue]] = {
        "ssh-key-file-path": DEFAULT_KEY_PATH,
        "ssh-private-key": "",
        "ssh-public-key": "",
        "ssh-port": DEFAULT_PORT,
    }

    key_path: str = DEFAULT_KEY_PATH
    private_key: str = ""
    public_key: str = ""
    port: int = DEFAULT_PORT

    @classmethod
    def from_flags(cls, flags: Flags) -> JobPlugin:
        port = flags.integer("ssh-port")
        return cls(
            key_path=flags.text("ssh-key-file-path"),
            private_key=flags.text("ssh-private-key"),
            public_key=flags.text("ssh-public-key"),
            port=port if 0 < port <= 65535 else DEFAULT_PORT,
        )

    def on_pod_create(self, pod: Manifest, job: JobContext, task: str, index: int) -> None:
        mode = 0o600 if self.key_path == DEFAULT_KEY_PATH else 0o644
        items = [{"key": key, "path": f"{SUB_PATH}/{key}"} for key in SECRET_KEYS]
        volume = {
            "name": secret_name(job),
            "secret": {"secretName": secret_name(job), "defaultMode": mode, "items": items},
        }
        add_volume(pod, volume, {"name": secret_name(job), "mountPath": self.key_path, "subPath": SUB_PATH})

    def resources(self, job: JobContext) -> list[DesiredChild]:
        return [DesiredChild("Secret", secret_name(job), lambda: self.requested_secret(job))]

    def on_job_delete(self, job: JobContext) -> list[ChildRef]:
        return [ChildRef("Secret", secret_name(job))]

    def requested_secret(self, job: JobContext) -> Manifest:
        """The Secret as the plan asks for it: `config`, and annotations saying how to make the keys."""
        annotations = {GENERATE_ANNOTATION: GENERATE_SSH_KEYPAIR}
        if self.private_key:
            annotations[GIVEN_PRIVATE_KEY_ANNOTATION] = self.private_key
            if self.public_key:
                annotations[GIVEN_PUBLIC_KEY_ANNOTATION] = self.public_key
        metadata = child_metadata(job.job, secret_name(job), self.child_labels, annotations)
        return manifest(
            "v1", "Secret", metadata, type="Opaque", data=_encoded({"config": self.ssh_config(job)})
        )

    def secret(self, job: JobContext, keys: KeyPair) -> Manifest:
        """The Secret as it is created, with `keys`."""
        return _with_keys(self.requested_secret(job), keys)

    @classmethod
    def materialize(cls, manifest: Manifest) -> Manifest:
        annotations = (manifest.get("metadata") or {}).get("annotations") or {}
        if manifest.get("kind") != "Secret" or annotations.get(GENERATE_ANNOTATION) != GENERATE_SSH_KEYPAIR:
            return manifest
        private_pem = annotations.get(GIVEN_PRIVATE_KEY_ANNOTATION, "")
        keys = (
            _given_key_pair(private_pem, annotations.get(GIVEN_PUBLIC_KEY_ANNOTATION, ""))
            if private_pem
            else generate_key_pair()
        )
        return _with_keys(manifest, keys)

    def ssh_config(self, job: JobContext) -> str:
        lines = ["StrictHostKeyChecking no", "UserKnownHostsFile /dev/null"]
        for task in job.tasks:
            for hostname, fqdn in job.hosts(task):
                lines += [f"Host {hostname}", f"  HostName {fqdn}", f"  Port {self.port}"]
        return "".join(f"{line}\n" for line in lines)


def _encoded(files: Mapping[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(text.encode()).decode() for key, text in files.items()}


def _with_keys(requested: Manifest, keys: KeyPair) -> Manifest:
    """A copy of a requested Secret with its key files, without the annotations that asked for them."""
    metadata = dict(requested["metadata"])
    annotations = {
        k: v for k, v in (metadata.get("annotations") or {}).items() if k not in _MATERIALIZE_ANNOTATIONS
    }
    metadata.pop("annotations", None)
    if annotations:
        metadata["annotations"] = annotations
    files = {"id_rsa": keys.private_pem, "id_rsa.pub": keys.public_line, "authorized_keys": keys.public_line}
    data = {**_encoded(files), **(requested.get("data") or {})}
    return {**requested, "metadata": metadata, "data": data}
