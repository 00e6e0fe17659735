"""Wiring: kopf watches the job kinds and serves the webhook; the children (pods, services,
configmaps, and Volcano's podgroups when their CRD exists) are watched by lean streams
(shell/childwatch.py). Every handler only reads, hands to the controller and returns."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import kopf

from jobwarden import kinds
from jobwarden.core.plan import CHILD_KINDS, COMMAND_KIND, MANAGED_BY_LABEL, MANAGED_BY_VALUE, QUEUE_KIND
from jobwarden.kinds.base import JobKind
from jobwarden.shell import webhook
from jobwarden.shell.bodies import plain_body
from jobwarden.shell.childwatch import ChildIndex, ChildResource, ChildWatch, NameIndex, target_uid
from jobwarden.shell.controller import Controller
from jobwarden.shell.kubeclient import KubeClient

logger = logging.getLogger(__name__)

# Child kind -> (group/version, plural) of the watched resource, from the core's table.
CHILD_RESOURCES: dict[str, tuple[str, str]] = {
    c.kind: (c.api_version, c.plural) for c in CHILD_KINDS if c.watched and not c.needs_crd
}
# Watched only when their CRD is installed (Volcano's PodGroup).
CRD_CHILD_RESOURCES: dict[str, tuple[str, str]] = {
    c.kind: (c.api_version, c.plural) for c in CHILD_KINDS if c.watched and c.needs_crd
}
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"


def child_resources(watch_podgroups: bool) -> list[ChildResource]:
    children = {**CHILD_RESOURCES, **(CRD_CHILD_RESOURCES if watch_podgroups else {})}
    return [ChildResource(kind, api_version, plural) for kind, (api_version, plural) in children.items()]


def child_watches(
    client: KubeClient, controller: Controller, namespaces: tuple[str, ...], watch_podgroups: bool
) -> list[ChildWatch]:
    """One lean list+watch per child kind (and per namespace in the namespaced mode), feeding the
    controller's indices; kopf is not involved (shell/childwatch.py says why)."""
    watches = []
    for resource in child_resources(watch_podgroups):
        index = ChildIndex()
        controller.indices = {**controller.indices, resource.kind: index}
        for namespace in namespaces or (None,):
            watches.append(
                ChildWatch(client, resource, MANAGED_SELECTOR, namespace, index, controller.observe_child)
            )
    return watches


def command_watches(
    client: KubeClient, controller: Controller, namespaces: tuple[str, ...]
) -> list[ChildWatch]:
    """Volcano's Commands (only when their CRD is installed), indexed by their target job's uid. They
    carry no label of ours (vcctl or a user makes them): every Command is listed."""
    resource = ChildResource(COMMAND_KIND.kind, COMMAND_KIND.api_version, COMMAND_KIND.plural)
    index = controller.commands = ChildIndex(owner_of=target_uid)
    return [
        ChildWatch(client, resource, "", namespace, index, controller.observe_command)
        for namespace in namespaces or (None,)
    ]


def queue_watch(client: KubeClient, controller: Controller) -> ChildWatch:
    """Volcano's Queues (cluster-scoped; only when their CRD is installed), by name."""
    resource = ChildResource(QUEUE_KIND.kind, QUEUE_KIND.api_version, QUEUE_KIND.plural)
    index = controller.queues = NameIndex()
    return ChildWatch(client, resource, "", None, index, controller.observe_queue)


def register(
    registry: kopf.OperatorRegistry,
    controller: Controller,
    *,
    admission: bool,
    job_kinds: tuple[JobKind, ...] = kinds.REGISTRY,
    skip: tuple[JobKind, ...] = (),
) -> None:
    """`job_kinds`: the registry as the settings shaped it (`kinds.registry`, e.g. with suspend
    updates). Those in `skip` (Volcano's, when Volcano serves them) are neither watched nor checked:
    the webhook configuration may still send their reviews, which are allowed as they are (Volcano's
    own webhook judges them)."""
    skipped = {k.resource for k in skip}
    for kind in job_kinds:
        _register_kind(registry, controller, kind, admission, reconcile=kind.resource not in skipped)


def _register_kind(
    registry: kopf.OperatorRegistry,
    controller: Controller,
    kind: JobKind,
    admission: bool,
    reconcile: bool = True,
) -> None:
    r = kind.resource
    if reconcile:
        on_job_event = _job_event_handler(controller, kind)
        kopf.on.event(r.group, r.version, r.plural, id=f"{r.plural}.{r.group}-event", registry=registry)(
            on_job_event
        )
    if admission:
        kopf.on.validate(
            r.group,
            r.version,
            r.plural,
            id=webhook.HANDLER_ID,
            operations=["CREATE", "UPDATE"],
            registry=registry,
        )(cast(Any, webhook.validate if reconcile else _allow))


async def _allow(**_: Any) -> None:
    """The admission of a kind jobwarden stands aside for: everything is allowed."""


def _job_event_handler(controller: Controller, kind: JobKind) -> Callable[..., Any]:
    async def on_job_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        controller.observe_job(kind, plain_body(body), type)

    return on_job_event
