"""The real-Kueue lifecycle's pure parts (benchmarks/kueue.py): which of Kueue's webhooks it registers
and how, and jobs Kueue can write back unchanged."""

from __future__ import annotations

import base64
from pathlib import Path

from benchmarks.kueue import QUEUE_LABEL, pytorchjob, webhook_configurations

from kueue_updates import as_go_writes_quantities

MANIFESTS = """
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: mutating-webhook-configuration
webhooks:
- name: mpod.kb.io
  clientConfig: {service: {name: svc, namespace: system, path: /mutate--v1-pod}}
- name: mpytorchjob.kb.io
  clientConfig: {service: {name: svc, namespace: system, path: /mutate-kubeflow-org-v1-pytorchjob}}
- name: mclusterqueue.kb.io
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /mutate-kueue-x-k8s-io-v1beta2-clusterqueue}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: validating-webhook-configuration
webhooks:
- name: vtfjob.kb.io
  clientConfig: {service: {name: svc, namespace: system, path: /validate-kubeflow-org-v1-tfjob}}
- name: vpytorchjob.kb.io
  clientConfig: {service: {name: svc, namespace: system, path: /validate-kubeflow-org-v1-pytorchjob}}
"""


def test_only_kueues_own_and_the_pytorchjob_webhooks_are_registered_at_the_local_url(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(MANIFESTS)
    mutating, validating = webhook_configurations(manifests, "https://127.0.0.1:9", b"CA")
    assert mutating["metadata"] == {"name": "kueue-mutating-webhook-configuration"}
    assert validating["metadata"] == {"name": "kueue-validating-webhook-configuration"}
    assert [h["name"] for h in mutating["webhooks"]] == ["mpytorchjob.kb.io", "mclusterqueue.kb.io"]
    assert [h["name"] for h in validating["webhooks"]] == ["vpytorchjob.kb.io"]
    assert mutating["webhooks"][1]["clientConfig"] == {
        "url": "https://127.0.0.1:9/mutate-kueue-x-k8s-io-v1beta2-clusterqueue",
        "caBundle": base64.b64encode(b"CA").decode(),
    }


def test_the_jobs_are_queued_suspended_and_written_as_kueue_writes_them_back() -> None:
    job = pytorchjob("job-1", "ns")
    assert job["metadata"]["labels"] == {QUEUE_LABEL: "team-a"}
    assert job["spec"]["runPolicy"] == {"suspend": True, "cleanPodPolicy": "All"}
    assert as_go_writes_quantities(job) == job
    requests = [
        r["template"]["spec"]["containers"][0]["resources"]["requests"]
        for r in job["spec"]["pytorchReplicaSpecs"].values()
    ]
    assert requests == [{"cpu": "1"}, {"cpu": "1"}]  # 2 CPUs a job: two jobs fill the 4-CPU queue
