"""Issue 26 through the real apiserver: Kueue's two updates to a Kubeflow job (tests/kueue_updates.py:
the admission that resumes the job and writes the scheduling directives into every replica template,
the eviction that suspends it and restores them) replayed, as Kueue v0.17 would send them, against

- jobwarden's default install (the session's operator: webhook + policy): refused, the seeds' contract;
- an operator with `--allow-suspend-updates` (its webhook and its policy): accepted by both; the pods
  made after the resume carry the directives (the plan reads the stored template); the eviction
  deletes them and the templates are as before; a directive change while the job runs, or any other
  template change, stays refused; and the policy-vs-webhook comparison of that contract.

The tests do not build Kueue (the real one runs in the opt-in `python -m benchmarks.kueue`,
docs/install.md): these are its writes, replayed with their Go-client artifacts
(`creationTimestamp: null`, `resources: {}`).
JOBWARDEN_SUSPEND_VECTORS sets the number of random suspend-update vectors (default 120)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from admission_calls import MXJOBS, PYTORCHJOBS, TFJOBS, Body, Outcome, Res, get, replace
from devcluster.cluster import Cluster
from devcluster.operator import LocalOperator
from kubernetes import client
from policy_vectors import POLICY_DENIED, compare, random_vectors, seed_vectors, store, suspend_vectors

from kueue_updates import FLAVOR_NODE_LABELS, FLAVOR_TOLERATIONS, QUEUE_LABELS, admitted, evicted, kueue_ready
from testlib import creatable, load_seed, wait_for

KUBEFLOW = [TFJOBS, PYTORCHJOBS, MXJOBS]
SUSPEND_VECTORS = int(os.environ.get("JOBWARDEN_SUSPEND_VECTORS", "120"))
JOB_NAME_LABEL = "training.kubeflow.org/job-name"


def queued(res: Res, namespace: str, name: str, suspend: bool = True) -> Body:
    body = kueue_ready(creatable(load_seed(res.seed), namespace), suspend)
    body["metadata"]["name"] = name
    return body


def create(custom: client.CustomObjectsApi, res: Res, body: Body) -> Body:
    namespace = body["metadata"]["namespace"]
    created: Body = custom.create_namespaced_custom_object(
        res.group, res.version, namespace, res.plural, body
    )
    return created


def put(custom: client.CustomObjectsApi, res: Res, namespace: str, name: str, new: Body) -> Outcome:
    """Kueue's update: the stored object with the spec Kueue wrote (a 409 from the operator's own status
    write in between is retried, as Kueue's reconciler would)."""

    def write(body: Body) -> None:
        body["spec"] = new["spec"]

    return replace(custom, res, namespace, name, write)


def replica_count(body: Body) -> int:
    [field] = [k for k in body["spec"] if k.endswith("ReplicaSpecs")]
    return sum(int(r.get("replicas", 1)) for r in body["spec"][field].values())


def pods_of(core: client.CoreV1Api, namespace: str, name: str) -> list[Any]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={name}").items)


def templates(body: Body) -> dict[str, Any]:
    [field] = [k for k in body["spec"] if k.endswith("ReplicaSpecs")]
    return {t: r["template"] for t, r in body["spec"][field].items()}


# --------------------------------------------------------------------------------------------------
# Without the setting (the default install): the seeds' contract. These run first: the module's
# suspend-updates operator below replaces the session's operator until the module ends.


@pytest.mark.parametrize("res", KUBEFLOW, ids=[r.plural for r in KUBEFLOW])
def test_without_suspend_updates_kueues_admission_and_eviction_are_refused(
    operator: LocalOperator, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str, res: Res
) -> None:
    job = queued(res, namespace, "queued")
    create(custom, res, job)
    answer = put(custom, res, namespace, "queued", admitted(job))
    print(f"\n{res.plural} admission without the setting: {answer.status} {answer.message[:400]}")
    assert answer.status == 403 and POLICY_DENIED in answer.message
    assert "spec.runPolicy.suspend" in answer.message and ".template.metadata" in answer.message
    assert get(custom, res, namespace, "queued")["spec"]["runPolicy"]["suspend"] is True
    # A job Kueue had started (created running with its directives): the eviction is refused too.
    running = admitted(job)
    running["metadata"]["name"] = "started"
    create(custom, res, running)
    answer = put(custom, res, namespace, "started", evicted(running, job))
    print(f"{res.plural} eviction without the setting: {answer.status} {answer.message[:400]}")
    assert answer.status == 403 and "spec.runPolicy.suspend" in answer.message
    wait_for(lambda: len(pods_of(core, namespace, "started")) == replica_count(running), 60, what="its pods")


# --------------------------------------------------------------------------------------------------
# With `--allow-suspend-updates`


@pytest.fixture(scope="module")
def suspend_operator(
    cluster: Cluster,
    operator: LocalOperator,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalOperator]:
    """An operator with suspend updates allowed in place of the session's (which is started again, and
    puts the default policies back, when the module is done). Each switch is awaited on the apiserver's
    answers, not on the stored policy: its admission cache follows a moment later."""
    probe_namespace = f"suspend-probe-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": probe_namespace}})
    create(custom, PYTORCHJOBS, queued(PYTORCHJOBS, probe_namespace, "probe"))

    def resume() -> Outcome:
        def unsuspend(body: Body) -> None:
            body["spec"]["runPolicy"]["suspend"] = False

        return replace(custom, PYTORCHJOBS, probe_namespace, "probe", unsuspend, dry_run=True)

    with operator.stopped():
        allowing = LocalOperator(
            cluster,
            tmp_path_factory.mktemp("suspend-updates") / "operator.log",
            extra_args=["--allow-suspend-updates"],
        )
        allowing.start()
        try:
            wait_for(lambda: resume().allowed, 30, what="the suspend-updates webhook and policy")
            yield allowing
        finally:
            allowing.stop()
            assert "Traceback" not in allowing.logs(), f"see {allowing.log_path}"
    wait_for(lambda: POLICY_DENIED in resume().message, 30, what="the default policy back")
    core.delete_namespace(probe_namespace, propagation_policy="Background")


def _pod_carries_the_directives(pod: Any, replica_type: str) -> None:
    labels, annotations = pod.metadata.labels, pod.metadata.annotations or {}
    assert labels["kueue.x-k8s.io/podset"] == replica_type.lower(), labels
    assert all(labels[k] == v for k, v in QUEUE_LABELS.items()), labels
    assert annotations["kueue.x-k8s.io/workload"] == "pytorchjob-job-3c9f1", annotations
    assert all(pod.spec.node_selector[k] == v for k, v in FLAVOR_NODE_LABELS.items()), pod.spec.node_selector
    tolerations = [
        {k: v for k, v in t.to_dict().items() if v is not None and k != "toleration_seconds"}
        for t in pod.spec.tolerations or []
    ]
    for wanted in FLAVOR_TOLERATIONS:
        assert wanted in tolerations, tolerations


@pytest.mark.parametrize("res", KUBEFLOW, ids=[r.plural for r in KUBEFLOW])
def test_with_suspend_updates_kueue_admits_and_evicts_and_the_pods_carry_the_directives(
    suspend_operator: LocalOperator,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    res: Res,
) -> None:
    job = queued(res, namespace, "queued")
    create(custom, res, job)
    wait_for(lambda: _condition(get(custom, res, namespace, "queued"), "Suspended"), 30, what="Suspended")
    assert pods_of(core, namespace, "queued") == []

    answer = put(custom, res, namespace, "queued", admitted(job))
    assert answer.allowed, answer.message
    pods = wait_for(
        lambda: (p := pods_of(core, namespace, "queued")) and len(p) == replica_count(job) and p,
        60,
        what="the pods made after the resume",
    )
    for pod in pods:
        _pod_carries_the_directives(pod, pod.metadata.labels["training.kubeflow.org/replica-type"])

    # While it runs, its directives stay as they are, and nothing else in a template ever changes.
    running = get(custom, res, namespace, "queued")
    relabel = admitted(running, workload="another-workload")
    answer = put(custom, res, namespace, "queued", relabel)
    print(f"\n{res.plural} directive change while running: {answer.status} {answer.message[:300]}")
    assert answer.status == 403 and POLICY_DENIED in answer.message
    assert "template.metadata.annotations.kueue.x-k8s.io/workload: field is not updatable" in answer.message

    answer = put(custom, res, namespace, "queued", evicted(running, job))
    assert answer.allowed, answer.message
    wait_for(lambda: not pods_of(core, namespace, "queued"), 60, what="the pods deleted on eviction")
    back = get(custom, res, namespace, "queued")
    assert back["spec"]["runPolicy"]["suspend"] is True
    assert _without_empties(templates(back)) == _without_empties(templates(job))


def _condition(body: Body, kind: str) -> bool:
    return any(
        c["type"] == kind and c["status"] == "True" for c in body.get("status", {}).get("conditions", [])
    )


def _without_empties(value: Any) -> Any:
    """Absent, null and {} alike (a Go client writes `creationTimestamp: null`, `resources: {}`)."""
    if isinstance(value, dict):
        kept = {k: _without_empties(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_without_empties(v) for v in value]
    return value


CHANGES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("image", lambda t: t["spec"]["containers"][0].update(image="other:2"), "spec.containers[0].image"),
    ("template name", lambda t: t.setdefault("metadata", {}).update(name="x"), "metadata.name"),
]


@pytest.mark.parametrize(("what", "change", "path"), CHANGES, ids=[c[0] for c in CHANGES])
def test_with_suspend_updates_nothing_else_in_a_template_may_change(
    suspend_operator: LocalOperator,
    custom: client.CustomObjectsApi,
    namespace: str,
    what: str,
    change: Callable[[dict[str, Any]], None],
    path: str,
) -> None:
    job = queued(PYTORCHJOBS, namespace, "queued")
    create(custom, PYTORCHJOBS, job)
    resumed = admitted(job)
    change(resumed["spec"]["pytorchReplicaSpecs"]["Worker"]["template"])
    answer = put(custom, PYTORCHJOBS, namespace, "queued", resumed)
    assert answer.status == 403 and POLICY_DENIED in answer.message, answer
    assert f"spec.pytorchReplicaSpecs.Worker.template.{path}: field is not updatable" in answer.message


def test_with_suspend_updates_the_policy_is_never_looser_than_the_webhook(
    suspend_operator: LocalOperator, cluster: Cluster, custom: client.CustomObjectsApi, core: client.CoreV1Api
) -> None:
    namespace = f"policy-vectors-suspend-{uuid.uuid4().hex[:6]}"
    store(custom, core, namespace)
    try:
        vectors = seed_vectors() + random_vectors(SUSPEND_VECTORS // 2) + suspend_vectors(SUSPEND_VECTORS)
        result = compare(cluster, custom, namespace, vectors)
    finally:
        core.delete_namespace(namespace, propagation_policy="Background")
    print("\n" + result.report())
    print(
        "suspend vectors (origin, policy, webhook): "
        + json.dumps({f"{o} / {p} / {w}": n for (o, p, w), n in _by_origin(result).items()})
    )
    assert not result.looser, f"the policy let through {len(result.looser)}: {result.looser[:10]}"
    assert not [o for o in result.stricter if o.startswith("kueue-")], result.stricter
    for vector, answer in zip(result.vectors, result.by_policy, strict=True):
        if vector.origin == "kueue-while-suspended":
            assert answer == "allowed", vector.origin
        if vector.origin.startswith("kubeflow-forbidden"):
            assert answer != "allowed" or "zz-added" in vector.origin, vector.origin


def _by_origin(result: Any) -> dict[tuple[str, str, str], int]:
    counts: dict[tuple[str, str, str], int] = {}
    for v, p, w in zip(result.vectors, result.by_policy, result.by_webhook, strict=True):
        key = (v.origin.split(" ")[0], p, w)
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_with_suspend_updates_a_job_not_written_as_go_writes_quantities_is_refused_by_the_policy(
    suspend_operator: LocalOperator, custom: client.CustomObjectsApi, namespace: str
) -> None:
    """The known limit (docs/install.md): the policy compares quantities as written, and Kueue writes
    the seed's `cpu: 2` back as `"2"`. The webhook alone would allow it (quantities by value)."""
    job = creatable(load_seed(PYTORCHJOBS.seed), namespace)
    job["spec"]["runPolicy"] = {"suspend": True}
    job["spec"].pop("ttlSecondsAfterFinished")
    job["metadata"]["name"] = "numbers"
    create(custom, PYTORCHJOBS, job)
    answer = put(custom, PYTORCHJOBS, namespace, "numbers", admitted(job))
    assert answer.status == 403 and POLICY_DENIED in answer.message, answer
    assert (
        "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].resources.limits.cpu" in answer.message
    )
