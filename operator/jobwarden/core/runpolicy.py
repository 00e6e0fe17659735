"""The Kubeflow run policy, read from either layout.

The seeds (2019-era operators) put `cleanPodPolicy`, `ttlSecondsAfterFinished`,
`activeDeadlineSeconds` and `backoffLimit` directly under `spec`; current Kubeflow nests them under
`spec.runPolicy`. Both are accepted. Admission refuses a job that sets one field in both places to
different values; where both hold the same value, or only one is set, that value is used."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RUN_POLICY_FIELDS = ("cleanPodPolicy", "ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit")
CLEAN_POD_POLICIES = ("All", "Running", "None")


@dataclass(frozen=True)
class RunPolicy:
    clean_pod_policy: str | None = None  # None: the kind's default applies
    ttl_seconds_after_finished: int | None = None
    active_deadline_seconds: int | None = None
    backoff_limit: int | None = None
    suspend: bool = False


def _field(spec: Mapping[str, Any], name: str) -> Any:
    top = spec.get(name)
    return top if top is not None else (spec.get("runPolicy") or {}).get(name)


def read_run_policy(spec: Mapping[str, Any]) -> RunPolicy:
    nested = spec.get("runPolicy") or {}
    return RunPolicy(
        clean_pod_policy=_field(spec, "cleanPodPolicy"),
        ttl_seconds_after_finished=_field(spec, "ttlSecondsAfterFinished"),
        active_deadline_seconds=_field(spec, "activeDeadlineSeconds"),
        backoff_limit=_field(spec, "backoffLimit"),
        suspend=bool(nested.get("suspend", False)),
    )


def layout_conflicts(spec: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Fields set both under `spec` and `spec.runPolicy` to different values: (field, top, nested)."""
    nested = spec.get("runPolicy") or {}
    return [
        (name, spec[name], nested[name])
        for name in RUN_POLICY_FIELDS
        if spec.get(name) is not None and nested.get(name) is not None and spec[name] != nested[name]
    ]
