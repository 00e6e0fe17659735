"""Every Kubernetes write the operator makes, on kubernetes_asyncio.

The operator's handlers are `async def` and share kopf's event loop with the watches and the webhook
server, so a synchronous client here would stall all of them (see docs/benchmarks.md). Reads come
from kopf's watch streams and indices; this module only writes, plus two discovery look-ups."""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from jobwarden.core.plan import CHILD_KINDS, CHILD_KINDS_BY_NAME, Body, ChildRef, Event, Manifest
from jobwarden.core.timefmt import to_rfc3339
from jobwarden.kinds.base import Resource

logger = logging.getLogger(__name__)

# Child kinds in the core API group and the snake_case suffix of their generated client methods
# (`ConfigMap` → `config_map`), and the others as custom objects; both from the core's table.
_CORE_KINDS = {
    c.kind: re.sub(r"(?<!^)(?=[A-Z])", "_", c.kind).lower() for c in CHILD_KINDS if c.api_version == "v1"
}
_CUSTOM_KINDS = {c.kind: (c.group, c.version, c.plural) for c in CHILD_KINDS if c.api_version != "v1"}
PODGROUP_CRD = "{0.plural}.{0.group}".format(
    CHILD_KINDS_BY_NAME["PodGroup"]
)  # podgroups.scheduling.volcano.sh


async def load_config(kubeconfig: str | None) -> client.ApiClient:
    if kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        await config.load_kube_config(config_file=kubeconfig)
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


class KubeApi:
    """Typed, kind-dispatched writes. Callers handle ApiException (see `status_of`)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.extensions = client.ApiextensionsV1Api(api_client)
        self.admission = client.AdmissionregistrationV1Api(api_client)
        self.instance = socket.gethostname()

    async def close(self) -> None:
        await self.api_client.close()

    async def create_child(self, namespace: str, manifest: Manifest) -> None:
        kind = manifest["kind"]
        if kind in _CORE_KINDS:
            await getattr(self.core, f"create_namespaced_{_CORE_KINDS[kind]}")(namespace, manifest)
        else:
            group, version, plural = _CUSTOM_KINDS[kind]
            await self.custom.create_namespaced_custom_object(group, version, namespace, plural, manifest)

    async def replace_child(self, namespace: str, manifest: Manifest) -> None:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if kind in _CORE_KINDS:
            await getattr(self.core, f"replace_namespaced_{_CORE_KINDS[kind]}")(name, namespace, manifest)
        else:
            group, version, plural = _CUSTOM_KINDS[kind]
            await self.custom.replace_namespaced_custom_object(
                group, version, namespace, plural, name, manifest
            )

    async def delete_child(self, namespace: str, ref: ChildRef) -> None:
        if ref.kind in _CORE_KINDS:
            await getattr(self.core, f"delete_namespaced_{_CORE_KINDS[ref.kind]}")(ref.name, namespace)
        else:
            group, version, plural = _CUSTOM_KINDS[ref.kind]
            await self.custom.delete_namespaced_custom_object(group, version, namespace, plural, ref.name)

    async def replace_status(
        self, resource: Resource, job: Body, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PUT /status with the resourceVersion the plan was computed from: a 409 means the plan is stale."""
        meta = job["metadata"]
        body = {**job, "status": dict(status)}
        result: dict[str, Any] = await self.custom.replace_namespaced_custom_object_status(
            resource.group, resource.version, meta["namespace"], resource.plural, meta["name"], body
        )
        return result

    async def delete_job(self, resource: Resource, job: Body) -> None:
        """Delete a finished job; its children follow through ownerReferences (garbage collector).
        The uid precondition makes sure a job re-created under the same name is never hit."""
        meta = job["metadata"]
        options = client.V1DeleteOptions(
            propagation_policy="Background", preconditions=client.V1Preconditions(uid=meta["uid"])
        )
        await self.custom.delete_namespaced_custom_object(
            resource.group, resource.version, meta["namespace"], resource.plural, meta["name"], body=options
        )

    async def post_event(self, job: Body, event: Event) -> None:
        meta = job["metadata"]
        now = datetime.now(UTC)
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": job["apiVersion"],
                "kind": job["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": "jobwarden"},
            "reportingComponent": "jobwarden",
            "reportingInstance": self.instance,
            "firstTimestamp": to_rfc3339(now),
            "lastTimestamp": to_rfc3339(now),
            "count": 1,
        }
        await self.core.create_namespaced_event(meta["namespace"], cast(Any, body))

    async def crd_exists(self, name: str) -> bool:
        try:
            await self.extensions.read_custom_resource_definition(name)
        except ApiException as exc:
            if exc.status in (403, 404):
                return False
            raise
        return True


def status_of(exc: BaseException) -> int | None:
    return exc.status if isinstance(exc, ApiException) else None


def namespace_terminating(exc: BaseException) -> bool:
    """A create refused because the namespace is being deleted (403 NamespaceTerminating)."""
    return status_of(exc) == 403 and "NamespaceTerminating" in reason_of(exc)


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body or "")
        return f"{exc.status} {exc.reason}: {body[:500]}"
    return repr(exc)
