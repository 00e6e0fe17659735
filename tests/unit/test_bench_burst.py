"""The burst benchmark's raw client (benchmarks/burst.py): it creates what jobwarden creates."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from benchmarks import kube
from benchmarks.burst import minimal_children, raw_children

from jobwarden import kinds
from jobwarden.core.plan import Observed, Settings


def test_the_raw_client_creates_the_operators_bodies_without_the_owner() -> None:
    """The issue's raw client creates "the same 4 pods + 4 headless services": the env, labels and
    init container cost the apiserver as much for it as for jobwarden."""
    job = kube.pytorchjob("raw-7")
    job["metadata"] |= {"uid": "u-7", "resourceVersion": "5", "creationTimestamp": "2026-01-01T00:00:00Z"}
    kind = kinds.by_kind("kubeflow.org/v1", "PyTorchJob")
    assert kind is not None
    now = datetime.now(UTC)
    made = kind.plan(Observed(job=job, children={}, now=now, settings=Settings())).create
    expected = []
    for manifest in made:
        body = copy.deepcopy(dict(manifest))
        assert body["metadata"].pop("ownerReferences")[0]["uid"] == "u-7"
        expected.append(body)
    raw = [body for _, body in raw_children("raw-7")]
    assert raw == expected
    assert sorted(resource for resource, _ in raw_children("raw-7")) == ["pods"] * 4 + ["services"] * 4
    assert any(e["name"] == "WORLD_SIZE" for e in raw[0]["spec"]["containers"][0]["env"])


def test_the_minimal_bodies_are_counted_by_the_same_label() -> None:
    for _, body in minimal_children("raw-1"):
        assert body["metadata"]["labels"][kube.JOB_NAME_LABEL] == "raw-1"
