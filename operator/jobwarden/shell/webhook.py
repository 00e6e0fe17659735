"""The validating admission webhook: kopf's WebhookServer over TLS, the handler that calls the pure
rule engine, and the ValidatingWebhookConfiguration jobwarden registers in local (URL) mode or whose
caBundle it patches in self-signed (in-cluster) mode."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from jobwarden import kinds
from jobwarden.core.admission import ALLOWED, Verdict
from jobwarden.kinds import policy
from jobwarden.kinds.admission import review
from jobwarden.kinds.base import JobKind
from jobwarden.shell import certs, metrics, policy_install
from jobwarden.shell.api import KubeApi
from jobwarden.shell.bodies import plain
from jobwarden.shell.kubeclient import ApiError
from jobwarden.shell.webhook_server import ReviewServer

logger = logging.getLogger(__name__)

WEBHOOK_NAME = "validate.jobwarden.dev"
# Shown by `kubectl describe validatingwebhookconfiguration jobwarden`, for whoever is on call when job
# writes fail with "failed calling webhook". The same text is in manifests/base (a test compares).
ON_CALL_ANNOTATIONS = {
    "jobwarden.dev/description": (
        "jobwarden validates create/update of TFJob, PyTorchJob, MXJob, XGBoostJob, PaddleJob, JAXJob, "
        "MPIJob and Volcano Job here; label, annotation, finalizer and ownerReference edits and status "
        "writes never reach it"
    ),
    "jobwarden.dev/when-failing": (
        "'failed calling webhook validate.jobwarden.dev' means the jobwarden operator is down or "
        "unreachable: kubectl -n jobwarden-system get deploy,pods,endpointslices "
        "-l app.kubernetes.io/name=jobwarden. See docs/install.md, section 'Webhook down'"
    ),
}
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
    admission_policy: bool = (
        True  # local mode: also install the update contract as ValidatingAdmissionPolicies
    )
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


def rules(job_kinds: tuple[JobKind, ...] | None = None) -> list[dict[str, Any]]:
    """CREATE and UPDATE of the main resource of every kind served (never /status): a kind jobwarden
    stands aside for (Volcano's Jobs, served by Volcano) has no rule, so a stopped jobwarden never
    blocks it."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for kind in _served if job_kinds is None else job_kinds:
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
        "metadata": {
            "name": options.config_name,
            "labels": {"app.kubernetes.io/name": "jobwarden"},
            "annotations": dict(ON_CALL_ANNOTATIONS),
        },
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
                "matchConditions": policy.match_conditions(options.service_namespace),
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
    return ReviewServer(
        answer, addr=options.bind, port=options.port, certfile=str(cert), pkeyfile=str(key), cafile=str(ca)
    )


WEBHOOK_CONFIGS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


async def register(api: KubeApi, options: WebhookOptions, ca_pem: bytes) -> None:
    """Local mode: create or replace the whole configuration. Self-signed: patch its caBundle."""
    desired = configuration(options, ca_pem)
    if options.url:
        try:
            existing = await api.client.get(f"{WEBHOOK_CONFIGS}/{options.config_name}")
            desired["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            await api.client.replace(f"{WEBHOOK_CONFIGS}/{options.config_name}", desired)
        except ApiError as exc:
            if exc.status != 404:
                raise
            await api.client.create(WEBHOOK_CONFIGS, desired)
        logger.info("registered ValidatingWebhookConfiguration %s -> %s", options.config_name, options.url)
        await policy_install.sync(api, options.admission_policy, options.service_namespace, _served)
    elif options.self_signed:
        bundle = desired["webhooks"][0]["clientConfig"]["caBundle"]
        patch = [{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": bundle}]
        if standing_aside():
            # The manifests' rules may still name the kinds jobwarden stands aside for (the default
            # install applied beside Volcano): with failurePolicy Fail they would block Volcano's Jobs
            # whenever jobwarden is down. overlays/beside-volcano ships the configuration without them.
            patch.append({"op": "replace", "path": "/webhooks/0/rules", "value": rules()})
        await api.send(
            "PATCH", f"{WEBHOOK_CONFIGS}/{options.config_name}", patch, "application/json-patch+json"
        )
        logger.info("patched the caBundle of ValidatingWebhookConfiguration %s", options.config_name)


# The kinds as the operator's settings shaped their update contract (`kinds.registry`, e.g. with
# `--allow-suspend-updates`); `serve` sets it at start-up.
_served: tuple[JobKind, ...] = kinds.REGISTRY


def serve(job_kinds: tuple[JobKind, ...]) -> None:
    global _served
    _served = job_kinds


def standing_aside() -> bool:
    """Whether a registered kind is not served (its own controller serves it)."""
    served = {k.resource for k in _served}
    return any(k.resource not in served for k in kinds.REGISTRY)


def judge(group: str, plural: str, operation: str | None, old: Any, new: Any) -> Verdict:
    """The pure engine's verdict, timed for the metrics. Anything but CREATE/UPDATE of a served kind
    is allowed."""
    started = time.perf_counter()
    kind = kinds.by_plural(group, plural, among=_served)
    if kind is None or operation not in ("CREATE", "UPDATE"):
        return ALLOWED
    verdict = review(kind, operation, old, new)
    metrics.ADMISSION_SECONDS.labels(kind.resource.kind, operation, str(verdict.allowed).lower()).observe(
        time.perf_counter() - started
    )
    return verdict


def answer(review_body: Mapping[str, Any]) -> dict[str, Any]:
    """The AdmissionReview response to a well-formed review (webhook_server.parse_review checked it),
    straight from the pure engine: what the kopf handler below answers, without kopf's per-request
    pipeline (memo, whole-object diff, handler execution), which cost ~3 ms of the ~4.4 ms a review
    took over loopback TLS (docs/benchmarks.md)."""
    request = review_body["request"]
    resource = request["resource"]
    verdict = judge(
        resource["group"],
        resource["resource"],
        request["operation"],
        request.get("oldObject"),
        request.get("object"),
    )
    response: dict[str, Any] = {"uid": request["uid"], "allowed": verdict.allowed}
    if not verdict.allowed:
        response["status"] = {"code": verdict.code, "message": verdict.message}
    return {"apiVersion": review_body["apiVersion"], "kind": "AdmissionReview", "response": response}


async def validate(operation: str | None, old: Any, new: Any, resource: kopf.Resource, **_: Any) -> None:
    """The kopf admission handler. kopf starts its webhook server only when such a handler exists; the
    server (webhook_server.ReviewServer) answers reviews itself with `answer`, the same engine."""
    verdict = judge(resource.group, resource.plural, operation, plain(old), plain(new))
    if not verdict.allowed:
        raise kopf.AdmissionError(verdict.message, code=verdict.code)
