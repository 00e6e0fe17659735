"""Installing the rendered manifests into a devcluster as far as a cluster without the image's pods can
take them: the objects the operator's permissions depend on (CRDs, namespace, ServiceAccount, RBAC
incl. the leader election's Role),
a kubeconfig holding the ServiceAccount's token, and the manifests' webhook configuration pointed at a
127.0.0.1 URL instead of the in-cluster Service. Shared by test_install_rbac.py (the operator as a
subprocess) and image/ (the operator in its image)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml
from devcluster import cluster as devcluster

from testlib import ROOT, kustomize_render

SA_NAMESPACE, SA_NAME = "jobwarden-system", "jobwarden"
SA_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
APPLIED_KINDS = {
    "CustomResourceDefinition",
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",  # leader election's Lease
    "RoleBinding",
}


def render(directory: Path = ROOT / "manifests") -> list[dict[str, Any]]:
    """`kubectl kustomize DIRECTORY` as objects."""
    return [dict(o) for o in kustomize_render().objects(directory)]


def apply_prerequisites(c: devcluster.Cluster, rendered: list[dict[str, Any]]) -> None:
    objects = [o for o in rendered if o["kind"] in APPLIED_KINDS]
    c.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects))
    c.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


def service_account_kubeconfig(c: devcluster.Cluster, path: Path) -> Path:
    """A kubeconfig at `path` that authenticates as the manifests' ServiceAccount (a 2 h token) and
    embeds the CA, so it is self-contained (it can be mounted alone into a container)."""
    token = c.kubectl("create", "token", SA_NAME, "-n", SA_NAMESPACE, "--duration=2h").stdout.strip()
    ca = (c.root / "pki" / "ca.crt").read_bytes()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "sa",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": c.server, "certificate-authority-data": base64.b64encode(ca).decode()},
            }
        ],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
    }
    path.write_text(json.dumps(config))
    return path


def register_webhook(c: devcluster.Cluster, rendered: list[dict[str, Any]], port: int) -> str:
    """Apply the manifests' ValidatingWebhookConfiguration with every hook pointed at
    https://127.0.0.1:PORT/validate (and no caBundle: the operator patches it in); returns its name."""
    webhook = next(o for o in rendered if o["kind"] == "ValidatingWebhookConfiguration")
    for hook in webhook["webhooks"]:
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}/validate"}
    c.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(webhook))
    return str(webhook["metadata"]["name"])
