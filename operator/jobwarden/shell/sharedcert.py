"""One self-signed CA and serving certificate for every replica.

In the self-signed mode each replica used to make its own CA and patch it into the webhook
configuration's caBundle, so with two replicas the apiserver trusted only the last one to start and
half of the admission calls failed TLS. Now the first replica to start creates a Secret holding the
CA and the serving certificate (cert-manager's layout: `tls.crt`, `tls.key`, `ca.crt`); every other
replica, and every restart, reads it. A create race is settled by the apiserver: the loser of the
409 reads the winner's Secret."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

from jobwarden.shell import certs
from jobwarden.shell.kubeclient import ApiError, KubeClient

logger = logging.getLogger(__name__)

FILES = ("tls.crt", "tls.key", "ca.crt")


def make_secret(name: str, namespace: str, common_name: str, hosts: list[str]) -> dict[str, Any]:
    ca = certs.make_ca("jobwarden-webhook-ca")
    serving = certs.issue(ca, common_name, hosts=hosts)
    files = {"tls.crt": serving.cert_pem, "tls.key": serving.key_pem, "ca.crt": ca.cert_pem}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "jobwarden", "app.kubernetes.io/component": "webhook-tls"},
        },
        "data": {key: base64.b64encode(value).decode() for key, value in files.items()},
    }


async def shared_files(
    client: KubeClient, name: str, namespace: str, common_name: str, hosts: list[str], directory: Path
) -> tuple[Path, Path, Path]:
    """(cert, key, ca) paths of the shared certificate, written into `directory`."""
    data = await _read(client, name, namespace)
    if data is None:
        try:
            await client.create(_path(namespace), make_secret(name, namespace, common_name, hosts))
            logger.info("created the shared webhook certificate Secret %s/%s", namespace, name)
        except ApiError as exc:
            if exc.status != 409:
                raise
            logger.info("another replica created the webhook certificate Secret first; using it")
        data = await _read(client, name, namespace)
        if data is None:
            raise RuntimeError(f"the webhook certificate Secret {namespace}/{name} vanished after creation")
    directory.mkdir(parents=True, exist_ok=True)
    for key in FILES:
        (directory / key).write_bytes(base64.b64decode(data[key]))
    (directory / "tls.key").chmod(0o600)
    return directory / "tls.crt", directory / "tls.key", directory / "ca.crt"


async def _read(client: KubeClient, name: str, namespace: str) -> dict[str, str] | None:
    try:
        secret = await client.get(_path(namespace, name))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    data = dict(secret.get("data") or {})
    missing = [key for key in FILES if key not in data]
    if missing:
        raise RuntimeError(f"the webhook certificate Secret {namespace}/{name} lacks {', '.join(missing)}")
    return data


def _path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/secrets" + (f"/{name}" if name else "")
