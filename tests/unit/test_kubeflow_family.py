"""The Kubeflow family as a whole: the registry, the import contracts every framework is in, the CRDs of
the kinds added from training-operator v1.9.4 (XGBoostJob, PaddleJob, JAXJob), and the rules that hold
for all six kinds (runPolicy.managedBy, a user's env var of the same name)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubeflow_helpers import FakeCluster, created, env_entries, kubeflow_job, later

from jobwarden import kinds
from jobwarden.core.plan import Event, Settings
from jobwarden.kinds import kubeflow
from jobwarden.kinds.kubeflow import KubeflowKind

ROOT = Path(__file__).resolve().parents[2]
REPLICAS: dict[str, dict[str, int]] = {
    "TFJob": {"Worker": 2},
    "PyTorchJob": {"Master": 1, "Worker": 1},
    "MXJob": {"Scheduler": 1, "Server": 1, "Worker": 1},
    "XGBoostJob": {"Master": 1, "Worker": 1},
    "PaddleJob": {"Worker": 2},
    "JAXJob": {"Worker": 2},
}
FRAMEWORK_IDS = [k.resource.kind for k in kubeflow.FRAMEWORKS]


def test_the_registry_serves_every_framework_once() -> None:
    assert [k.resource.kind for k in kubeflow.FRAMEWORKS] == list(REPLICAS)
    assert kinds.REGISTRY[: len(kubeflow.FRAMEWORKS)] == kubeflow.FRAMEWORKS
    for kind in kubeflow.FRAMEWORKS:
        assert kinds.by_kind("kubeflow.org/v1", kind.resource.kind) is kind
        assert kinds.by_plural("kubeflow.org", kind.resource.plural) is kind


def test_every_framework_is_in_the_import_contracts() -> None:
    """Adding a framework is one module and one FRAMEWORKS line; this says when its name is missing
    from the contracts that keep frameworks from importing each other and the engine from them."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    independent = next(c for c in contracts if c["type"] == "independence" and "kinds" in c["modules"][0])
    engine = next(c for c in contracts if c["name"].startswith("The Kubeflow engine sits below"))
    modules = {f"jobwarden.kinds.kubeflow.{k.resource.kind.lower()}" for k in kubeflow.FRAMEWORKS}
    modules.add("jobwarden.kinds.kubeflow.mpijob")  # MPIJOB, the member with a plan of its own
    assert modules <= set(independent["modules"])
    assert modules <= set(engine["forbidden_modules"])


@pytest.mark.parametrize("kind", kubeflow.FRAMEWORKS, ids=FRAMEWORK_IDS)
def test_a_job_managed_by_multikueue_is_left_alone(kind: KubeflowKind) -> None:
    """v1.9 ManagedByExternalController: nothing is planned, not even the Created condition; the
    default manager's name changes nothing."""
    job = kubeflow_job(
        kind, REPLICAS[kind.resource.kind], runPolicy={"managedBy": "kueue.x-k8s.io/multikueue"}
    )
    cluster = FakeCluster(kind, job)
    assert cluster.step().is_noop
    assert cluster.pods == {} and cluster.status == {}
    ours = kubeflow_job(
        kind, REPLICAS[kind.resource.kind], runPolicy={"managedBy": "kubeflow.org/training-operator"}
    )
    plan = FakeCluster(kind, ours).step()
    assert created(plan, "Pod")
    name = kind.resource.kind
    assert Event("Normal", f"{name}Created", f"{name} job is created.") in plan.events


@pytest.mark.parametrize("kind", kubeflow.FRAMEWORKS[3:], ids=FRAMEWORK_IDS[3:])
def test_a_users_variable_of_the_same_name_wins_and_is_not_duplicated(kind: KubeflowKind) -> None:
    """Upstream appends its variables after the user's, so a user's PYTHONUNBUFFERED=0 stays in the
    list and is silently overridden by the later one. The family rule: the user's value is kept and
    the operator does not add its own (docs/behaviour.md)."""
    job = kubeflow_job(kind, REPLICAS[kind.resource.kind])
    for replica in job["spec"][kind.shape.replica_specs_field].values():
        replica["template"]["spec"]["containers"][0]["env"] = [{"name": "PYTHONUNBUFFERED", "value": "0"}]
    for pod in created(FakeCluster(kind, job).step(), "Pod").values():
        entries = env_entries(pod["spec"]["containers"][0])
        assert [value for name, value in entries if name == "PYTHONUNBUFFERED"] == ["0"]
        assert entries[0] == ("PYTHONUNBUFFERED", "0")


@pytest.mark.parametrize("kind", kubeflow.FRAMEWORKS[3:], ids=FRAMEWORK_IDS[3:])
def test_new_kinds_finish_and_time_out_with_the_shared_engine(kind: KubeflowKind) -> None:
    """activeDeadlineSeconds, backoffLimit, TTL and cleanPodPolicy are the engine's, whatever the kind."""
    job = kubeflow_job(
        kind, REPLICAS[kind.resource.kind], runPolicy={"activeDeadlineSeconds": 60, "cleanPodPolicy": "All"}
    )
    cluster = FakeCluster(kind, job)
    plan = cluster.step()
    assert plan.wake_at == later(60)
    cluster.run_all()
    cluster.step(later(5))
    pods = set(cluster.pods)
    plan = cluster.step(later(60))
    assert plan.deadline_exceeded
    failed = cluster.condition("Failed")
    assert failed is not None
    assert failed["reason"] == f"{kind.resource.kind}Failed"
    assert (
        failed["message"]
        == f"{kind.resource.kind} job has failed because it was active longer than specified deadline"
    )
    assert {ref.name for ref in plan.delete if ref.kind == "Pod"} == pods
    assert cluster.pods == {}


@pytest.mark.parametrize("kind", kubeflow.FRAMEWORKS[3:], ids=FRAMEWORK_IDS[3:])
def test_new_kinds_are_gang_scheduled_like_the_others(kind: KubeflowKind) -> None:
    """v1.9.4 gang-schedules every kind through the shared ReconcileJobs; so does the shared engine."""
    gang = Settings(gang_scheduler="volcano", volcano_scheduler_installed=True)
    replicas = REPLICAS[kind.resource.kind]
    cluster = FakeCluster(kind, kubeflow_job(kind, replicas), gang)
    plan = cluster.step()
    assert [m["kind"] for m in plan.create] == ["PodGroup"]
    assert created(plan, "PodGroup")["job"]["spec"] == {
        "minMember": sum(replicas.values()),
        "queue": "default",
    }
    cluster.podgroups["job"]["status"] = {"phase": "Inqueue"}
    pods = created(cluster.step(later(1)), "Pod")
    assert len(pods) == sum(replicas.values())
    assert {p["spec"]["schedulerName"] for p in pods.values()} == {"volcano"}


# --- CRDs: schema-compatible with v1.9.4's ------------------------------------------------------

# Every field v1.9.4's CRD (manifests/base/crds/kubeflow.org_<plural>.yaml) has outside pod templates
# and MetricSpecs, with its type: an object it stores must be stored the same here.
RUN_POLICY = {
    "spec.runPolicy": "object",
    "spec.runPolicy.activeDeadlineSeconds": "integer",
    "spec.runPolicy.backoffLimit": "integer",
    "spec.runPolicy.cleanPodPolicy": "string",
    "spec.runPolicy.managedBy": "string",
    "spec.runPolicy.schedulingPolicy": "object",
    "spec.runPolicy.schedulingPolicy.minAvailable": "integer",
    "spec.runPolicy.schedulingPolicy.minResources": "object",
    "spec.runPolicy.schedulingPolicy.priorityClass": "string",
    "spec.runPolicy.schedulingPolicy.queue": "string",
    "spec.runPolicy.schedulingPolicy.scheduleTimeoutSeconds": "integer",
    "spec.runPolicy.suspend": "boolean",
    "spec.runPolicy.ttlSecondsAfterFinished": "integer",
}
STATUS = {
    "status.completionTime": "string",
    "status.conditions": "array",
    "status.conditions[].lastTransitionTime": "string",
    "status.conditions[].lastUpdateTime": "string",
    "status.conditions[].message": "string",
    "status.conditions[].reason": "string",
    "status.conditions[].status": "string",
    "status.conditions[].type": "string",
    "status.lastReconcileTime": "string",
    "status.replicaStatuses.*.active": "integer",
    "status.replicaStatuses.*.failed": "integer",
    "status.replicaStatuses.*.labelSelector": "object",
    "status.replicaStatuses.*.labelSelector.matchLabels": "object",
    "status.replicaStatuses.*.selector": "string",
    "status.replicaStatuses.*.succeeded": "integer",
    "status.startTime": "string",
}


def replica_fields(field: str) -> dict[str, str]:
    return {
        f"spec.{field}.*.replicas": "integer",
        f"spec.{field}.*.restartPolicy": "string",
        f"spec.{field}.*.template": "object",
    }


UPSTREAM_FIELDS = {
    "xgboostjobs": {**RUN_POLICY, **STATUS, **replica_fields("xgbReplicaSpecs")},
    "paddlejobs": {
        **RUN_POLICY,
        **STATUS,
        **replica_fields("paddleReplicaSpecs"),
        "spec.elasticPolicy.maxReplicas": "integer",
        "spec.elasticPolicy.maxRestarts": "integer",
        "spec.elasticPolicy.metrics": "array",
        "spec.elasticPolicy.minReplicas": "integer",
    },
    "jaxjobs": {**RUN_POLICY, **STATUS, **replica_fields("jaxReplicaSpecs")},
}


def schema_type(schema: dict[str, Any], path: str) -> str | None:
    """The type our schema gives `path`, "any" under preserved unknown fields, None if pruned."""
    node = schema
    for part in path.replace("[]", ".[]").split("."):
        if node.get("x-kubernetes-preserve-unknown-fields") and part not in (node.get("properties") or {}):
            return "any"
        if part == "*":
            node = node.get("additionalProperties") or {}
        elif part == "[]":
            node = node.get("items") or {}
        else:
            child = (node.get("properties") or {}).get(part)
            if child is None:
                return None
            node = child
    return str(node.get("type")) if node.get("type") else "any"


@pytest.mark.parametrize("plural", list(UPSTREAM_FIELDS))
def test_the_crd_keeps_every_field_v1_9_4_has(plural: str) -> None:
    crd = yaml.safe_load((ROOT / "crds" / f"kubeflow.org_{plural}.yaml").read_text())
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    for path, wanted in UPSTREAM_FIELDS[plural].items():
        found = schema_type(schema, path)
        assert found in (wanted, "any"), f"{plural}: {path} is {found}, v1.9.4 has {wanted}"
    kind = kinds.by_plural("kubeflow.org", plural)
    assert kind is not None
    assert crd["spec"]["names"]["kind"] == kind.resource.kind
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["State"] == ".status.conditions[-1:].type"
    assert columns["Age"] == ".metadata.creationTimestamp"
    required = schema["properties"]["spec"]["required"]
    assert required == [kind.shape.replica_specs_field]
    listed = yaml.safe_load((ROOT / "crds" / "kustomization.yaml").read_text())["resources"]
    assert f"kubeflow.org_{plural}.yaml" in listed


# --- robustness: a random part of an example broken --------------------------------------------

EXAMPLES = ROOT / "devcluster" / "examples"
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from(["", "x", "2", "Worker", "Master", "xgboost"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["name", "ports", "x"]), children, max_size=3)
    ),
    max_leaves=8,
)


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths_of(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths_of(child, (*prefix, index))
    return found


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["xgboostjob", "paddlejob", "jaxjob"]), st.data())
def test_admission_and_plan_never_raise_on_a_broken_example(name: str, data: st.DataObject) -> None:
    """Whatever part of the body is broken, admission answers; what admission accepts, plans."""
    job = json.loads((EXAMPLES / f"{name}.json").read_text())
    job["metadata"].update(namespace="ns", uid="uid-1")
    path = data.draw(st.sampled_from([p for p in paths_of(job) if len(p) > 1 and p[0] == "spec"]))
    target = job
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(JSON_VALUES)
    kind = kinds.by_kind("kubeflow.org/v1", job["kind"])
    assert isinstance(kind, KubeflowKind)
    if not kind.validate(job):
        FakeCluster(kind, job).step()
