"""The registry of job kinds: one line per kind."""

from __future__ import annotations

from jobwarden.kinds import mxjob, pytorchjob, tfjob, volcano
from jobwarden.kinds.base import JobKind, Resource

REGISTRY: tuple[JobKind, ...] = (
    tfjob.KIND,
    pytorchjob.KIND,
    mxjob.KIND,
    volcano.KIND,
)


def by_plural(group: str, plural: str) -> JobKind | None:
    for kind in REGISTRY:
        if kind.resource.group == group and kind.resource.plural == plural:
            return kind
    return None


def by_kind(api_version: str, kind_name: str) -> JobKind | None:
    for kind in REGISTRY:
        if kind.resource.api_version == api_version and kind.resource.kind == kind_name:
            return kind
    return None


__all__ = ["REGISTRY", "JobKind", "Resource", "by_kind", "by_plural"]
