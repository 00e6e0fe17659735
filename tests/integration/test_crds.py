"""The four CRDs as the real kube-apiserver serves them (foundation issue): the seed bodies are
accepted and read back unchanged, replaced with ?pretty=true, merge-patched; wrongly typed values get
the apiserver's own 422; printer columns and short names show in kubectl."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from devcluster.cluster import Cluster

from testlib import creatable, load_seed

SEEDS = {
    "tfjob-put.request.json": ("kubeflow.org", "v1", "tfjobs"),
    "pytorchjob-put.request.json": ("kubeflow.org", "v1", "pytorchjobs"),
    "mxjob-put.request.json": ("kubeflow.org", "v1", "mxjobs"),
    "volcanojob-put.request.json": ("batch.volcano.sh", "v1alpha1", "jobs"),
}
SCHEMA_DEFAULTS = {"jobs": {"maxRetry": 3, "queue": "default"}}


def _path(group: str, version: str, plural: str, namespace: str, name: str) -> str:
    return f"/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}"


def _apply(cluster: Cluster, body: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def _get(cluster: Cluster, plural_group: str, namespace: str, name: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", plural_group, name, "-n", namespace, "-o", "json").stdout))


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_seed_body_is_stored_unchanged(cluster: Cluster, namespace: str, seed: str) -> None:
    group, _, plural = SEEDS[seed]
    body = creatable(load_seed(seed), namespace)
    _apply(cluster, body)
    stored = _get(cluster, f"{plural}.{group}", namespace, body["metadata"]["name"])
    # Quantities as numbers and strings, `Ps` keys, both restartPolicy places survive; the only
    # additions are the Volcano schema's own defaults (as upstream's CRD: maxRetry 3, queue default).
    assert stored["spec"] == {**SCHEMA_DEFAULTS.get(plural, {}), **body["spec"]}
    assert stored["metadata"].get("labels") == body["metadata"].get("labels")


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_put_to_the_seed_url_with_pretty(cluster: Cluster, namespace: str, seed: str) -> None:
    group, version, plural = SEEDS[seed]
    body = creatable(load_seed(seed), namespace)
    name = body["metadata"]["name"]
    _apply(cluster, body)
    path = _path(group, version, plural, namespace, name) + "?pretty=true"
    for _attempt in range(10):
        # If the operator runs, its status writes move the resourceVersion on: retry a conflict, as
        # any client of a controlled object does.
        current = _get(cluster, f"{plural}.{group}", namespace, name)
        replacement = copy.deepcopy(load_seed(seed))  # the seed's request body, status and all
        replacement["metadata"]["namespace"] = namespace
        replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        replacement["metadata"]["uid"] = current["metadata"]["uid"]
        out = cluster.kubectl("replace", "--raw", path, "-f", "-", input=json.dumps(replacement), check=False)
        if "Conflict" not in out.stderr and "has been modified" not in out.stderr:
            break
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('{\n  "'), "pretty=true answers an indented body"
    answered = json.loads(out.stdout)
    assert answered["spec"] == {**SCHEMA_DEFAULTS.get(plural, {}), **replacement["spec"]}
    # The status subresource is enabled, so a replace of the main resource ignores `status`.
    # (The PUT carried the resourceVersion of `current`, so nothing wrote status in between.)
    assert answered.get("status") != replacement.get("status")
    assert answered.get("status") == current.get("status")


def test_stale_resource_version_is_a_conflict(cluster: Cluster, namespace: str) -> None:
    body = creatable(load_seed("pytorchjob-put.request.json"), namespace)
    _apply(cluster, body)
    stale = {**load_seed("pytorchjob-put.request.json")}
    stale["metadata"] = {**stale["metadata"], "namespace": namespace}  # resourceVersion "72519846" from 2019
    out = cluster.kubectl("replace", "-f", "-", input=json.dumps(stale), check=False)
    assert out.returncode != 0
    assert (
        "Conflict" in out.stderr
        or "the object has been modified" in out.stderr
        or "Precondition" in out.stderr
    )


def test_merge_patch_of_the_004_example(cluster: Cluster, namespace: str) -> None:
    body = creatable(load_seed("pytorchjob-put.request.json"), namespace)
    body["metadata"].pop("labels")
    _apply(cluster, body)
    patch = load_seed("pytorchjob-patch.request.json")
    cluster.kubectl(
        "patch", "pytorchjob", "pytorch-test", "-n", namespace, "--type=merge", "-p", json.dumps(patch)
    )
    stored = _get(cluster, "pytorchjobs.kubeflow.org", namespace, "pytorch-test")
    assert stored["metadata"]["labels"] == {"app": "test"}


WRONG_TYPES = [
    ("tfjob-put.request.json", ["spec", "tfReplicaSpecs", "Worker", "replicas"], "two"),
    ("tfjob-put.request.json", ["spec", "cleanPodPolicy"], "Sometimes"),
    ("pytorchjob-put.request.json", ["spec", "ttlSecondsAfterFinished"], -1),
    ("pytorchjob-put.request.json", ["spec", "runPolicy"], {"ttlSecondsAfterFinished": -1}),
    ("mxjob-put.request.json", ["spec", "runPolicy"], {"cleanPodPolicy": "Sometimes"}),
    ("volcanojob-put.request.json", ["spec", "tasks", 0, "replicas"], "two"),
    ("volcanojob-put.request.json", ["spec", "ttlSecondsAfterFinished"], -1),
]


@pytest.mark.parametrize(("seed", "path", "value"), WRONG_TYPES, ids=lambda v: str(v))
def test_wrongly_typed_values_get_the_apiservers_422(
    cluster: Cluster, namespace: str, seed: str, path: list[Any], value: Any
) -> None:
    body = creatable(load_seed(seed), namespace)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    out = cluster.kubectl("create", "-f", "-", input=json.dumps(body), check=False)
    assert out.returncode != 0
    assert "is invalid" in out.stderr, out.stderr  # the apiserver's 422 Invalid, not a webhook denial
    assert "admission webhook" not in out.stderr


def test_printer_columns_and_short_names(cluster: Cluster, namespace: str) -> None:
    _apply(cluster, creatable(load_seed("pytorchjob-put.request.json"), namespace))
    _apply(cluster, creatable(load_seed("volcanojob-put.request.json"), namespace))
    pytorch = cluster.kubectl("get", "pytorchjobs", "-n", namespace).stdout.splitlines()
    assert pytorch[0].split() == ["NAME", "STATE", "AGE"]
    assert pytorch[1].startswith("pytorch-test")
    volcano = cluster.kubectl("get", "vcjob", "-n", namespace).stdout.splitlines()
    assert volcano[0].split()[:4] == ["NAME", "STATUS", "MINAVAILABLE", "RUNNINGS"]
    assert volcano[1].startswith("openmpi-hello-2-com")
    assert cluster.kubectl("get", "vj", "-n", namespace, "-o", "name").stdout.strip() == (
        "job.batch.volcano.sh/openmpi-hello-2-com"
    )
    # The built-in batch/v1 Job keeps the plain name `job`.
    assert cluster.kubectl("get", "job", "-n", namespace, "-o", "name").stdout.strip() == ""


def test_api_resources_list_the_kubeflow_kinds(cluster: Cluster) -> None:
    out = cluster.kubectl("api-resources", "--api-group=kubeflow.org", "-o", "name").stdout.split()
    assert sorted(out) == [
        "jaxjobs.kubeflow.org",
        "mpijobs.kubeflow.org",
        "mxjobs.kubeflow.org",
        "paddlejobs.kubeflow.org",
        "pytorchjobs.kubeflow.org",
        "tfjobs.kubeflow.org",
        "xgboostjobs.kubeflow.org",
    ]
