"""`jobwarden run --namespace NS`: only jobs in the watched namespaces are run (and admitted by this
operator's webhook registration, which still covers the cluster). A cluster of its own, so the
session's all-namespaces operator does not run the jobs too."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from clusters import local_cluster
from devcluster import cluster as devcluster
from devcluster.operator import LocalOperator

from testlib import creatable, load_seed, wait_for


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devcluster.Cluster]:
    with local_cluster("scoped") as c:
        for ns in ("watched", "ignored"):
            c.kubectl("create", "namespace", ns, check=False)
            wait_for(
                lambda ns=ns: c.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, 30
            )
        operator = LocalOperator(
            c, tmp_path_factory.mktemp("scoped") / "operator.log", namespaces=("watched",)
        )
        operator.start()
        yield c
        operator.stop()


def _pods(c: devcluster.Cluster, ns: str) -> list[str]:
    return c.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.split()


def test_only_watched_namespaces_are_run(scoped: devcluster.Cluster) -> None:
    for ns in ("watched", "ignored"):
        scoped.kubectl(
            "apply", "-f", "-", input=json.dumps(creatable(load_seed("tfjob-put.request.json"), ns))
        )
    assert (
        len(wait_for(lambda: _pods(scoped, "watched") if len(_pods(scoped, "watched")) == 2 else None, 30))
        == 2
    )
    time.sleep(3)  # proving a negative: the other namespace's job is left alone
    assert _pods(scoped, "ignored") == []
    ignored = json.loads(scoped.kubectl("get", "tfjob", "tfjob-test", "-n", "ignored", "-o", "json").stdout)
    assert "status" not in ignored
