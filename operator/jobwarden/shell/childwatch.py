"""Lean list+watch streams for the children jobwarden creates (pods, services, configmaps, podgroups,
MPIJob's launcher Jobs, ...: `core/plan.py` CHILD_KINDS).

kopf watches the job kinds (their handlers and the webhook stay kopf's). For the children, kopf's
per-event machinery (cause detection, deep copies for diff-bases and progress storage, an INFO log
line per handler run) cost about a third of the operator's CPU in a burst (docs/benchmarks.md), for
~19 child events per job that only need to (1) update an index by owner uid and (2) enqueue the
owner. This module does exactly that on raw JSON: a paginated list, then a watch from its
resourceVersion with bookmarks, a relist on 410 Gone, and a capped, jittered backoff (0.5 s .. 2 s)
on errors. An unreachable apiserver (or one answering 5xx/429 while it starts) is logged once for all
the streams, WARNING when the first fails and INFO when the last lists again (shell/outage.py).

Server-side filtered by `app.kubernetes.io/managed-by=jobwarden`; one stream per namespace in the
namespaced mode. The index keeps what the core reads (`slim`), without managedFields."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from jobwarden.core.plan import Body
from jobwarden.shell import outage
from jobwarden.shell.kubeclient import ApiError, KubeClient

logger = logging.getLogger(__name__)

BACKOFFS = (0.5, 1.0, 1.5, 2.0)  # then 2 s: back within 2 s of the apiserver (each drawn from [d/2, d])
WATCH_TIMEOUT_SECONDS = 300
PAGE = 500


@dataclass(frozen=True)
class ChildResource:
    kind: str
    api_version: str  # "v1" or "group/version"
    plural: str

    def path(self, namespace: str | None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{base}/namespaces/{namespace}/{self.plural}" if namespace else f"{base}/{self.plural}"


# Of a pod's spec the core reads nothing (it plans from the job's templates and the pods' metadata and
# status); pods are never replaced from the cache. The containers, env and volumes were most of the
# ~200 KB per job the operator held after a burst (docs/benchmarks.md). Services, ConfigMaps and
# PodGroups keep their spec: a changed one is replaced from the cached body.
POD_SPEC_KEPT = ("nodeName", "schedulerName", "restartPolicy")
JOB_SPEC_DROPPED = ("template", "selector")


def slim(body: Body) -> dict[str, Any]:
    """What the core needs of a child, without managedFields (indices stay small)."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    kept = {
        k: body[k] for k in ("apiVersion", "kind", "spec", "status", "data", "action", "target") if k in body
    }
    if body.get("kind") == "Pod" and isinstance(kept.get("spec"), dict):
        kept["spec"] = {k: v for k, v in kept["spec"].items() if k in POD_SPEC_KEPT}
    elif body.get("kind") == "Job" and isinstance(kept.get("spec"), dict):
        # A launcher Job is patched, never replaced: its pod template is not read back.
        kept["spec"] = {k: v for k, v in kept["spec"].items() if k not in JOB_SPEC_DROPPED}
    return {**kept, "metadata": meta}


def controller_uid(body: Body) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def target_uid(body: Body) -> str | None:
    """The job a Volcano Command is aimed at (`target.uid`)."""
    uid = (body.get("target") or {}).get("uid")
    return str(uid) if uid else None


class ChildIndex:
    """Children by their controller owner's uid: `get(owner_uid)` lists their slim bodies (the shape
    the controller read from kopf's indices). `owner_of` says whose an object is (Commands: their
    target's uid).

    One index per child kind is shared by the streams of every watched namespace, so it knows each
    child's namespace: a stream's list replaces what it holds of its own namespace only (`uids`)."""

    def __init__(self, owner_of: Callable[[Body], str | None] = controller_uid) -> None:
        self.owner_of = owner_of
        self._by_owner: dict[str, dict[str, dict[str, Any]]] = {}
        self._owner_of: dict[str, str] = {}  # child uid -> owner uid
        self._namespace_of: dict[str, str] = {}  # child uid -> its namespace

    def get(self, owner_uid: str, default: Any = None) -> list[dict[str, Any]] | Any:
        children = self._by_owner.get(owner_uid)
        return list(children.values()) if children else default

    def __len__(self) -> int:
        return len(self._owner_of)

    def put(self, body: Body) -> None:
        uid = str(body["metadata"]["uid"])
        self.remove(uid)
        owner = self.owner_of(body)
        if owner is not None:  # a child whose ownerReference was removed leaves its former job's index
            self._by_owner.setdefault(owner, {})[uid] = slim(body)
            self._owner_of[uid] = owner
            self._namespace_of[uid] = str(body["metadata"].get("namespace") or "")

    def remove(self, uid: str) -> dict[str, Any] | None:
        """Drop a child; returns its last body (None when it was not held)."""
        owner = self._owner_of.pop(uid, None)
        self._namespace_of.pop(uid, None)
        if owner is None:
            return None
        children = self._by_owner.get(owner, {})
        removed = children.pop(uid, None)
        if not children:
            self._by_owner.pop(owner, None)
        return removed

    def uids(self, namespace: str | None = None) -> Iterator[str]:
        """The children held, of `namespace` only when one is given."""
        if namespace is None:
            return iter(list(self._owner_of))
        return iter([uid for uid, ns in self._namespace_of.items() if ns == namespace])


class NameIndex:
    """Cluster-scoped objects by name (Volcano's Queues), for `ChildWatch`."""

    def __init__(self) -> None:
        self.by_name: dict[str, dict[str, Any]] = {}
        self._name_of: dict[str, str] = {}  # uid -> name

    def put(self, body: Body) -> None:
        meta = body["metadata"]
        self.remove(str(meta["uid"]))
        self.by_name[str(meta["name"])] = slim(body)
        self._name_of[str(meta["uid"])] = str(meta["name"])

    def remove(self, uid: str) -> dict[str, Any] | None:
        name = self._name_of.pop(uid, None)
        return self.by_name.pop(name, None) if name is not None else None

    def uids(self, namespace: str | None = None) -> Iterator[str]:
        del namespace  # cluster-scoped: one stream holds them all
        return iter(list(self._name_of))


class ChildWatch:
    """One list+watch stream; `ready` is set once the first list is in the index."""

    def __init__(
        self,
        client: KubeClient,
        resource: ChildResource,
        selector: str,
        namespace: str | None,
        index: ChildIndex | NameIndex,
        on_event: Callable[[Body], None],
        reachability: outage.Outage | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.selector = selector
        self.namespace = namespace
        self.index = index
        self.on_event = on_event
        self.ready = asyncio.Event()
        self.outage = reachability or WATCHES
        self.member = f"{resource.plural} in {namespace or 'all namespaces'}"

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                version = await self._list()
                self.outage.succeeded(self.member)
                self.ready.set()
                failures = 0
                while version:
                    version = await self._watch(version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the stream is not allowed to die: retry, capped at 2 s
                if isinstance(exc, ApiError) and exc.status == 401:
                    self.client.refresh()  # a rotated service-account token
                delay = BACKOFFS[min(failures, len(BACKOFFS) - 1)] * random.uniform(0.5, 1.0)
                failures += 1
                if _transient(exc):
                    self.outage.failed(exc, self.member)
                else:
                    logger.warning("watching %s failed (%r); again in %.1fs", self.member, exc, delay)
                await asyncio.sleep(delay)

    def _request(self, query: dict[str, Any], timeout: aiohttp.ClientTimeout) -> Any:
        """A GET answered as raw JSON: no model classes, no copies."""
        return self.client.stream(self.resource.path(self.namespace) + "?" + urlencode(query), timeout)

    async def _list(self) -> str:
        """The full set (paginated) of this stream's namespace; children of it gone since the last
        list are removed and announced (their owner is enqueued like on a DELETED event: a job whose
        pods vanished during a watch gap must see it). Other namespaces' children in the shared
        index are not this stream's to judge."""
        seen: dict[str, dict[str, Any]] = {}
        token, version = "", ""
        while True:
            query: dict[str, Any] = {"labelSelector": self.selector, "limit": PAGE}
            if token:
                query["continue"] = token
            async with self._request(query, aiohttp.ClientTimeout(total=60)) as response:
                _raise_for(response.status, await response.read() if response.status >= 300 else b"")
                page = orjson.loads(await response.read())
            for item in page.get("items") or []:
                item.setdefault("kind", self.resource.kind)
                item.setdefault("apiVersion", self.resource.api_version)
                seen[item["metadata"]["uid"]] = item
            token = (page.get("metadata") or {}).get("continue") or ""
            version = (page.get("metadata") or {}).get("resourceVersion") or ""
            if not token:
                break
        for uid in self.index.uids(self.namespace):
            if uid not in seen:
                removed = self.index.remove(uid)
                if removed is not None:
                    self.on_event(removed)
        for item in seen.values():
            self.index.put(item)
            self.on_event(item)
        return version

    async def _watch(self, version: str) -> str:
        """One watch request; returns the resourceVersion to resume from, "" to relist (410)."""
        query = {
            "labelSelector": self.selector,
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": WATCH_TIMEOUT_SECONDS,
        }
        # The server ends the watch after timeoutSeconds; a read stalled past that is a dead stream.
        stalled = aiohttp.ClientTimeout(total=None, sock_read=WATCH_TIMEOUT_SECONDS + 30)
        async with self._request(query, stalled) as response:
            _raise_for(response.status, await response.read() if response.status >= 300 else b"")
            async for line in response.content:
                if not line.strip():
                    continue
                event = orjson.loads(line)
                kind, body = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if body.get("code") == 410:
                        return ""  # too old: relist
                    raise RuntimeError(f"watch error: {body.get('message')}")
                version = (body.get("metadata") or {}).get("resourceVersion") or version
                if kind == "BOOKMARK":
                    continue
                body.setdefault("kind", self.resource.kind)
                body.setdefault("apiVersion", self.resource.api_version)
                if kind == "DELETED":
                    self.index.remove(str(body["metadata"]["uid"]))
                else:
                    self.index.put(body)
                self.on_event(body)
        return version


WATCHES = outage.Outage("watching children")  # every stream's, by default


def _transient(exc: BaseException) -> bool:
    """The apiserver is away or not ready yet (it answers 5xx and 429 while it starts)."""
    return outage.unreachable(exc) or (isinstance(exc, ApiError) and (exc.status >= 500 or exc.status == 429))


def _raise_for(status: int, body: bytes) -> None:
    if status >= 300:
        raise ApiError(status, "list or watch refused", body[:300])
