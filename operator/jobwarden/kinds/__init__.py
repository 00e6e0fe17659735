"""The registry of job kinds: one line per kind (per family for Kubeflow's)."""

from __future__ import annotations

from jobwarden.kinds import kubeflow, volcano
from jobwarden.kinds.base import JobKind, Resource
from jobwarden.kinds.kubeflow import KubeflowKind, MpiJobKind

# The Kubeflow frameworks are listed in their family's own registry (kubeflow.FRAMEWORKS).
REGISTRY: tuple[JobKind, ...] = (
    *kubeflow.FRAMEWORKS,
    kubeflow.MPIJOB,
    volcano.KIND,
)


def registry(allow_suspend_updates: bool = False) -> tuple[JobKind, ...]:
    """The kinds as the operator's settings shape their admission: with `allow_suspend_updates`
    (`--allow-suspend-updates`), the Kubeflow kinds' update contract also lets
    `spec.runPolicy.suspend` change (MPIJob's too)."""
    if not allow_suspend_updates:
        return REGISTRY
    return tuple(
        k.allowing_suspend_updates() if isinstance(k, (KubeflowKind, MpiJobKind)) else k for k in REGISTRY
    )


def by_plural(group: str, plural: str, among: tuple[JobKind, ...] = REGISTRY) -> JobKind | None:
    for kind in among:
        if kind.resource.group == group and kind.resource.plural == plural:
            return kind
    return None


def by_kind(api_version: str, kind_name: str, among: tuple[JobKind, ...] = REGISTRY) -> JobKind | None:
    for kind in among:
        if kind.resource.api_version == api_version and kind.resource.kind == kind_name:
            return kind
    return None


__all__ = ["REGISTRY", "JobKind", "Resource", "by_kind", "by_plural", "registry"]
