"""`jobwarden run --namespace NS`: only jobs in the watched namespaces are run (and admitted by this
operator's webhook registration, which still covers the cluster). A cluster of its own, so the
session's all-namespaces operator does not run the jobs too."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusters import local_cluster
from devcluster import cluster as devcluster
from devcluster.operator import LocalOperator
from devcluster.pods import finished_status
from kubernetes import client, config

from testlib import creatable, load_seed, small_pytorchjob, wait_for


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


# -- several namespaces on one operator (issue 27) ----------------------------------------------------

JOB_LABEL = "training.kubeflow.org/job-name"


def _job_pods(core: client.CoreV1Api, ns: str, job: str) -> dict[str, str]:
    pods = core.list_namespaced_pod(ns, label_selector=f"{JOB_LABEL}={job}").items
    return {p.metadata.name: p.status.phase for p in pods if not p.metadata.deletion_timestamp}


def _succeeded(custom: client.CustomObjectsApi, ns: str, job: str) -> bool:
    body: Any = custom.get_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", job)
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Succeeded" and c["status"] == "True" for c in conditions)


def _finish_master(core: client.CoreV1Api, ns: str, job: str) -> None:
    name = f"{job}-master-0"
    pod = core.api_client.sanitize_for_serialization(core.read_namespaced_pod(name, ns))
    core.patch_namespaced_pod_status(name, ns, {"status": finished_status(pod)})


def _settled(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, spaces: tuple[str, ...], job: str
) -> dict[str, str]:
    """Per namespace: the job Succeeded and cleanPodPolicy All removed its pods, or what is missing."""
    missing = {}
    for ns in spaces:
        if not _succeeded(custom, ns, job):
            missing[ns] = "not Succeeded"
        elif pods := _job_pods(core, ns, job):
            missing[ns] = f"pods left: {pods}"
    return missing


def test_two_namespaces_keep_each_others_children_through_lists_and_relists(
    scoped: devcluster.Cluster, tmp_path: Path
) -> None:
    """One index per child kind is shared by the streams of both namespaces. Before issue 27 a
    namespace's list (at start, and every relist) removed the other namespace's children from it: a
    pod that had already finished sent no further event, so its job never saw the finish, and a job
    that succeeded later did not delete the pods the index no longer showed."""
    api = config.new_client_from_config(config_file=str(scoped.kubeconfig))
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    suffix = uuid.uuid4().hex[:6]
    spaces = (f"team-a-{suffix}", f"team-b-{suffix}")
    for ns in spaces:
        scoped.kubectl("create", "namespace", ns, check=False)
        wait_for(
            lambda ns=ns: scoped.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, 30
        )
    jobs = [f"ns-job{i}" for i in range(3)]
    op = LocalOperator(scoped, tmp_path / "operator.log", namespaces=spaces, webhook=False)
    op.start()
    try:
        for ns in spaces:
            for job in jobs:
                body = small_pytorchjob(ns, job, cleanPodPolicy="All")
                custom.create_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", body)
        for ns in spaces:
            for job in jobs:
                wait_for(lambda ns=ns, job=job: set(_job_pods(core, ns, job).values()) == {"Running"}
                         and len(_job_pods(core, ns, job)) == 2, 60, what=f"{ns}/{job} running")  # fmt: skip
        # 1. The first list of each namespace, after a restart: both masters finished meanwhile.
        op.kill()
        for ns in spaces:
            _finish_master(core, ns, jobs[0])
        op.start()
        wait_for(lambda: not _settled(core, custom, spaces, jobs[0]), 30,
                 what=f"{jobs[0]} to succeed in both namespaces")  # fmt: skip
        # 2. A relist: the apiserver restarts, every stream lists its namespace again.
        devcluster.stop_component(scoped, "kube-apiserver")
        time.sleep(2)
        devcluster.start_component(scoped, "kube-apiserver")
        time.sleep(5)  # the streams are back (backoff capped at 2 s) and listed again
        for ns in spaces:
            _finish_master(core, ns, jobs[1])
        wait_for(lambda: not _settled(core, custom, spaces, jobs[1]), 30,
                 what=f"{jobs[1]} to succeed and lose its pods in both namespaces")  # fmt: skip
        for ns in spaces:  # the untouched job kept its pods, created once
            assert len(_job_pods(core, ns, jobs[2])) == 2
    finally:
        op.stop()
    tracebacks = [line for line in op.logs().splitlines() if "Traceback" in line]
    assert tracebacks == [], f"see {op.log_path}"
