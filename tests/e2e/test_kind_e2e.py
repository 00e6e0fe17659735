"""End-to-end on kind: the built image, installed by `kubectl apply -k manifests/`, runs the seed
scenarios (tests/seeds/) with real pods.

Run it with tests/e2e/run-kind-e2e.sh (build, cluster, install, then `pytest -m e2e` against
JOBWARDEN_E2E_KUBECONFIG). `pytest -m e2e tests/e2e` alone also works where Docker and kind do: the
session fixture then runs the script's `setup` step itself and deletes the cluster afterwards
(KEEP_CLUSTER=1 keeps it). Without a Docker engine or without kind every test is skipped, with the
reason computed at run time.

Seed jobs are made runnable on a laptop-sized cluster: every container becomes the workload image
(busybox) running `sh -c 'exit N'` with tiny resource requests; names, replica layout, ports,
restart policies, plugins and the Volcano schedulerName are kept as the seed has them.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # the first test also builds the cluster

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SEEDS = REPO / "tests" / "seeds"
SCRIPT = HERE / "run-kind-e2e.sh"
WORKLOAD_IMAGE = os.environ.get("JOBWARDEN_E2E_WORKLOAD_IMAGE", "busybox:1.37")
TIMEOUT = float(os.environ.get("JOBWARDEN_E2E_TIMEOUT", "300"))
WEBHOOK = "validate.jobwarden.dev"
POLICY = "ValidatingAdmissionPolicy 'jobwarden-updates."

# kind -> (group, version, plural)
RESOURCES = {
    "TFJob": ("kubeflow.org", "v1", "tfjobs"),
    "PyTorchJob": ("kubeflow.org", "v1", "pytorchjobs"),
    "MXJob": ("kubeflow.org", "v1", "mxjobs"),
    "Job": ("batch.volcano.sh", "v1alpha1", "jobs"),
}


# --------------------------------------------------------------------------------------------------
# Cluster access (skipped, with the reason, where there is no Docker engine or no kind)
# --------------------------------------------------------------------------------------------------


def why_no_cluster() -> str | None:
    if shutil.which("docker") is None:
        return "no Docker engine: the docker CLI is not installed"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "no Docker engine: `docker info` timed out"
    if info.returncode != 0:
        detail = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine: `docker info` failed ({detail})"
    if shutil.which("kind") is None:
        return "kind is not installed (needed to create the test cluster)"
    if shutil.which("kubectl") is None:
        return "kubectl is not installed"
    return None


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    reason = why_no_cluster()
    if reason:
        pytest.skip(reason)
    given = os.environ.get("JOBWARDEN_E2E_KUBECONFIG")
    if given:
        yield given
        return
    # Same steps as the script (one recipe): build, create, load, apply, wait. Its log goes to stderr;
    # the last line of stdout is the kubeconfig path.
    proc = subprocess.run(
        ["bash", str(SCRIPT), "setup"], stdout=subprocess.PIPE, text=True, timeout=1700, check=False
    )
    assert proc.returncode == 0, "tests/e2e/run-kind-e2e.sh setup failed (see its log above)"
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        if os.environ.get("KEEP_CLUSTER") != "1":
            subprocess.run(["bash", str(SCRIPT), "teardown"], check=False)


@pytest.fixture(scope="session")
def api(kubeconfig: str) -> Iterator[Any]:
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=kubeconfig)
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def namespace(api: Any) -> Iterator[str]:
    from kubernetes import client

    core = client.CoreV1Api(api)
    name = f"jw-e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"jobwarden.dev/e2e": "true"}}})
    # Pods cannot be created before the namespace's default ServiceAccount exists.
    wait_for(
        lambda: core.list_namespaced_service_account(name).items,
        bool,
        f"ServiceAccount default in {name}",
        60,
    )
    try:
        yield name
    finally:
        core.delete_namespace(name)


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def wait_for(get: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = get()
        if done(last):
            return last
        time.sleep(2)
    shown = json.dumps(last.get("status") if isinstance(last, dict) else repr(last), indent=1, default=str)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last seen:\n{shown[:4000]}")


def pod_specs(job: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(role, replica spec or Volcano task, pod spec) for every role of the job."""
    spec = job["spec"]
    if job["kind"] == "Job":
        for task in spec["tasks"]:
            yield task["name"], task, task["template"]["spec"]
        return
    [field] = [k for k in spec if k.endswith("ReplicaSpecs")]
    for role, replica in spec[field].items():
        yield role, replica, replica["template"]["spec"]


def runnable(
    seed: str,
    namespace: str,
    exit_codes: dict[str, int] | None = None,
    restart_policy: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The seed's job, runnable here: every container exits with exit_codes[role] (default 0)."""
    job: dict[str, Any] = json.loads((SEEDS / f"{seed}.request.json").read_text())
    job.pop("status", None)
    meta = job["metadata"]
    job["metadata"] = {"name": meta["name"], "namespace": namespace}
    if meta.get("labels"):
        job["metadata"]["labels"] = meta["labels"]
    for role, replica, pod in pod_specs(job):
        code = (exit_codes or {}).get(role, 0)
        pod.pop("imagePullSecrets", None)
        pod["containers"] = [
            {
                "name": c["name"],
                "image": WORKLOAD_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", f"exit {code}"],
                **({"ports": c["ports"]} if c.get("ports") else {}),
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"cpu": "100m", "memory": "32Mi"},
                },
            }
            for c in pod["containers"]
        ]
        if restart_policy and role in restart_policy:
            pod.pop("restartPolicy", None)
            replica["restartPolicy"] = restart_policy[role]
    return job


class Jobs:
    def __init__(self, api: Any, namespace: str) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def _res(self, kind: str) -> tuple[str, str, str]:
        return RESOURCES[kind]

    def create(self, job: dict[str, Any]) -> dict[str, Any]:
        group, version, plural = self._res(job["kind"])
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            group, version, self.namespace, plural, job
        )
        return result

    def get(self, kind: str, name: str) -> dict[str, Any]:
        group, version, plural = self._res(kind)
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            group, version, self.namespace, plural, name
        )
        return result

    def put(self, kind: str, name: str, mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """GET, mutate, PUT; retried on 409 because the controller writes the job concurrently."""
        from kubernetes.client.exceptions import ApiException

        group, version, plural = self._res(kind)
        for _ in range(10):
            job = self.get(kind, name)
            mutate(job)
            try:
                result: dict[str, Any] = self.custom.replace_namespaced_custom_object(
                    group, version, self.namespace, plural, name, job
                )
                return result
            except ApiException as exc:
                if exc.status != 409:
                    raise
                time.sleep(0.5)
        pytest.fail(f"PUT {kind}/{name} kept conflicting")

    def patch(self, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        group, version, plural = self._res(kind)
        result: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            group, version, self.namespace, plural, name, body
        )
        return result

    def pods_of(self, job: dict[str, Any]) -> list[Any]:
        uid = job["metadata"]["uid"]
        return [
            pod
            for pod in self.core.list_namespaced_pod(self.namespace).items
            if any(ref.uid == uid for ref in pod.metadata.owner_references or [])
        ]


def has_condition(job: dict[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in job.get("status", {}).get("conditions") or []
    )


def volcano_phase(job: dict[str, Any]) -> str | None:
    phase: str | None = job.get("status", {}).get("state", {}).get("phase")
    return phase


def denied(exc: Exception, status: int) -> None:
    """The API server answered `status` because jobwarden denied the request: its webhook, or for a
    forbidden update its ValidatingAdmissionPolicy (which the apiserver evaluates first)."""
    from kubernetes.client.exceptions import ApiException

    assert isinstance(exc, ApiException), exc
    assert exc.status == status, f"expected {status}, got {exc.status}: {exc.body}"
    body = exc.body or ""
    assert f'admission webhook "{WEBHOOK}" denied the request' in body or POLICY in body, body


@pytest.fixture
def jobs(api: Any, namespace: str) -> Jobs:
    return Jobs(api, namespace)


# --------------------------------------------------------------------------------------------------
# The install itself
# --------------------------------------------------------------------------------------------------


def test_operator_is_running_hardened_and_serving(api: Any) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(
        "jobwarden-system", label_selector="app.kubernetes.io/name=jobwarden"
    ).items
    assert len(pods) == 1 and pods[0].status.phase == "Running"
    pod = pods[0]
    assert pod.spec.security_context.run_as_user == 65532
    assert pod.spec.containers[0].security_context.read_only_root_filesystem is True
    # kopf's liveness endpoint and the metrics endpoint, through the API server's proxy.
    health = core.connect_get_namespaced_pod_proxy_with_path(
        f"{pod.metadata.name}:8080", "jobwarden-system", "healthz"
    )
    assert health is not None
    metrics = core.connect_get_namespaced_service_proxy_with_path(
        "jobwarden-metrics:9090", "jobwarden-system", "metrics"
    )
    assert "# HELP" in metrics
    vwc = client.AdmissionregistrationV1Api(api).read_validating_webhook_configuration("jobwarden")
    assert vwc.webhooks[0].client_config.ca_bundle, "self-signed mode patches the caBundle at start"


# --------------------------------------------------------------------------------------------------
# Seed scenarios, with real pods
# --------------------------------------------------------------------------------------------------


def test_tfjob_put_seed_runs_to_success_and_accepts_the_put(jobs: Jobs, namespace: str) -> None:
    """tfjob-put: the job runs (PS and Worker exit 0) and the seed's PUT -- a changed
    ttlSecondsAfterFinished, an updatable run-policy field -- is admitted."""
    seed = runnable("tfjob-put", namespace)
    ttl = seed["spec"].pop("ttlSecondsAfterFinished")
    created = jobs.create(seed)

    updated = jobs.put(
        "TFJob", created["metadata"]["name"], lambda j: j["spec"].update(ttlSecondsAfterFinished=ttl)
    )
    assert updated["spec"]["ttlSecondsAfterFinished"] == ttl

    done = wait_for(
        lambda: jobs.get("TFJob", "tfjob-test"), lambda j: has_condition(j, "Succeeded"), "TFJob Succeeded"
    )
    assert not has_condition(done, "Failed")
    assert jobs.pods_of(done), "no pods owned by the job: did it really run?"


def test_pytorchjob_patch_seed_is_admitted_and_runs(jobs: Jobs, namespace: str) -> None:
    """pytorchjob-patch: a merge patch of metadata.labels (the seed's body) is admitted and applied."""
    seed = runnable("pytorchjob-put", namespace)
    seed["metadata"].pop("labels", None)
    jobs.create(seed)
    patch = json.loads((SEEDS / "pytorchjob-patch.request.json").read_text())
    patched = jobs.patch("PyTorchJob", "pytorch-test", patch)
    assert patched["metadata"]["labels"].get("app") == "test"
    wait_for(
        lambda: jobs.get("PyTorchJob", "pytorch-test"),
        lambda j: has_condition(j, "Succeeded"),
        "PyTorchJob Succeeded",
    )


def test_pytorchjob_master_exit_code_fails_the_job(jobs: Jobs, namespace: str) -> None:
    """The same seed with the Master exiting 3 under restartPolicy Never: the job ends Failed."""
    seed = runnable("pytorchjob-put", namespace, exit_codes={"Master": 3}, restart_policy={"Master": "Never"})
    jobs.create(seed)
    failed = wait_for(
        lambda: jobs.get("PyTorchJob", "pytorch-test"),
        lambda j: has_condition(j, "Failed"),
        "PyTorchJob Failed",
    )
    assert not has_condition(failed, "Succeeded")


def test_mxjob_put_seed_runs_to_success(jobs: Jobs, namespace: str) -> None:
    seed = runnable("mxjob-put", namespace)
    ttl = seed["spec"]["ttlSecondsAfterFinished"]
    jobs.create(seed)
    updated = jobs.put("MXJob", "mxnet-job", lambda j: j["spec"].update(ttlSecondsAfterFinished=ttl + 1))
    assert updated["spec"]["ttlSecondsAfterFinished"] == ttl + 1
    wait_for(
        lambda: jobs.get("MXJob", "mxnet-job"), lambda j: has_condition(j, "Succeeded"), "MXJob Succeeded"
    )


def test_volcano_seed_runs_with_the_default_scheduler_fallback(jobs: Jobs, namespace: str) -> None:
    """volcanojob-put on a cluster without Volcano: the env/ssh/svc plugins' resources are recorded
    (as in the seed's response), the pods run under the default scheduler (fallback enabled by the
    default install) and the master's TaskCompleted policy completes the job."""
    seed = runnable("volcanojob-put", namespace)
    assert seed["spec"]["schedulerName"] == "volcano"
    jobs.create(seed)
    expected = json.loads((SEEDS / "volcanojob-put.response.json").read_text())["status"][
        "controlledResources"
    ]

    done = wait_for(
        lambda: jobs.get("Job", "openmpi-hello-2-com"),
        lambda j: volcano_phase(j) in {"Completed", "Failed", "Aborted", "Terminated"},
        "Volcano Job to finish",
    )
    assert volcano_phase(done) == "Completed", done.get("status")
    assert done["status"].get("controlledResources", {}).items() >= expected.items()
    pods = jobs.pods_of(done)
    assert pods, "the job's pods are gone or were never created"
    assert {p.spec.scheduler_name for p in pods} == {"default-scheduler"}


# --------------------------------------------------------------------------------------------------
# Admission through the real API server
# --------------------------------------------------------------------------------------------------


def test_webhook_rejects_an_invalid_job(jobs: Jobs, namespace: str) -> None:
    seed = runnable("tfjob-put", namespace)
    specs = seed["spec"]["tfReplicaSpecs"]
    specs["Bogus"] = copy.deepcopy(specs["Worker"])
    with pytest.raises(Exception) as caught:
        jobs.create(seed)
    denied(caught.value, 400)


def test_webhook_forbids_changing_an_immutable_field(jobs: Jobs, namespace: str) -> None:
    seed = runnable("tfjob-put", namespace)
    jobs.create(seed)

    def scale(job: dict[str, Any]) -> None:
        job["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] = 2

    with pytest.raises(Exception) as caught:
        jobs.put("TFJob", "tfjob-test", scale)
    denied(caught.value, 403)


if __name__ == "__main__":  # convenience: python tests/e2e/test_kind_e2e.py -> explains what it needs
    print(why_no_cluster() or "Docker and kind are available: run tests/e2e/run-kind-e2e.sh", file=sys.stderr)
