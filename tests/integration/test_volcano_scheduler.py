"""jobwarden cooperating with Volcano's scheduler: when the PodGroup CRD exists, a Volcano job gets a
PodGroup `<job>-<uid>` and its pods only once the scheduler admitted the group (phase Inqueue), with
`schedulerName: volcano` kept. The scheduler itself is not available here; the test plays its part by
writing the PodGroup's status phase, as the scheduler would.

A cluster of its own: the operator decides at start whether Volcano is installed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from clusters import local_cluster
from devcluster import cluster as devcluster
from devcluster.operator import LocalOperator

from testlib import ROOT, creatable, load_seed, wait_for

HERE = ROOT / "tests" / "integration"
JOB = "openmpi-hello-2-com"


@pytest.fixture(scope="module")
def volcano_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[devcluster.Cluster, LocalOperator]]:
    with local_cluster("volcano-sched") as c:
        c.kubectl("apply", "--server-side", "-f", str(HERE / "fixtures" / "podgroup-crd.yaml"))
        c.kubectl(
            "wait", "--for=condition=Established", "crd/podgroups.scheduling.volcano.sh", "--timeout=60s"
        )
        operator = LocalOperator(c, tmp_path_factory.mktemp("volcano-sched") / "operator.log")
        operator.start()
        yield c, operator
        operator.stop()


def _json(c: devcluster.Cluster, *args: str) -> dict[str, Any] | None:
    out = c.kubectl(*args, "-o", "json", check=False)
    return dict(json.loads(out.stdout)) if out.returncode == 0 else None


def test_pods_wait_for_the_podgroup_to_be_admitted(
    volcano_cluster: tuple[devcluster.Cluster, LocalOperator],
) -> None:
    c, operator = volcano_cluster
    assert "volcano-scheduler=True" in operator.logs()
    c.kubectl("create", "namespace", "vs")
    wait_for(lambda: c.kubectl("get", "sa", "default", "-n", "vs", check=False).returncode == 0, 30)
    c.kubectl("apply", "-f", "-", input=json.dumps(creatable(load_seed("volcanojob-put.request.json"), "vs")))
    job = _json(c, "get", "vcjob", JOB, "-n", "vs")
    assert job is not None
    group_name = f"{JOB}-{job['metadata']['uid']}"

    group = wait_for(lambda: _json(c, "get", "podgroup", group_name, "-n", "vs"), 30, what="the PodGroup")
    assert group["spec"]["minMember"] == 2
    assert group["spec"]["queue"] == "default"
    assert group["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    time.sleep(2)  # the gate is closed: nothing may be created meanwhile
    assert c.kubectl("get", "pods", "-n", "vs", "-o", "name").stdout.strip() == ""
    pending = _json(c, "get", "vcjob", JOB, "-n", "vs")
    assert pending is not None and pending["status"]["state"]["phase"] == "Pending"

    # The scheduler admits the group.
    c.kubectl("patch", "podgroup", group_name, "-n", "vs", "--subresource=status", "--type=merge",
              "-p", '{"status":{"phase":"Inqueue"}}')  # fmt: skip
    names = wait_for(lambda: c.kubectl("get", "pods", "-n", "vs", "-o", "name").stdout.split() or None, 30,
                     what="pods after the PodGroup was admitted")  # fmt: skip
    assert len(names) == 3  # mpimaster-0, mpiworker-0, mpiworker-1
    pod = _json(c, "get", "pod", f"{JOB}-mpimaster-0", "-n", "vs")
    assert pod is not None
    assert pod["spec"]["schedulerName"] == "volcano"  # left to Volcano's scheduler, no fallback
    assert pod["metadata"]["annotations"]["scheduling.k8s.io/group-name"] == group_name
    phase = wait_for(lambda: (_json(c, "get", "vcjob", JOB, "-n", "vs") or {}).get("status", {})
                     .get("state", {}).get("phase") == "Inqueue", 30, what="the job Inqueue")  # fmt: skip
    assert phase
    events = c.kubectl("get", "events", "-n", "vs", "-o", "jsonpath={.items[*].reason}").stdout.split()
    assert "SchedulerFallback" not in events
