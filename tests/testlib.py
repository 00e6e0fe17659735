"""Helpers shared by unit and integration tests (importable as `testlib`: pytest puts tests/ on
sys.path through the rootdir conftest)."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEEDS = Path(__file__).resolve().parent / "seeds"
SERVER_SET_METADATA = (
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "selfLink",
    "generation",
    "managedFields",
)


def load_seed(name: str) -> dict[str, Any]:
    return dict(json.loads((SEEDS / name).read_text()))


def creatable(body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    """A seed body as a user would create it: server-set fields and status stripped."""
    clean = copy.deepcopy(body)
    clean.pop("status", None)
    for key in SERVER_SET_METADATA:
        clean["metadata"].pop(key, None)
    if namespace:
        clean["metadata"]["namespace"] = namespace
    return clean


def wait_for(
    check: Callable[[], Any], timeout: float = 30, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def load_by_path(path: Path, name: str) -> ModuleType:
    """The Python file at `path` as a module called `name`, for files not on sys.path (tests/e2e,
    another tier's test module)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def kustomize_render() -> ModuleType:
    """tests/e2e/kustomize_render.py (`kubectl kustomize` as objects), loaded by path: tests/e2e is not
    on sys.path."""
    return load_by_path(ROOT / "tests" / "e2e" / "kustomize_render.py", "kustomize_render")


def small_pytorchjob(namespace: str, name: str, workers: int = 1, **run_policy: Any) -> dict[str, Any]:
    """A minimal PyTorchJob: 1 Master + `workers` Workers (OnFailure), with `runPolicy` fields."""
    container = {"name": "pytorch", "image": "registry.example/train:1"}
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [container]}}}
    spec: dict[str, Any] = {
        "pytorchReplicaSpecs": {"Master": replica, "Worker": {**replica, "replicas": workers}}
    }
    if run_policy:
        spec["runPolicy"] = dict(run_policy)
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
