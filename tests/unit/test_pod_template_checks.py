"""Pod-template checks that let admission refuse a job whose pods the apiserver would refuse later
(so no job is half-created): container names, ports, resource quantities."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from jobwarden import kinds
from jobwarden.core.admission.containers import container_errors
from jobwarden.kinds.admission import review
from testlib import creatable, load_seed

TF = kinds.by_plural("kubeflow.org", "tfjobs")
VOLCANO = kinds.by_plural("batch.volcano.sh", "jobs")
WORKER = "spec.tfReplicaSpecs.Worker.template.spec.containers[0]"


def tf_job(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    job = creatable(load_seed("tfjob-put.request.json"), "ns")
    change(job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0])
    return job


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["ports"].__setitem__(0, {"containerPort": 70000, "name": "tfjob-port"}),
            f"{WORKER}.ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            lambda c: c["ports"].append({"containerPort": 2223, "name": "tfjob-port"}),
            f'{WORKER}.ports[1].name: Duplicate value: "tfjob-port": port names must be unique',
        ),
        (
            lambda c: c["ports"].append({"containerPort": 2223, "name": "a-much-too-long-port-name"}),
            f'{WORKER}.ports[1].name: Invalid value: "a-much-too-long-port-name": must be an IANA_SVC_NAME',
        ),
        (
            lambda c: c["resources"]["limits"].__setitem__("cpu", "lots"),
            f'{WORKER}.resources.limits.cpu: Invalid value: "lots": must be a quantity',
        ),
        (
            lambda c: c["resources"]["requests"].__setitem__("memory", "8Gi"),
            f'{WORKER}.resources.requests.memory: Invalid value: "8Gi": must be less than or equal',
        ),
    ],
    ids=["port-range", "port-name-twice", "port-name-long", "bad-quantity", "request-above-limit"],
)
def test_a_pod_spec_the_apiserver_would_refuse_is_refused_at_create(change: Any, expected: str) -> None:
    assert TF is not None
    verdict = review(TF, "CREATE", None, tf_job(change))
    assert verdict.code == 400
    assert expected in verdict.message, verdict.message


def test_container_names_must_be_dns_labels_and_unique() -> None:
    assert VOLCANO is not None
    job = creatable(load_seed("volcanojob-put.request.json"), "ns")
    containers = job["spec"]["tasks"][1]["template"]["spec"]["containers"]
    containers.append({**copy.deepcopy(containers[0])})
    containers[0]["name"] = "MPI_Worker"
    verdict = review(VOLCANO, "CREATE", None, job)
    assert verdict.code == 400
    assert 'spec.tasks[1].template.spec.containers[0].name: Invalid value: "MPI_Worker"' in verdict.message
    containers[0]["name"] = "mpiworker"
    verdict = review(VOLCANO, "CREATE", None, job)
    assert 'containers[1].name: Duplicate value: "mpiworker"' in verdict.message


def test_the_seed_bodies_pass_the_pod_checks() -> None:
    for seed, kind in (("tfjob-put.request.json", TF), ("volcanojob-put.request.json", VOLCANO)):
        assert kind is not None
        assert review(kind, "CREATE", None, creatable(load_seed(seed), "ns")).allowed


# --------------------------------------------------------------------------------------------------
# Pod-level checks (core/podspec.py): volumes, init containers, pod-level resources

POD = "spec.tfReplicaSpecs.Worker.template.spec"


def tf_pod(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    job = creatable(load_seed("tfjob-put.request.json"), "ns")
    change(job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"])
    return job


def _mount(pod: dict[str, Any], name: str, path: str = "/data") -> None:
    pod["containers"][0].setdefault("volumeMounts", []).append({"name": name, "mountPath": path})


def _declare(pod: dict[str, Any], name: str) -> None:
    pod.setdefault("volumes", []).append({"name": name, "emptyDir": {}})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: _mount(p, "data"), f'{POD}.containers[0].volumeMounts[0].name: Not found: "data"'),
        (
            lambda p: (_declare(p, "data"), _declare(p, "data")),
            f'{POD}.volumes[1].name: Duplicate value: "data"',
        ),
        (
            lambda p: (_declare(p, "a"), _declare(p, "b"), _mount(p, "a"), _mount(p, "b")),
            f'{POD}.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique',
        ),
        (
            lambda p: (
                p.__setitem__("initContainers", [{"name": "init", "image": "busybox"}])
                or _mount({"containers": p["initContainers"]}, "cache")
            ),
            f'{POD}.initContainers[0].volumeMounts[0].name: Not found: "cache"',
        ),
        (
            lambda p: p.__setitem__("initContainers", [{"name": "tensorflow", "image": "busybox"}]),
            f'{POD}.initContainers[0].name: Duplicate value: "tensorflow"',
        ),
        (
            lambda p: p.__setitem__("initContainers", [{"name": "init"}]),
            f"{POD}.initContainers[0].image: Required value",
        ),
        (
            lambda p: p.__setitem__("resources", {"requests": {"cpu": "4"}, "limits": {"cpu": "2"}}),
            f'{POD}.resources.requests.cpu: Invalid value: "4": must be less than or equal to cpu limit of 2',
        ),
        (
            lambda p: p.__setitem__("resources", {"limits": {"nvidia.com/gpu": "1"}}),
            f'{POD}.resources.limits.nvidia.com/gpu: Unsupported value: "nvidia.com/gpu"',
        ),
        (
            lambda p: p.__setitem__("resources", {"requests": {"memory": "lots"}}),
            f'{POD}.resources.requests.memory: Invalid value: "lots": must be a quantity',
        ),
    ],
    ids=[
        "mount-undeclared",
        "volume-twice",
        "mount-path-twice",
        "init-mount-undeclared",
        "init-name-clash",
        "init-image",
        "pod-request-above-limit",
        "pod-resource-kind",
        "pod-quantity",
    ],
)
def test_pod_level_problems_the_apiserver_would_refuse_are_refused_at_create(
    change: Any, expected: str
) -> None:
    assert TF is not None
    verdict = review(TF, "CREATE", None, tf_pod(change))
    assert verdict.code == 400
    assert expected in verdict.message, verdict.message


def test_declared_volumes_pod_resources_within_limits_and_hugepages_are_fine() -> None:
    def good(pod: dict[str, Any]) -> None:
        _declare(pod, "data")
        _mount(pod, "data")
        pod["containers"][0]["volumeDevices"] = [{"name": "data", "devicePath": "/dev/x"}]
        pod["resources"] = {"requests": {"cpu": "1", "hugepages-2Mi": "2Mi"}, "limits": {"cpu": "2000m"}}

    assert TF is not None
    verdict = review(TF, "CREATE", None, tf_pod(good))
    assert verdict.allowed, verdict.message


def test_volcano_templates_get_the_pod_checks_too() -> None:
    assert VOLCANO is not None
    job = creatable(load_seed("volcanojob-put.request.json"), "ns")
    job["spec"]["tasks"][0]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "scratch", "mountPath": "/scratch"}
    ]
    job["spec"]["tasks"][1]["template"]["spec"]["resources"] = {
        "requests": {"memory": "2Gi"},
        "limits": {"memory": "1Gi"},
    }
    verdict = review(VOLCANO, "CREATE", None, job)
    assert verdict.code == 400
    assert (
        'spec.tasks[0].template.spec.containers[0].volumeMounts[0].name: Not found: "scratch"'
        in verdict.message
    )
    assert "spec.tasks[1].template.spec.resources.requests.memory" in verdict.message


def test_a_port_must_be_an_object_with_a_container_port() -> None:
    """Found by test_kubeflow_family's robustness property: `ports: [null]` was accepted and then broke
    the plan; the apiserver refuses both shapes when it is asked to create the pod."""
    path = "spec.containers"
    assert [str(e) for e in container_errors(path, [{"name": "a", "image": "i", "ports": [None]}])] == [
        "spec.containers[0].ports[0]: Invalid value: null: must be an object"
    ]
    assert [
        str(e) for e in container_errors(path, [{"name": "a", "image": "i", "ports": [{"name": "x"}]}])
    ] == ["spec.containers[0].ports[0].containerPort: Required value: every port needs a containerPort"]
    assert [str(e) for e in container_errors(path, [{"name": "a", "image": "i", "ports": "80"}])] == [
        'spec.containers[0].ports: Invalid value: "80": must be a list'
    ]
