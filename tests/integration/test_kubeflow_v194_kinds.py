"""XGBoostJob, PaddleJob and JAXJob (the kinds training-operator v1.9.4 added) against the real control
plane and the operator subprocess: the demo's example of each through its lifecycle (children, env in
upstream's order, status and the STATE column, events, metrics, TTL), failure and restart, suspend and
managedBy as v1.9 has them, admission (create 400s with field paths, the update contract's 403s), and the
Kubeflow Python SDK (`kubeflow-training` 1.9.x, run from .venv-sdk) driving all three.

Pods never finish by themselves (kwok): a test finishes them with `devcluster.pods`."""

from __future__ import annotations

import copy
import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from devcluster import pods as devpods
from devcluster.cluster import Cluster
from devcluster.operator import LocalOperator
from kubeflow_steps import (
    GROUP,
    JAX,
    JOB_NAME_LABEL,
    JOB_ROLE_LABEL,
    OPERATOR_NAME_LABEL,
    PADDLE,
    REPLICA_INDEX_LABEL,
    REPLICA_TYPE_LABEL,
    V194_KINDS,
    VERSION,
    XGBOOST,
    Job,
    KubeflowKind,
    condition,
    create,
    example_body,
    sleep_until,
)
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from testlib import wait_for

ROOT = Path(__file__).resolve().parents[2]
SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"
NewJob = Callable[[KubeflowKind, dict[str, Any]], Job]
POD_IP = ("valueFrom", "status.podIP")

pytestmark = pytest.mark.usefixtures("operator_log_hint")


@pytest.fixture
def new_job(
    cluster: Cluster, core: client.CoreV1Api, custom: client.CustomObjectsApi, operator: LocalOperator
) -> NewJob:
    def make(kind: KubeflowKind, body: dict[str, Any]) -> Job:
        return create(cluster, core, custom, operator.logs, kind, body)

    return make


def env_list(pod: Any, container: str) -> list[tuple[str, Any]]:
    """The container's env in order; a fieldRef shows as ("valueFrom", its fieldPath)."""
    found = next(c for c in pod.spec.containers if c.name == container)
    return [
        (e.name, e.value if e.value_from is None else ("valueFrom", e.value_from.field_ref.field_path))
        for e in found.env or []
    ]


def expected_env(kind: KubeflowKind, slot: str) -> list[tuple[str, Any]]:
    """v1.9.4's env for the examples (devcluster/examples/), in its order."""
    index = slot.rsplit("-", 1)[1]
    if kind is XGBOOST:
        return [
            ("MASTER_PORT", "9991"),
            ("MASTER_ADDR", "xgboost-test-master-0"),
            ("WORLD_SIZE", "2"),
            ("RANK", "0" if slot == "master-0" else "1"),
            ("PYTHONUNBUFFERED", "1"),
            ("WORKER_PORT", "9991"),
            ("WORKER_ADDRS", "xgboost-test-worker-0"),
        ]
    if kind is PADDLE:
        common = [("PYTHONUNBUFFERED", "1"), ("PADDLE_JOB_ID", "paddle-test"), ("PADDLE_NNODES", "2")]
        if slot == "worker-0":
            return [*common, ("POD_IP_DUMMY", POD_IP), ("PADDLE_MASTER", "$(POD_IP_DUMMY):37777")]
        return [*common, ("PADDLE_MASTER", "paddle-test-worker-0:37777")]
    return [
        ("PYTHONUNBUFFERED", "1"),
        ("COORDINATOR_PORT", "6666"),
        ("COORDINATOR_ADDRESS", "jax-test-worker-0"),
        ("NUM_PROCESSES", "2"),
        ("PROCESS_ID", index),
    ]


# Who must succeed: the Master (XGBoost), every Worker without a Master (Paddle, JAX).
DECIDERS = {
    "XGBoostJob": ("master-0",),
    "PaddleJob": ("worker-0", "worker-1"),
    "JAXJob": ("worker-0", "worker-1"),
}


def check_children(job: Job, pods: dict[str, Any]) -> None:
    kind = job.kind
    uid = job.body()["metadata"]["uid"]
    services = job.wait_services()
    for slot in kind.slots:
        name = job.pod_name(slot)
        pod, service = pods[name], services[name]
        slug, index = slot.rsplit("-", 1)
        selector = {
            JOB_NAME_LABEL: job.name,
            REPLICA_TYPE_LABEL: slug,
            REPLICA_INDEX_LABEL: index,
            OPERATOR_NAME_LABEL: kind.operator_name,
        }
        role = {JOB_ROLE_LABEL: "master"} if slot == kind.master else {}
        labels = {k: v for k, v in pod.metadata.labels.items() if k.startswith("training.kubeflow.org/")}
        assert labels == {**selector, **role}, slot
        for child in (pod, service):
            [owner] = child.metadata.owner_references
            assert (owner.kind, owner.name, owner.uid, owner.controller) == (kind.kind, job.name, uid, True)
        container = next(c for c in pod.spec.containers if c.name == kind.container)
        assert [(p.name, p.container_port) for p in container.ports] == [(kind.port_name, kind.port)]
        assert env_list(pod, kind.container) == expected_env(kind, slot), slot
        assert service.spec.cluster_ip == "None"
        assert service.spec.selector == selector
        assert [(p.name, p.port) for p in service.spec.ports] == [(kind.port_name, kind.port)]


def kubectl_state(job: Job) -> str:
    lines = job.cluster.kubectl("get", job.kind.plural, job.name, "-n", job.namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "AGE"]
    return lines[1].split()[1]


def metric(operator: LocalOperator, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("kind", V194_KINDS, ids=str)
def test_lifecycle_from_the_example(
    new_job: NewJob, namespace: str, operator: LocalOperator, kind: KubeflowKind
) -> None:
    succeeded_before = metric(operator, "jobwarden_jobs_succeeded_total", kind=kind.kind)
    job = new_job(kind, example_body(kind, namespace))
    pods = job.wait_pods_running()
    check_children(job, pods)

    running = condition(job.wait_condition("Running"), "Running") or {}
    assert (running["reason"], running["message"]) == (
        f"{kind.kind}Running",
        f"{kind.kind} {job.name} is running.",
    )
    counts: dict[str, int] = {}
    for slot in kind.slots:
        replica_type = next(t for t, slug in kind.replicas if slot.startswith(slug))
        counts[replica_type] = counts.get(replica_type, 0) + 1
    job.wait(
        lambda: job.status().get("replicaStatuses") == {t: {"active": n} for t, n in counts.items()},
        "every replica active",
    )
    assert kubectl_state(job) == "Running"

    for slot in DECIDERS[kind.kind]:
        job.finish(slot)
    done = job.wait_condition("Succeeded")
    succeeded = condition(done, "Succeeded") or {}
    assert (succeeded["reason"], succeeded["message"]) == (
        f"{kind.kind}Succeeded",
        f"{kind.kind} {job.name} is successfully completed.",
    )
    assert done["status"]["replicaStatuses"] == {t: {"succeeded": n} for t, n in counts.items()}
    assert kubectl_state(job) == "Succeeded"
    job.wait_children(pods=set(kind.slots), services=set(kind.slots))  # cleanPodPolicy None
    expected_events = {
        f"{kind.kind}Created": f"{kind.kind} {job.name} is created.",
        f"{kind.kind}Running": f"{kind.kind} {job.name} is running.",
        f"{kind.kind}Succeeded": f"{kind.kind} {job.name} is successfully completed.",
    }
    for event in job.wait_events(*expected_events):
        if event.reason in expected_events:
            assert (event.type, event.message, event.source.component) == (
                "Normal",
                expected_events[event.reason],
                "jobwarden",
            )
    wait_for(
        lambda: metric(operator, "jobwarden_jobs_succeeded_total", kind=kind.kind) >= succeeded_before + 1,
        30,
        what=f"jobwarden_jobs_succeeded_total{{kind={kind.kind}}}",
    )
    assert metric(operator, "jobwarden_children_created_total", kind=kind.kind, child="Pod") >= len(
        kind.slots
    )

    job.merge_patch({"spec": {"runPolicy": {"ttlSecondsAfterFinished": 1}}})
    job.wait_deleted()
    job.wait_garbage_collected()


def test_xgboost_master_failing_under_never_fails_the_job(new_job: NewJob, namespace: str) -> None:
    job = new_job(XGBOOST, example_body(XGBOOST, namespace))
    job.wait_pods_running()
    job.finish("master-0", exit_code=1)
    failed = condition(job.wait_condition("Failed"), "Failed") or {}
    assert failed["message"] == "XGBoostJob xgboost-test has failed because 1 Master replica(s) failed."
    assert job.status()["replicaStatuses"]["Master"] == {"failed": 1}
    job.wait_children(pods={"master-0", "worker-0"}, services={"master-0", "worker-0"})


@pytest.mark.parametrize("kind", [PADDLE, JAX], ids=str)
def test_a_worker_failing_under_on_failure_is_recreated(
    new_job: NewJob, namespace: str, kind: KubeflowKind
) -> None:
    job = new_job(kind, example_body(kind, namespace))
    before = job.wait_pods_running()[job.pod_name("worker-1")].metadata.uid
    job.finish("worker-1", exit_code=1)

    def recreated() -> bool:
        pod = job.pods().get(job.pod_name("worker-1"))
        return bool(pod and pod.metadata.uid != before and pod.status.phase == "Running")

    job.wait(recreated, "worker-1 recreated")
    assert job.status().get("restarts") == 1
    assert job.wait_events(f"{kind.kind}Restarting")
    assert condition(job.body(), "Failed") is None


def test_a_jax_job_past_its_deadline_fails_and_its_pods_stop(new_job: NewJob, namespace: str) -> None:
    """The shared engine's activeDeadlineSeconds, at the deadline (a timer, not the next event)."""
    body = example_body(JAX, namespace)
    body["spec"]["runPolicy"] = {"activeDeadlineSeconds": 4}
    job = new_job(JAX, body)
    job.wait_pods_running()
    failed = condition(job.wait_condition("Failed", timeout=20), "Failed") or {}
    assert (failed["reason"], failed["message"]) == (
        "JAXJobFailed",
        "JAXJob jax-test has failed because it was active longer than specified deadline",
    )
    job.wait_children(pods=set(), services=set())  # running pods stop; cleanPodPolicy None keeps the rest


def suspended_or_managed(
    kind: KubeflowKind, namespace: str, name: str, run_policy: dict[str, Any]
) -> dict[str, Any]:
    body = example_body(kind, namespace)
    body["metadata"]["name"] = name
    body["spec"].setdefault("runPolicy", {}).update(run_policy)
    return body


@pytest.mark.parametrize("kind", V194_KINDS, ids=str)
def test_suspend_and_managed_by_as_v1_9(new_job: NewJob, namespace: str, kind: KubeflowKind) -> None:
    """A job created suspended gets Created and Suspended and nothing else (no pods, no startTime); a
    job managed by MultiKueue is not touched at all."""
    managed = new_job(
        kind, suspended_or_managed(kind, namespace, "managed", {"managedBy": "kueue.x-k8s.io/multikueue"})
    )
    paused = new_job(kind, suspended_or_managed(kind, namespace, "paused", {"suspend": True}))
    seen = paused.wait_condition("Suspended")
    assert [c["type"] for c in seen["status"]["conditions"]] == ["Created", "Suspended"]
    assert seen["status"]["conditions"][1]["reason"] == f"{kind.kind}Suspended"
    assert "startTime" not in seen["status"]
    sleep_until(time.monotonic() + 2)
    assert paused.pods() == {} and paused.services() == {}
    assert managed.pods() == {} and managed.services() == {}
    assert "status" not in managed.body()


# --- admission -----------------------------------------------------------------------------------


def refusal(custom: client.CustomObjectsApi, kind: KubeflowKind, body: dict[str, Any]) -> tuple[int, str]:
    try:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, body["metadata"]["namespace"], kind.plural, body
        )
    except ApiException as exc:
        raw = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body)
        return int(exc.status), str(json.loads(raw)["message"])
    raise AssertionError(f"{kind} {body['metadata']['name']} was accepted")


def changed(body: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    copied = copy.deepcopy(body)
    change(copied)
    return copied


def test_create_refusals_name_the_field(custom: client.CustomObjectsApi, namespace: str) -> None:
    xgb = example_body(XGBOOST, namespace)
    cases = [
        (
            XGBOOST,
            changed(xgb, lambda b: b["spec"]["xgbReplicaSpecs"].pop("Master")),
            "spec.xgbReplicaSpecs.Master: Required value: must be present",
        ),
        (
            XGBOOST,
            changed(xgb, lambda b: b["spec"]["xgbReplicaSpecs"]["Master"].update(replicas=2)),
            "spec.xgbReplicaSpecs.Master.replicas: Invalid value: 2: must be 1",
        ),
        (
            PADDLE,
            changed(
                example_body(PADDLE, namespace),
                lambda b: b["spec"]["paddleReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][
                    0
                ].update(name="trainer"),
            ),
            "spec.paddleReplicaSpecs.Worker.template.spec.containers: Required value: "
            "must have at least one container with name paddle",
        ),
        (
            JAX,
            changed(
                example_body(JAX, namespace),
                lambda b: b["spec"]["jaxReplicaSpecs"].update(Master=b["spec"]["jaxReplicaSpecs"]["Worker"]),
            ),
            'spec.jaxReplicaSpecs.Master: Unsupported value: "Master": supported values: "Worker"',
        ),
        (
            JAX,
            changed(
                example_body(JAX, namespace), lambda b: b["spec"].update(runPolicy={"managedBy": "someone"})
            ),
            'spec.runPolicy.managedBy: Unsupported value: "someone": supported values: '
            '"kubeflow.org/training-operator", "kueue.x-k8s.io/multikueue"',
        ),
    ]
    for kind, body, message in cases:
        code, text = refusal(custom, kind, body)
        assert code == 400, (kind, text)
        assert text.endswith(message), (kind, text)
    no_replicas = changed(xgb, lambda b: b["spec"]["xgbReplicaSpecs"]["Master"].pop("replicas"))
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, XGBOOST.plural, no_replicas)


@pytest.mark.parametrize("kind", V194_KINDS, ids=str)
def test_the_update_contract_is_the_familys(new_job: NewJob, namespace: str, kind: KubeflowKind) -> None:
    job = new_job(kind, example_body(kind, namespace))
    job.wait_condition("Created")
    body = job.body()
    scaled = changed(body, lambda b: b["spec"][kind.specs_field]["Worker"].update(replicas=5))
    out = job.cluster.kubectl("replace", "-f", "-", input=json.dumps(scaled), check=False)
    assert out.returncode != 0
    assert f"spec.{kind.specs_field}" in out.stderr and "field is not updatable" in out.stderr
    managed = changed(
        body, lambda b: b["spec"].setdefault("runPolicy", {}).update(managedBy="kueue.x-k8s.io/multikueue")
    )
    out = job.cluster.kubectl("replace", "-f", "-", input=json.dumps(managed), check=False)
    assert out.returncode != 0 and "spec.runPolicy" in out.stderr, out.stderr
    job.merge_patch(
        {"metadata": {"labels": {"team": "ml"}}, "spec": {"runPolicy": {"activeDeadlineSeconds": 600}}}
    )
    assert job.body()["spec"]["runPolicy"]["activeDeadlineSeconds"] == 600


# --- the Kubeflow Python SDK -----------------------------------------------------------------------


def sdk(cluster: Cluster, namespace: str, phase: str) -> dict[str, Any]:
    if not SDK_PYTHON.exists():  # `make test` builds it; a bare pytest run builds it here
        subprocess.run(["make", ".venv-sdk/.installed"], cwd=ROOT, check=True, capture_output=True)
    script = Path(__file__).with_name("kubeflow_sdk_client.py")
    out = subprocess.run(
        [str(SDK_PYTHON), str(script), str(cluster.kubeconfig), namespace, phase],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return report


def test_the_kubeflow_sdk_drives_the_new_kinds(
    cluster: Cluster, custom: client.CustomObjectsApi, namespace: str, operator: LocalOperator
) -> None:
    del operator  # running: it reconciles the jobs the SDK creates
    created = sdk(cluster, namespace, "create")
    assert {kind: seen["kind"] for kind, seen in created.items()} == {
        k: k for k in ("XGBoostJob", "PaddleJob", "JAXJob")
    }
    assert created["XGBoostJob"]["master_pods"] == ["sdk-xgboost-master-0"]
    assert created["PaddleJob"]["master_pods"] == ["sdk-paddle-master-0"]
    assert created["JAXJob"]["master_pods"] == ["sdk-jax-worker-0"]
    assert created["XGBoostJob"]["pods"] == [
        "sdk-xgboost-master-0",
        "sdk-xgboost-worker-0",
        "sdk-xgboost-worker-1",
    ]
    assert created["JAXJob"]["pods"] == ["sdk-jax-worker-0", "sdk-jax-worker-1"]
    for kind, seen in created.items():
        assert seen["running"] is True, kind
        assert seen["conditions"][:2] == ["Created", "Running"], kind
        assert seen["listed"] == [seen["pods"][0].rsplit("-", 2)[0]], kind
    for pod in ("sdk-xgboost-master-0", "sdk-paddle-master-0", "sdk-jax-worker-0", "sdk-jax-worker-1"):
        devpods.finish(cluster, namespace, pod, 0)
    finished = sdk(cluster, namespace, "finish")
    for kind, seen in finished.items():
        assert seen["succeeded"] is True, kind
        assert "Succeeded" in seen["conditions"], kind
    assert finished["XGBoostJob"]["replica_statuses"]["Master"]["succeeded"] == 1

    def deleted() -> bool:
        plurals = ("xgboostjobs", "paddlejobs", "jaxjobs")
        return not any(
            custom.list_namespaced_custom_object(GROUP, VERSION, namespace, p)["items"] for p in plurals
        )

    wait_for(deleted, 30, what="the SDK's delete_job of each job")
