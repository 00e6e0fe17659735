"""Every Kubernetes write the operator makes: raw JSON on the operator's client (`KubeApi.send`).

The operator's handlers are `async def` and share kopf's event loop with the watches and the webhook
server, so a synchronous client here would stall all of them (see docs/benchmarks.md). Reads come
from kopf's watch streams and indices; this module only writes, plus two discovery look-ups."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from jobwarden.core.plan import (
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
from jobwarden.shell.kubeclient import ApiError, KubeClient

logger = logging.getLogger(__name__)
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

PODGROUP_CRD = "{0.plural}.{0.group}".format(
    CHILD_KINDS_BY_NAME["PodGroup"]
)  # podgroups.scheduling.volcano.sh
COMMAND_CRD = f"{COMMAND_KIND.plural}.{COMMAND_KIND.group}"  # commands.bus.volcano.sh
QUEUE_CRD = f"{QUEUE_KIND.plural}.{QUEUE_KIND.group}"  # queues.scheduling.volcano.sh
EVENT_NAME_LIMIT = 253  # a DNS subdomain


def load_config(kubeconfig: str | None) -> KubeClient:
    return KubeClient.connect(kubeconfig)


class KubeApi:
    """Typed, kind-dispatched writes. Callers handle ApiError (see `status_of`). Child writes whose
    answer is not read are checked and dropped unparsed (a created pod's answer was most of the
    generated client's CPU in a burst)."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.instance = socket.gethostname()
        self._last_event_ns = 0

    async def close(self) -> None:
        await self.client.close()

    async def create_child(self, namespace: str, manifest: Manifest) -> None:
        await self.send("POST", child_path(manifest["kind"], namespace), manifest)

    async def replace_child(self, namespace: str, manifest: Manifest) -> None:
        name = manifest["metadata"]["name"]
        await self.send("PUT", child_path(manifest["kind"], namespace, name), manifest)

    async def patch_child(self, namespace: str, patch: Manifest) -> None:
        """A JSON merge patch (`Plan.patch`): everything but apiVersion, kind and metadata.name."""
        kind, name = patch["kind"], patch["metadata"]["name"]
        body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind", "metadata")}
        await self.send("PATCH", child_path(kind, namespace, name), body, "application/merge-patch+json")

    async def read_child(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        """One child as plain JSON (only after a create answered AlreadyExists)."""
        return cast(dict[str, Any], orjson.loads(await self.send("GET", child_path(kind, namespace, name))))

    async def delete_child(self, namespace: str, ref: ChildRef, uid: str | None = None) -> None:
        """Delete by name, and by uid when known: a newer object that took the name is never hit."""
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            options["preconditions"] = {"uid": uid}
        await self.send("DELETE", child_path(ref.kind, namespace, ref.name), options)

    async def delete_command(self, namespace: str, name: str, uid: str | None) -> None:
        """Delete a consumed Command, by uid when known (a new Command that took the name survives)."""
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            options["preconditions"] = {"uid": uid}
        command = COMMAND_KIND
        path = f"/apis/{command.api_version}/namespaces/{namespace}/{command.plural}/{name}"
        await self.send("DELETE", path, options)

    async def replace_status(
        self, resource: Resource, job: Body, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PUT /status with the resourceVersion the plan was computed from: a 409 means the plan is stale."""
        meta = job["metadata"]
        body = {**job, "status": dict(status)}
        path = job_path(resource, meta["namespace"], meta["name"]) + "/status"
        written = cast(dict[str, Any], orjson.loads(await self.send("PUT", path, body)))
        written.get("metadata", {}).pop("managedFields", None)  # as the cache keeps jobs (bodies.py)
        return written

    async def delete_job(self, resource: Resource, job: Body) -> None:
        """Delete a finished job; its children follow through ownerReferences (garbage collector).
        The uid precondition makes sure a job re-created under the same name is never hit, the
        resourceVersion one that the decision (its TTL, its finish time) was read from this version."""
        meta = job["metadata"]
        options = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
            "preconditions": {"uid": meta["uid"], "resourceVersion": meta.get("resourceVersion")},
        }
        await self.send("DELETE", job_path(resource, meta["namespace"], meta["name"]), options)

    async def post_event(self, job: Body, event: Event, at: datetime | None = None) -> None:
        meta = job["metadata"]
        involved = {
            "apiVersion": job["apiVersion"],
            "kind": job["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion"),
        }
        await self._post(involved, event, meta["namespace"], at)

    async def post_cluster_event(self, involved: Mapping[str, str], event: Event, namespace: str) -> None:
        """An event about a cluster-scoped object (e.g. a CRD), in `namespace`: the apiserver accepts
        only `default` for it."""
        await self._post(involved, event, namespace)

    async def _post(
        self, involved: Mapping[str, Any], event: Event, namespace: str, at: datetime | None = None
    ) -> None:
        now = to_rfc3339(at or datetime.now(UTC))
        body = {
            "metadata": {"name": self._event_name(str(involved["name"])), "namespace": namespace},
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
        try:
            await self.send("POST", f"/api/v1/namespaces/{namespace}/events", body)
        except ApiError as exc:
            if exc.status != 409:  # AlreadyExists: our own POST, repeated after a stale connection
                raise

    def _event_name(self, involved: str) -> str:
        """`<object>.<hex nanoseconds>`, as client-go's recorder names events: a named create may be
        sent again after a stale connection (httppool.py), a `generateName` one may not. Unique in
        this process even for events made within one clock tick."""
        self._last_event_ns = max(time.time_ns(), self._last_event_ns + 1)
        return f"{involved[: EVENT_NAME_LIMIT - 17]}.{self._last_event_ns:x}"

    async def send(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> bytes:
        """One request as raw JSON. The generated client's per-call machinery (walking every manifest
        to serialize it, building model objects from the answer) was the largest part of the
        operator's CPU in a burst (docs/benchmarks.md); the answer here is bytes, parsed only by
        callers that read it."""
        return await self.client.request(method, path, body, content_type)

    async def crd_metadata(self, name: str) -> dict[str, Any] | None:
        """The metadata of an installed CRD (labels, annotations); None when it is not installed."""
        try:
            crd = await self.client.get(f"{CRDS}/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return dict(crd["metadata"])

    async def crd_exists(self, name: str) -> bool:
        """Whether a CRD is installed. A 403 is not "absent": it is the operator's RBAC, and saying
        "not installed" would silently change how jobs run, so it is an error that says so."""
        try:
            await self.client.get(f"{CRDS}/{name}")
        except ApiError as exc:
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


def child_path(kind: str, namespace: str, name: str | None = None) -> str:
    child = CHILD_KINDS_BY_NAME[kind]
    base = "/api/v1" if child.api_version == "v1" else f"/apis/{child.api_version}"
    path = f"{base}/namespaces/{namespace}/{child.plural}"
    return f"{path}/{name}" if name else path


def job_path(resource: Resource, namespace: str, name: str) -> str:
    return f"/apis/{resource.group}/{resource.version}/namespaces/{namespace}/{resource.plural}/{name}"


def status_of(exc: BaseException) -> int | None:
    return exc.status if isinstance(exc, ApiError) else None


def namespace_terminating(exc: BaseException) -> bool:
    """A create refused because the namespace is being deleted (403 NamespaceTerminating)."""
    return status_of(exc) == 403 and "NamespaceTerminating" in reason_of(exc)


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        return f"{exc.status} {exc.reason}: {exc.text()}"
    return repr(exc)
