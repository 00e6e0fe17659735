"""What a platform team scrapes and probes: kopf's liveness endpoint and the Prometheus metrics, read
from the running operator after it handled a job."""

from __future__ import annotations

import json
import urllib.request

from devcluster import pods
from devcluster.cluster import Cluster

from conftest import Operator
from testlib import creatable, load_seed, wait_for


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status), response.read().decode()


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{{{wanted}}}")


def test_liveness_endpoint(operator: Operator) -> None:
    status, body = _get(f"http://127.0.0.1:{operator.health_port}/healthz")
    assert status == 200
    assert "jobs" in json.loads(body)  # the operator's own probe: how many jobs it tracks


def test_metrics_count_a_jobs_lifecycle(cluster: Cluster, namespace: str, operator: Operator) -> None:
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    before = _get(url)[1]
    created_before = (
        _metric(before, "jobwarden_jobs_created_total", kind="TFJob") if "TFJob" in before else 0.0
    )
    job = creatable(load_seed("tfjob-put.request.json"), namespace)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(job))
    pods.finish(cluster, namespace, "tfjob-test-worker-0", 0)

    def succeeded() -> str | None:
        text = _get(url)[1]
        return text if 'jobwarden_jobs_succeeded_total{kind="TFJob"}' in text else None

    text = wait_for(succeeded, 60, what="the TFJob's success in /metrics")
    assert _metric(text, "jobwarden_jobs_created_total", kind="TFJob") >= created_before + 1
    assert _metric(text, "jobwarden_children_created_total", kind="TFJob", child="Pod") >= 2
    assert _metric(text, "jobwarden_reconcile_seconds_count", kind="TFJob") >= 2
    assert (
        _metric(text, "jobwarden_admission_seconds_count", kind="TFJob", operation="CREATE", allowed="true")
        >= 1
    )


def test_a_pod_the_apiserver_refuses_is_a_warning_event_on_the_job(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    """Admission refuses what it can know is wrong; a pod that fails for a reason only the cluster knows
    (here: a ServiceAccount that does not exist) surfaces on the job, where `kubectl describe` shows it."""
    job = creatable(load_seed("pytorchjob-put.request.json"), namespace)
    job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["serviceAccountName"] = "no-such-account"
    cluster.kubectl("apply", "-f", "-", input=json.dumps(job))

    def warning() -> str | None:
        out = cluster.kubectl(
            "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=pytorch-test",
            "-o", "jsonpath={range .items[?(@.reason=='FailedCreatePod')]}{.message}{'\\n'}{end}",
        )  # fmt: skip
        return out.stdout.strip() or None

    message = wait_for(warning, 60, what="a FailedCreatePod event on the job")
    assert "pytorch-test-worker-0" in message and "no-such-account" in message
    described = cluster.kubectl("describe", "pytorchjob", "pytorch-test", "-n", namespace).stdout
    assert "FailedCreatePod" in described
    # The master, whose template is valid, was created all the same.
    cluster.kubectl("get", "pod", "pytorch-test-master-0", "-n", namespace)
