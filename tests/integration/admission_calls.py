"""Small helpers for the admission tests that go through the real apiserver: read-modify-write with a
retry on the optimistic lock only, dry-run replaces, and the message a refusal carries."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from devcluster.cluster import Cluster
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from testlib import wait_for

Body = dict[str, Any]
ATTEMPTS = 20


@dataclass(frozen=True)
class Res:
    group: str
    version: str
    plural: str
    seed: str


TFJOBS = Res("kubeflow.org", "v1", "tfjobs", "tfjob-put.request.json")
PYTORCHJOBS = Res("kubeflow.org", "v1", "pytorchjobs", "pytorchjob-put.request.json")
MXJOBS = Res("kubeflow.org", "v1", "mxjobs", "mxjob-put.request.json")
VOLCANOJOBS = Res("batch.volcano.sh", "v1alpha1", "jobs", "volcanojob-put.request.json")


@dataclass(frozen=True)
class Outcome:
    status: int  # 200 allowed, else the apiserver's answer
    message: str

    @property
    def allowed(self) -> bool:
        return self.status == 200


def message_of(exc: ApiException) -> str:
    raw = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body or "")
    try:
        return str(json.loads(raw).get("message", raw))
    except ValueError:
        return raw


def is_lock_conflict(exc: ApiException) -> bool:
    return exc.status == 409 and "the object has been modified" in message_of(exc)


def get(custom: client.CustomObjectsApi, res: Res, namespace: str, name: str) -> Body:
    body = custom.get_namespaced_custom_object(res.group, res.version, namespace, res.plural, name)
    assert isinstance(body, dict)
    return body


def replace(
    custom: client.CustomObjectsApi,
    res: Res,
    namespace: str,
    name: str,
    change: Callable[[Body], object],
    dry_run: bool = False,
) -> Outcome:
    """PUT the stored object with `change` applied; a 409 from the optimistic lock (the operator wrote
    status in between) is retried with a fresh read, any other answer is returned."""
    for _ in range(ATTEMPTS):
        body = copy.deepcopy(get(custom, res, namespace, name))
        change(body)
        try:
            custom.replace_namespaced_custom_object(
                res.group, res.version, namespace, res.plural, name, body, dry_run="All" if dry_run else None
            )
            return Outcome(200, "")
        except ApiException as exc:
            if not is_lock_conflict(exc):
                return Outcome(exc.status, message_of(exc))
    raise AssertionError(f"{res.plural}/{name}: still conflicting after {ATTEMPTS} attempts")


def merge_patch(custom: client.CustomObjectsApi, res: Res, namespace: str, name: str, patch: Body) -> Outcome:
    try:
        custom.patch_namespaced_custom_object(res.group, res.version, namespace, res.plural, name, patch)
        return Outcome(200, "")
    except ApiException as exc:
        return Outcome(exc.status, message_of(exc))


@contextmanager
def webhook_configuration_removed(cluster: Cluster, webhook_answers: Callable[[], bool]) -> Iterator[None]:
    """Take jobwarden's ValidatingWebhookConfiguration away (as before jobwarden was installed, or
    before a rule existed) and put the very same one back afterwards. `webhook_answers` tells whether
    the webhook is registered: awaited false after the delete, true again after the restore."""
    saved = json.loads(
        cluster.kubectl("get", "validatingwebhookconfiguration", "jobwarden", "-o", "json").stdout
    )
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        saved["metadata"].pop(key, None)
    cluster.kubectl("delete", "validatingwebhookconfiguration", "jobwarden")
    try:
        wait_for(lambda: not webhook_answers(), 30, what="the webhook to be unregistered")
        yield
    finally:
        cluster.kubectl("create", "-f", "-", input=json.dumps(saved))
        wait_for(webhook_answers, 30, what="the webhook to be registered again")
