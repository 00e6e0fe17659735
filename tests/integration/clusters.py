"""The local clusters the integration tests run on: one per suite (`JOBWARDEN_TEST_CLUSTER`, default
`test`), and one per fixture that needs a cluster set up differently (a suffix of that name)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from devcluster import cluster as devcluster

from testlib import ROOT


@contextlib.contextmanager
def local_cluster(suffix: str = "") -> Iterator[devcluster.Cluster]:
    """`<JOBWARDEN_TEST_CLUSTER>[-<suffix>]` up with the current CRDs (a reused cluster may hold older
    versions); torn down afterwards unless it was already running or JOBWARDEN_KEEP_CLUSTER is set."""
    base = os.environ.get("JOBWARDEN_TEST_CLUSTER", "test")
    name = f"{base}-{suffix}" if suffix else base
    existing = devcluster.Cluster.load(name)
    reused = bool(existing and existing.alive())
    c = devcluster.up(name, crds=ROOT / "crds")
    if reused:
        devcluster.install_crds(c, ROOT / "crds")
    try:
        yield c
    finally:
        if not reused and not os.environ.get("JOBWARDEN_KEEP_CLUSTER"):
            devcluster.down(name)
