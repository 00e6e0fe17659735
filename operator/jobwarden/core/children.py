"""Metadata shared by every child object a job owns: the controller ownerReference (so deleting the
job removes its children through the garbage collector) and the managed-by label the shell's
watches select on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobwarden.core.plan import MANAGED_BY_LABEL, MANAGED_BY_VALUE, Body, Manifest


def owner_reference(job: Body) -> dict[str, Any]:
    meta = job["metadata"]
    return {
        "apiVersion": job["apiVersion"],
        "kind": job["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(
    job: Body,
    name: str,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": job["metadata"]["namespace"],
        "labels": {**(labels or {}), MANAGED_BY_LABEL: MANAGED_BY_VALUE},
        "ownerReferences": [owner_reference(job)],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def manifest(api_version: str, kind: str, metadata: dict[str, Any], **fields: Any) -> Manifest:
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}


def is_controlled_by(child: Body, job_uid: str) -> bool:
    return any(
        ref.get("controller") and ref.get("uid") == job_uid
        for ref in child.get("metadata", {}).get("ownerReferences") or []
    )
