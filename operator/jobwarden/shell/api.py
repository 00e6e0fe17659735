"""Every Kubernetes write the operator makes, on kubernetes_asyncio.

The operator's handlers are `async def` and share kopf's event loop with the watches and the webhook
server, so a synchronous client here would stall all of them (see docs/benchmarks.md). Reads come
from kopf's watch streams and indices; this module only writes, plus two discovery look-ups."""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.client.rest import RESTResponse

from jobwarden.core.plan import (
    CHILD_KINDS,
    CHILD_KINDS_BY_NAME,
    COMMAND_KIND,
    QUEUE_KIND,
    Body,
    ChildRef,
    Event,
    Manifest,
)
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
COMMAND_CRD = f"{COMMAND_KIND.plural}.{COMMAND_KIND.group}"  # commands.bus.volcano.sh
QUEUE_CRD = f"{QUEUE_KIND.plural}.{QUEUE_KIND.group}"  # queues.scheduling.volcano.sh


async def load_config(kubeconfig: str | None) -> client.ApiClient:
    if kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        await config.load_kube_config(config_file=kubeconfig)
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


class KubeApi:
    """Typed, kind-dispatched writes. Callers handle ApiException (see `status_of`).

    Child writes whose answer is not read are sent with `_preload_content=False`: the response is
    checked and dropped without building model objects (a created pod's V1Pod was most of the
    client's CPU in a burst). The session does not consult proxy variables or ~/.netrc on every
    request (aiohttp's trust_env, which kubernetes_asyncio turns on, does that in a thread per call);
    the API server is reached directly, as with kopf's own session."""

    def __init__(self, api_client: client.ApiClient) -> None:
        session = api_client.rest_client.pool_manager
        session._trust_env = False  # no public setter; see the class docstring
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
            method = getattr(self.core, f"create_namespaced_{_CORE_KINDS[kind]}")
            await _unread(method(namespace, manifest, _preload_content=False))
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

    async def patch_child(self, namespace: str, patch: Manifest) -> None:
        """A JSON merge patch (`Plan.patch`): everything but apiVersion, kind and metadata.name."""
        kind, name = patch["kind"], patch["metadata"]["name"]
        body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind", "metadata")}
        merge = "application/merge-patch+json"
        if kind in _CORE_KINDS:
            method = getattr(self.core, f"patch_namespaced_{_CORE_KINDS[kind]}")
            await _unread(method(name, namespace, body, _content_type=merge, _preload_content=False))
        else:
            group, version, plural = _CUSTOM_KINDS[kind]
            custom: Any = self.custom  # the stubs omit `_content_type`, which the client accepts
            await custom.patch_namespaced_custom_object(
                group, version, namespace, plural, name, body, _content_type=merge
            )

    async def read_child(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        """One child as plain JSON (only after a create answered AlreadyExists)."""
        if kind in _CORE_KINDS:
            method = getattr(self.core, f"read_namespaced_{_CORE_KINDS[kind]}")
            found = await method(name, namespace)
            return cast(dict[str, Any], self.api_client.sanitize_for_serialization(found))
        group, version, plural = _CUSTOM_KINDS[kind]
        result = await self.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
        return cast(dict[str, Any], result)

    async def delete_child(self, namespace: str, ref: ChildRef, uid: str | None = None) -> None:
        """Delete by name, and by uid when known: a newer object that took the name is never hit."""
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid) if uid else None)
        if ref.kind in _CORE_KINDS:
            method = getattr(self.core, f"delete_namespaced_{_CORE_KINDS[ref.kind]}")
            await _unread(method(ref.name, namespace, body=options, _preload_content=False))
        else:
            group, version, plural = _CUSTOM_KINDS[ref.kind]
            await self.custom.delete_namespaced_custom_object(
                group, version, namespace, plural, ref.name, body=options
            )

    async def delete_command(self, namespace: str, name: str, uid: str | None) -> None:
        """Delete a consumed Command, by uid when known (a new Command that took the name survives)."""
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid) if uid else None)
        await self.custom.delete_namespaced_custom_object(
            COMMAND_KIND.group, COMMAND_KIND.version, namespace, COMMAND_KIND.plural, name, body=options
        )

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
        The uid precondition makes sure a job re-created under the same name is never hit, the
        resourceVersion one that the decision (its TTL, its finish time) was read from this version."""
        meta = job["metadata"]
        preconditions = client.V1Preconditions(uid=meta["uid"], resource_version=meta.get("resourceVersion"))
        options = client.V1DeleteOptions(propagation_policy="Background", preconditions=preconditions)
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
        await _unread(
            self.core.create_namespaced_event(meta["namespace"], cast(Any, body), _preload_content=False)
        )

    async def crd_labels(self, name: str) -> dict[str, str] | None:
        """The labels of an installed CRD; None when it is not installed."""
        try:
            crd = await self.extensions.read_custom_resource_definition(name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(crd.metadata.labels or {})

    async def post_cluster_event(self, involved: Mapping[str, str], event: Event, namespace: str) -> None:
        """An event about a cluster-scoped object (e.g. a CRD), in `namespace`."""
        now = to_rfc3339(datetime.now(UTC))
        body = {
            "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
            "involvedObject": dict(involved),
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": "jobwarden"},
            "reportingComponent": "jobwarden",
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await _unread(self.core.create_namespaced_event(namespace, cast(Any, body), _preload_content=False))

    async def crd_exists(self, name: str) -> bool:
        """Whether a CRD is installed. A 403 is not "absent": it is the operator's RBAC, and saying
        "not installed" would silently change how jobs run, so it is an error that says so."""
        try:
            await self.extensions.read_custom_resource_definition(name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            if exc.status == 403:
                raise PermissionError(
                    f"cannot tell whether the CRD {name} is installed: the operator may not read "
                    "customresourcedefinitions (grant get on apiextensions.k8s.io/customresourcedefinitions "
                    f"as manifests/base/rbac.yaml does): {reason_of(exc)}"
                ) from exc
            raise
        return True


async def _unread(call: Awaitable[Any]) -> None:
    """Await a `_preload_content=False` call: raise ApiException on an error status, else drop the
    body unread into model objects."""
    response = await call
    async with response:
        data = await response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=cast(Any, RESTResponse(response, data)))


def controller_uid_of(body: Mapping[str, Any]) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


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
