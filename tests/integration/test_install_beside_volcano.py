"""Issue 25: installing jobwarden on a cluster where Volcano's own jobs.batch.volcano.sh exists first.

The cluster starts without jobwarden's CRDs; stand-ins of Volcano's Job and Command CRDs
(fixtures/volcano-jobs-crds.yaml, labelled and annotated as Volcano's installation leaves them) are
created before anything of jobwarden's. Then, in order:

1. `manifests/overlays/beside-volcano`: Volcano's CRDs stay exactly as they were; no webhook rule and
   no admission policy of jobwarden's matches Volcano Jobs, so with jobwarden stopped a Volcano Job
   is created (a PyTorchJob is not: the webhook is there, and down); the operator, started with its
   default flags (Lease namespace jobwarden-system), stands aside and says so in an event in
   `default` about the CRD.
2. `manifests/` (the default install) applied over it: kubectl relabels Volcano's CRD as jobwarden's
   (`configured`); the operator's preflight sees Volcano's marks under jobwarden's label and refuses
   to take the CRD over (a Warning), and takes the Volcano rule out of its webhook configuration, so a
   stopped jobwarden still blocks no Volcano Job.

The manifests are applied as rendered, with the Deployment at 0 replicas: there is no image here, and
"jobwarden stopped" is what step 1 tests. The operator runs as a local process with the
self-signed mode of the in-cluster install (it patches the manifests' webhook configuration)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from devcluster import cluster as devcluster
from devcluster.operator import LocalOperator

from testlib import ROOT, creatable, kustomize_render, load_seed, small_pytorchjob, wait_for

FIXTURES = ROOT / "tests" / "integration" / "fixtures"
Cluster = devcluster.Cluster
JOBS_CRD = "jobs.batch.volcano.sh"
STAND_ASIDE = "VolcanoJobsServedByVolcano"


# The webhook's rules once the Volcano one is gone: kubeflow.org v1 (six kinds) and v2beta1 (MPIJob).
KUBEFLOW_RULES = [(["kubeflow.org"], ["v1"]), (["kubeflow.org"], ["v2beta1"])]


@pytest.fixture(scope="module")
def foreign_volcano() -> Iterator[Cluster]:
    """A cluster of its own (it gets jobwarden's install as a whole) whose Volcano CRDs came first."""
    name = f"{os.environ.get('JOBWARDEN_TEST_CLUSTER', 'test')}-foreign-volcano"
    existing = devcluster.Cluster.load(name)
    if existing and existing.alive():
        devcluster.down(name)  # a kept cluster already holds jobwarden's install
    c = devcluster.up(name)
    c.kubectl("create", "-f", str(FIXTURES / "volcano-jobs-crds.yaml"))
    c.kubectl("wait", "--for=condition=Established", f"crd/{JOBS_CRD}", "--timeout=60s")
    yield c
    if not os.environ.get("JOBWARDEN_KEEP_CLUSTER"):
        devcluster.down(name)


def install(c: Cluster, directory: str) -> str:
    """`kubectl apply` of the rendered install, the Deployment at 0 replicas; kubectl's output."""
    objects = [dict(o) for o in kustomize_render().objects(ROOT / directory)]
    for obj in objects:
        if obj["kind"] == "Deployment":
            obj["spec"]["replicas"] = 0
    out = c.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    print(f"$ kubectl kustomize {directory} | kubectl apply -f -   (Deployment at 0 replicas)\n{out.stdout}")
    return str(out.stdout)


def get(c: Cluster, *args: str) -> dict[str, Any]:
    return dict(json.loads(c.kubectl("get", *args, "-o", "json").stdout))


def volcano_job(namespace: str, name: str) -> dict[str, Any]:
    body = creatable(load_seed("volcanojob-put.request.json"), namespace)
    body["metadata"]["name"] = name
    return body


def stand_aside_events(c: Cluster) -> list[dict[str, Any]]:
    found = get(c, "events", "-A", "--field-selector", f"reason={STAND_ASIDE}")
    return list(found.get("items") or [])


def operator(c: Cluster, log: Path) -> LocalOperator:
    """`jobwarden run` as the Deployment runs it (self-signed: the manifests' webhook configuration,
    the Secret in jobwarden-system), with every other setting at its default: no Lease namespace flag."""
    return LocalOperator(c, log, register_webhook=False, lease="jobwarden-leader", lease_namespace=None)


def test_beside_volcano_install_leaves_volcano_jobs_to_volcano(
    foreign_volcano: Cluster, tmp_path: Path
) -> None:
    c = foreign_volcano
    before = get(c, "crd", JOBS_CRD)
    out = install(c, "manifests/overlays/beside-volcano")
    assert "customresourcedefinition.apiextensions.k8s.io/tfjobs.kubeflow.org created" in out
    assert JOBS_CRD not in out and "commands.bus.volcano.sh" not in out
    after = get(c, "crd", JOBS_CRD)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "labels" not in after["metadata"]

    webhook = get(c, "validatingwebhookconfiguration", "jobwarden")
    assert [(r["apiGroups"], r["apiVersions"]) for r in webhook["webhooks"][0]["rules"]] == KUBEFLOW_RULES
    policies = get(c, "validatingadmissionpolicybindings")["items"]
    assert [p["metadata"]["name"] for p in policies] == ["jobwarden-updates.kubeflow.org"]

    # jobwarden is stopped (no replica serves the webhook): a Volcano Job goes through, a PyTorchJob not.
    c.kubectl("create", "namespace", "ml")
    made = c.kubectl("create", "-f", "-", input=json.dumps(volcano_job("ml", "theirs")))
    print(f"$ kubectl create -f volcano-job.json   (jobwarden stopped)\n{made.stdout}")
    assert made.stdout.strip() == "job.batch.volcano.sh/theirs created"
    refused = c.kubectl("create", "-f", "-", input=json.dumps(small_pytorchjob("ml", "ours")), check=False)
    assert refused.returncode != 0 and 'failed calling webhook "validate.jobwarden.dev"' in refused.stderr

    # Started with its default flags, the operator stands aside and says so where kubectl shows it.
    running = operator(c, tmp_path / "operator.log")
    running.start()
    try:
        wait_for(lambda: stand_aside_events(c), 30, what=f"the {STAND_ASIDE} event")
        shown = c.kubectl("get", "events", "-n", "default", "--field-selector", f"reason={STAND_ASIDE}")
        print(f"$ kubectl get events -n default --field-selector reason={STAND_ASIDE}\n{shown.stdout}")
        [event] = stand_aside_events(c)
        assert (event["metadata"]["namespace"], event["type"]) == ("default", "Normal")
        assert event["involvedObject"]["kind"] == "CustomResourceDefinition"
        assert event["involvedObject"]["name"] == JOBS_CRD
        assert "is not jobwarden's" in event["message"]
        assert "posting the VolcanoJobsServedByVolcano event failed" not in running.logs()
        time.sleep(2)  # what a serving operator would have done by now: a status, a PodGroup, pods
        assert "status" not in get(c, "vcjob", "theirs", "-n", "ml")
        assert c.kubectl("get", "pods", "-n", "ml", "-o", "name").stdout.strip() == ""
        lease = get(c, "lease", "jobwarden-leader", "-n", "jobwarden-system")  # the default namespace
        assert lease["spec"]["holderIdentity"] == running.identity
    finally:
        running.stop()
    assert "Traceback" not in running.logs()


def test_default_install_over_volcano_is_refused_by_the_operator(
    foreign_volcano: Cluster, tmp_path: Path
) -> None:
    c = foreign_volcano
    c.kubectl("delete", "events", "-n", "default", "--field-selector", f"reason={STAND_ASIDE}")
    out = install(c, "manifests")
    # kubectl applies jobwarden's CRD over Volcano's: that is what the overlay above is for.
    assert f"customresourcedefinition.apiextensions.k8s.io/{JOBS_CRD} configured" in out
    crd = get(c, "crd", JOBS_CRD)["metadata"]
    assert crd["labels"]["app.kubernetes.io/name"] == "jobwarden"
    assert crd["annotations"]["controller-gen.kubebuilder.io/version"] == "v0.20.0"
    webhook = get(c, "validatingwebhookconfiguration", "jobwarden")
    assert ["batch.volcano.sh"] in [r["apiGroups"] for r in webhook["webhooks"][0]["rules"]]

    running = operator(c, tmp_path / "operator.log")
    running.start()
    try:
        [event] = wait_for(lambda: stand_aside_events(c), 30, what=f"the {STAND_ASIDE} warning")
        shown = c.kubectl("get", "events", "-n", "default", "--field-selector", f"reason={STAND_ASIDE}")
        print(f"$ kubectl get events -n default --field-selector reason={STAND_ASIDE}\n{shown.stdout}")
        assert event["type"] == "Warning"
        assert "carries jobwarden's label but was not created by jobwarden" in event["message"]
        assert "controller-gen.kubebuilder.io/version=v0.20.0" in event["message"]
        assert "was not created by jobwarden" in running.logs()
    finally:
        running.stop()

    # The operator took the Volcano rule out of the webhook configuration at start: stopped, it
    # blocks no Volcano Job, though the default install registered one.
    webhook = get(c, "validatingwebhookconfiguration", "jobwarden")
    assert [(r["apiGroups"], r["apiVersions"]) for r in webhook["webhooks"][0]["rules"]] == KUBEFLOW_RULES
    made = c.kubectl("create", "-f", "-", input=json.dumps(volcano_job("ml", "theirs-too")))
    assert made.stdout.strip() == "job.batch.volcano.sh/theirs-too created"
    assert "Traceback" not in running.logs()
