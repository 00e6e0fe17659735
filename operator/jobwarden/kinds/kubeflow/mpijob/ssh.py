"""The key pair of an MPIJob's Secret `<job>-ssh`, as mpi-operator v0.8 newSSHAuthSecret makes it: an
ECDSA key on the P-521 curve, the private half PEM-encoded as `EC PRIVATE KEY` (SEC 1) under
`ssh-privatekey`, the public half in OpenSSH's authorized_keys format (`ecdsa-sha2-nistp521 AAAA…\\n`)
under `ssh-publickey`. Random, so the plan only asks for it and the shell calls `materialize` in a
worker thread just before the create."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from jobwarden.core.plan import GENERATE_ANNOTATION, Manifest
from jobwarden.kinds.kubeflow.mpijob.children import GENERATE_SSH_AUTH, SSH_PRIVATE_KEY, SSH_PUBLIC_KEY


def generate_keys() -> dict[str, str]:
    """`ssh-privatekey` and `ssh-publickey`, as text."""
    key = ec.generate_private_key(ec.SECP521R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # `BEGIN EC PRIVATE KEY`: SEC 1
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return {SSH_PRIVATE_KEY: private_pem.decode(), SSH_PUBLIC_KEY: public.decode() + "\n"}


def materialize(manifest: Manifest) -> Manifest:
    """The requested Secret with its keys and without the annotation that asked for them; any other
    manifest unchanged."""
    metadata = dict(manifest.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    if manifest.get("kind") != "Secret" or annotations.pop(GENERATE_ANNOTATION, None) != GENERATE_SSH_AUTH:
        return manifest
    metadata.pop("annotations", None)
    if annotations:
        metadata["annotations"] = annotations
    data = {k: base64.b64encode(v.encode()).decode() for k, v in generate_keys().items()}
    return {**manifest, "metadata": metadata, "data": data}
