"""The validating admission webhook: kopf's WebhookServer over TLS, the handler that calls the pure
rule engine, and the ValidatingWebhookConfiguration jobwarden registers in local (URL) mode or whose
caBundle it patches in self-signed (in-cluster) mode."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from jobwarden import kinds
from jobwarden.kinds.admission import review
from jobwarden.kinds.base import JobKind
from jobwarden.shell import certs, metrics
from jobwarden.shell.api import KubeApi
from jobwarden.shell.bodies import plain

logger = logging.getLogger(__name__)

WEBHOOK_NAME = "validate.jobwarden.dev"
HANDLER_ID = "validate"  # kopf serves POST /<handler id>, so the webhook path is /validate


@dataclass(frozen=True)
class WebhookOptions:
    enabled: bool = True
    bind: str = "0.0.0.0"
    port: int = 9443
    cert_dir: Path | None = None  # tls.crt, tls.key, optional ca.crt (cert-manager Secret layout)
    self_signed: bool = False  # generate a CA and serving cert at start
    service_name: str = "jobwarden-webhook"
    service_namespace: str = "jobwarden-system"
    config_name: str = "jobwarden"
    url: str | None = None  # local mode: register the whole configuration pointing at this URL
    failure_policy: str = "Fail"
    timeout_seconds: int = 5
    work_dir: Path = Path("/tmp/jobwarden-webhook")

    @property
    def hosts(self) -> list[str]:
        service = f"{self.service_name}.{self.service_namespace}"
        return [
            "localhost",
            "127.0.0.1",
            self.service_name,
            service,
            f"{service}.svc",
            f"{service}.svc.cluster.local",
        ]


def rules() -> list[dict[str, Any]]:
    """CREATE and UPDATE of the main resource of every registered kind (never /status)."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for kind in kinds.REGISTRY:
        grouped.setdefault((kind.resource.group, kind.resource.version), []).append(kind.resource.plural)
    return [
        {
            "apiGroups": [group],
            "apiVersions": [version],
            "resources": sorted(plurals),
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
        for (group, version), plurals in sorted(grouped.items())
    ]


def configuration(options: WebhookOptions, ca_pem: bytes) -> dict[str, Any]:
    client_config: dict[str, Any] = {"caBundle": base64.b64encode(ca_pem).decode()}
    if options.url:
        client_config["url"] = options.url.rstrip("/") + f"/{HANDLER_ID}"
    else:
        client_config["service"] = {
            "name": options.service_name,
            "namespace": options.service_namespace,
            "path": f"/{HANDLER_ID}",
            "port": 443,
        }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": options.config_name, "labels": {"app.kubernetes.io/name": "jobwarden"}},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": client_config,
                "rules": rules(),
                "failurePolicy": options.failure_policy,
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "timeoutSeconds": options.timeout_seconds,
                "admissionReviewVersions": ["v1"],
            }
        ],
    }


def tls_files(options: WebhookOptions) -> tuple[Path, Path, Path]:
    """(cert, key, ca) for the server: given in cert_dir, or generated (self-signed / local mode)."""
    if options.cert_dir and not options.self_signed:
        ca_path = options.cert_dir / "ca.crt"
        cert_path = options.cert_dir / "tls.crt"
        return cert_path, options.cert_dir / "tls.key", ca_path if ca_path.exists() else cert_path
    directory = options.work_dir
    directory.mkdir(parents=True, exist_ok=True)
    ca = certs.make_ca("jobwarden-webhook-ca")
    ca.write(directory / "ca.crt", directory / "ca.key")
    certs.issue(ca, f"{options.service_name}.{options.service_namespace}.svc", hosts=options.hosts).write(
        directory / "tls.crt", directory / "tls.key"
    )
    return directory / "tls.crt", directory / "tls.key", directory / "ca.crt"


def server(options: WebhookOptions, cert: Path, key: Path, ca: Path) -> kopf.WebhookServer:
    return kopf.WebhookServer(
        addr=options.bind, port=options.port, certfile=str(cert), pkeyfile=str(key), cafile=str(ca)
    )


async def register(api: KubeApi, options: WebhookOptions, ca_pem: bytes) -> None:
    """Local mode: create or replace the whole configuration. Self-signed: patch its caBundle."""
    desired = configuration(options, ca_pem)
    if options.url:
        try:
            existing = await api.admission.read_validating_webhook_configuration(options.config_name)
            desired["metadata"]["resourceVersion"] = existing.metadata.resource_version
            await api.admission.replace_validating_webhook_configuration(
                options.config_name, cast(Any, desired)
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            await api.admission.create_validating_webhook_configuration(cast(Any, desired))
        logger.info("registered ValidatingWebhookConfiguration %s -> %s", options.config_name, options.url)
    elif options.self_signed:
        bundle = desired["webhooks"][0]["clientConfig"]["caBundle"]
        patch = [{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": bundle}]
        await api.admission.patch_validating_webhook_configuration(options.config_name, patch)
        logger.info("patched the caBundle of ValidatingWebhookConfiguration %s", options.config_name)


def validator(kind: JobKind) -> Callable[..., Awaitable[None]]:
    """The kopf admission handler of one kind, whose update contract the operator's settings shaped
    (`kinds.registry`): the pure engine decides; a denial becomes kopf.AdmissionError."""

    async def validate(operation: str | None, old: Any, new: Any, **_: Any) -> None:
        if operation not in ("CREATE", "UPDATE"):
            return
        started = time.perf_counter()
        verdict = review(kind, operation, plain(old), plain(new))
        metrics.ADMISSION_SECONDS.labels(kind.resource.kind, operation, str(verdict.allowed).lower()).observe(
            time.perf_counter() - started
        )
        if not verdict.allowed:
            raise kopf.AdmissionError(verdict.message, code=verdict.code)

    return validate
