"""The `ssh` plugin: one key pair per job, trusted by every pod of the job (MPI-style launchers).

The Secret `<job>-ssh` holds `id_rsa` (PEM PKCS#1 RSA 2048), `id_rsa.pub` and `authorized_keys` (the
OpenSSH public key line) and `config` (no host key checks; a `Host` entry per replica). Every container
mounts it at `--ssh-key-file-path` (default `/root/.ssh`) through `subPath: .ssh`, mode 0600 (0644 for
another path, as upstream).

The shell never watches Secrets (least privilege), so the Secret is created only while
`status.controlledResources` lacks `plugin-ssh`, and the key pair is generated only then. As
upstream, the Secret is never rewritten while the job lives: subPath mounts do not see updates, so a
scaled-up job's new hosts are missing from `config`, which host key checking being off makes
harmless."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jobwarden.core.children import child_metadata, manifest
from jobwarden.core.plan import ChildRef, Manifest
from jobwarden.plugins.base import DesiredChild, Flags, FlagValue, JobContext, JobPlugin, add_volume

DEFAULT_KEY_PATH = "/root/.ssh"
DEFAULT_PORT = 22
KEY_SIZE = 2048
SECRET_KEYS = ("id_rsa", "id_rsa.pub", "authorized_keys", "config")
SUB_PATH = ".ssh"


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
        return [DesiredChild("Secret", secret_name(job), lambda: self.secret(job, self._key_pair()))]

    def on_job_delete(self, job: JobContext) -> list[ChildRef]:
        return [ChildRef("Secret", secret_name(job))]

    def secret(self, job: JobContext, keys: KeyPair) -> Manifest:
        files = {
            "id_rsa": keys.private_pem,
            "id_rsa.pub": keys.public_line,
            "authorized_keys": keys.public_line,
            "config": self.ssh_config(job),
        }
        data = {key: base64.b64encode(text.encode()).decode() for key, text in files.items()}
        return manifest("v1", "Secret", child_metadata(job.job, secret_name(job)), type="Opaque", data=data)

    def ssh_config(self, job: JobContext) -> str:
        lines = ["StrictHostKeyChecking no", "UserKnownHostsFile /dev/null"]
        for task in job.tasks:
            for hostname, fqdn in job.hosts(task):
                lines += [f"Host {hostname}", f"  HostName {fqdn}", f"  Port {self.port}"]
        return "".join(f"{line}\n" for line in lines)

    def _key_pair(self) -> KeyPair:
        if self.private_key:
            return _given_key_pair(self.private_key, self.public_key)
        return generate_key_pair()
