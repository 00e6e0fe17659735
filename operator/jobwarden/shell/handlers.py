"""kopf wiring: which resources are watched and indexed, and what each handler does (read, hand to
the controller, return). Handlers are registered into an explicit registry built at start-up, so
optional resources (Volcano's PodGroup) are only watched when their CRD exists."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import kopf

from jobwarden import kinds
from jobwarden.core.plan import CHILD_KINDS, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from jobwarden.kinds.base import JobKind
from jobwarden.shell import webhook
from jobwarden.shell.bodies import plain_body
from jobwarden.shell.controller import Controller

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


def index_id(child_kind: str) -> str:
    return f"{child_kind.lower()}s_by_owner"


def slim(body: kopf.Body) -> dict[str, Any]:
    """What the core needs of a child, without managedFields (indices stay small)."""
    meta = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    kept = {k: body[k] for k in ("apiVersion", "kind", "spec", "status", "data") if k in body}
    return plain_body({**kept, "metadata": meta})


def controller_uid(body: kopf.Body) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref["uid"])
    return None


def register(
    registry: kopf.OperatorRegistry,
    settings: kopf.OperatorSettings,
    controller: Controller,
    *,
    watch_podgroups: bool,
    admission: bool,
) -> None:
    children = {**CHILD_RESOURCES, **(CRD_CHILD_RESOURCES if watch_podgroups else {})}
    for child_kind, (api_version, plural) in children.items():
        _register_child(registry, settings, controller, child_kind, api_version, plural)
    for kind in kinds.REGISTRY:
        _register_kind(registry, controller, kind, list(children), admission)


def _register_child(
    registry: kopf.OperatorRegistry,
    settings: kopf.OperatorSettings,
    controller: Controller,
    child_kind: str,
    api_version: str,
    plural: str,
) -> None:
    group, _, version = api_version.rpartition("/")
    resource = (group, version, plural) if group else (version, plural)
    # Server-side filtering: the watch stream only carries jobwarden's own children.
    settings.watching.label_selectors[resource] = MANAGED_SELECTOR

    async def index_by_owner(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
        uid = controller_uid(body)
        # `{}`, not None: kopf keeps an object's old entries when an indexer returns None, so a child
        # whose ownerReference was removed would stay counted under its former job.
        return {uid: slim(body)} if uid else {}

    async def on_child_event(body: kopf.Body, **_: Any) -> None:
        controller.observe_child(body)

    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}
    kopf.index(*resource, id=index_id(child_kind), labels=labels, registry=registry)(index_by_owner)
    kopf.on.event(*resource, id=f"{plural}-event", labels=labels, registry=registry)(on_child_event)


def _register_kind(
    registry: kopf.OperatorRegistry,
    controller: Controller,
    kind: JobKind,
    child_kinds: list[str],
    admission: bool,
) -> None:
    r = kind.resource
    on_job_event = _job_event_handler(controller, kind, child_kinds)
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
        )(cast(Any, webhook.validate))


def _job_event_handler(controller: Controller, kind: JobKind, child_kinds: list[str]) -> Callable[..., Any]:
    async def on_job_event(body: kopf.Body, type: str | None, **kwargs: Any) -> None:
        if not controller.indices:
            # kopf fills every index before any other handler runs; keep live references to them.
            controller.indices = {ck: kwargs[index_id(ck)] for ck in child_kinds}
        controller.observe_job(kind, plain_body(body), type)

    return on_job_event
