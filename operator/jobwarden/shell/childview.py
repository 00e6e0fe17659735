"""The controller's view of a job's children: the watch's indices (kopf), corrected for what the watch
has not caught up with yet. Plans are made from this view, never from the indices alone.

- Expectations (as upstream controllers keep them): a child this process created is shown as the
  manifest sent until the watch shows it (or EXPECT_SECONDS pass). A pass right after the creates (the
  fencing status write's own event queues one) would otherwise create it again and earn a 409 and a GET.
- Tombstones: a child (or a Volcano Command) whose deletion this process issued is shown as
  terminating for TOMBSTONE_SECONDS. The watch lags the DELETE: until it catches up the child is
  neither counted again nor its name reused, and a Command is never carried out twice.
- Unwatched kinds (Secrets): no index holds them, so the ones created here, or found already there
  and controlled by the job, are remembered as minimal bodies. What this process remembers starts
  empty, so each job's unwatched children (`JobKind.unwatched_children`) are looked up by name once
  per job and process before its first plan (`looked_up`/`found`): a Secret made before a restart is
  seen, kept and removed like any other child (issue 27: one leaked when only status recorded it).
- Grandchildren: the pods of a batch Job the job controls (MPIJob's launcher) are shown among the
  job's pods (their controller is the Job, not the job)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from jobwarden.core.plan import Body, Manifest
from jobwarden.core.timefmt import to_rfc3339

ChildIndices = Mapping[str, Any]  # child kind -> index with get(owner uid) -> list of slim bodies

# How long a child whose deletion we issued is shown to plans as terminating while the watch catches up.
TOMBSTONE_SECONDS = 120.0
EXPECT_SECONDS = 30.0  # a created child the watch has not shown by then is planned from the index again


class ChildView:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.indices: ChildIndices = {}
        self._clock = clock
        # object uid -> monotonic expiry, oldest first: all live TOMBSTONE_SECONDS, so the expired ones
        # are at the front and a pass drops them without walking the rest (a profile at 20 jobs/s found
        # 7 % of the event loop's time in rebuilding this map on every pass)
        self._tombstones: OrderedDict[str, float] = OrderedDict()
        # job uid -> kind -> name -> minimal body
        self._unwatched: dict[str, dict[str, dict[str, Body]]] = {}
        # job uid -> kind -> name -> (the manifest created, monotonic expiry)
        self._expected: dict[str, dict[str, dict[str, tuple[Body, float]]]] = {}
        self._looked_up: set[str] = set()  # job uids whose unwatched children were looked up

    def children_of(self, job_uid: str) -> dict[str, dict[str, Body]]:
        """kind -> name -> body, as plans must see them."""
        now = time.monotonic()
        self._drop_expired_tombstones(now)
        children: dict[str, dict[str, Body]] = {}
        for child_kind, index in self.indices.items():
            store = index.get(job_uid) if hasattr(index, "get") else None
            children[child_kind] = {c["metadata"]["name"]: self._as_seen(c) for c in (store or [])}
        self._add_pods_of_child_jobs(children)
        for child_kind, known in self._unwatched.get(job_uid, {}).items():
            children.setdefault(child_kind, {}).update(known)
        for child_kind, expected in list(self._expected.get(job_uid, {}).items()):
            for name, (manifest, expiry) in list(expected.items()):
                if expiry < now or name in children.get(child_kind, {}):
                    del expected[name]
                else:
                    children.setdefault(child_kind, {})[name] = manifest
        return children

    def _add_pods_of_child_jobs(self, children: dict[str, dict[str, Body]]) -> None:
        """The pods of a batch Job the job controls (MPIJob's launcher, made by the Job controller and
        labelled managed-by=jobwarden through the Job's template) are shown with the job's own pods:
        the plan reads their phases and failure reasons as upstream does."""
        pods = self.indices.get("Pod")
        if pods is None or not children.get("Job"):
            return
        for job in children["Job"].values():
            uid = (job.get("metadata") or {}).get("uid")
            for pod in (pods.get(str(uid)) if uid else None) or []:
                children.setdefault("Pod", {})[pod["metadata"]["name"]] = self._as_seen(pod)

    def created(self, job: Body, manifest: Manifest) -> bool:
        """The child exists now (created, or found ours). Returns True when no watch will show it
        (an unwatched kind): the next pass must be queued by the caller."""
        if manifest["kind"] in self.indices:
            self._expect(job, manifest)
            return False
        self.found(job, {**manifest, "metadata": {**manifest["metadata"], "uid": None}})
        return True

    def looked_up(self, job_uid: str) -> bool:
        """Whether this job's unwatched children were looked up (or made) by this process."""
        return job_uid in self._looked_up

    def mark_looked_up(self, job_uid: str) -> None:
        self._looked_up.add(job_uid)

    def found(self, job: Body, child: Body) -> None:
        """An unwatched child that exists and the job controls: shown to plans from now on, as a
        minimal body (its uid, when known, is the precondition of its delete)."""
        meta = child["metadata"]
        known = self._unwatched.setdefault(str(job["metadata"]["uid"]), {}).setdefault(child["kind"], {})
        kept = {k: meta[k] for k in ("uid", "labels", "ownerReferences") if meta.get(k)}
        known[meta["name"]] = {
            "apiVersion": child.get("apiVersion"),
            "kind": child["kind"],
            "metadata": {"name": meta["name"], "namespace": job["metadata"]["namespace"], **kept},
        }

    def deleted(self, job: Body, child_kind: str, name: str, uid: str | None) -> None:
        """Our DELETE of it was answered (or it was gone already)."""
        if uid:
            self.tombstone(uid)
        known = self._unwatched.get(str(job["metadata"]["uid"]), {}).get(child_kind)
        if known is not None:
            known.pop(name, None)

    def tombstone(self, uid: str) -> None:
        self._tombstones[uid] = time.monotonic() + TOMBSTONE_SECONDS
        self._tombstones.move_to_end(uid)  # a uid tombstoned again keeps the order by expiry

    def tombstoned(self, uid: str | None) -> bool:
        return uid in self._tombstones

    def seen(self, job_uid: str, child_kind: str, name: str) -> None:
        """The watch shows this child (any event): the index is its truth from now on."""
        expected = self._expected.get(job_uid)
        if expected is None:
            return
        expected.get(child_kind, {}).pop(name, None)
        if not any(expected.values()):
            del self._expected[job_uid]

    def forget(self, job_uid: str) -> None:
        """The job is gone."""
        self._unwatched.pop(job_uid, None)
        self._expected.pop(job_uid, None)
        self._looked_up.discard(job_uid)

    def _drop_expired_tombstones(self, now: float) -> None:
        while self._tombstones:
            uid, expiry = next(iter(self._tombstones.items()))
            if expiry > now:
                return
            del self._tombstones[uid]

    def _expect(self, job: Body, manifest: Manifest) -> None:
        meta = {**manifest["metadata"], "namespace": job["metadata"]["namespace"]}
        expected = self._expected.setdefault(str(job["metadata"]["uid"]), {}).setdefault(manifest["kind"], {})
        expected[meta["name"]] = ({**manifest, "metadata": meta}, time.monotonic() + EXPECT_SECONDS)

    def _as_seen(self, child: Body) -> Body:
        meta = child["metadata"]
        if meta.get("uid") not in self._tombstones or meta.get("deletionTimestamp"):
            return child
        return {**child, "metadata": {**meta, "deletionTimestamp": to_rfc3339(self._clock())}}
