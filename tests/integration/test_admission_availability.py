"""Admission that only stops what it must (issue 11), through the real apiserver:

- with the operator down, label/annotation/finalizer edits and foreground deletion still work (the
  webhook's matchConditions skip them), and a forbidden spec change is still refused: by the
  ValidatingAdmissionPolicy, naming the field; without the policy, because the webhook is down
  (failurePolicy Fail);
- a job as large as etcd stores (1.4 MB) is created, label-patched and spec-edited through the webhook
  (kopf's server answered 413 above 1 MiB of review);
- the webhook endpoint answers random and malformed bodies with 4xx saying why, never 5xx, each
  within 1 s (JOBWARDEN_FUZZ_BODIES sets the count; 10,000 for the full run).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import urllib3
from admission_calls import TFJOBS, Body, get, merge_patch, replace
from devcluster.cluster import Cluster
from devcluster.operator import LocalOperator
from kubernetes import client
from review_fuzz import fuzz_bodies

from jobwarden.kinds import policy
from jobwarden.shell import api as kube
from jobwarden.shell import policy_install
from testlib import creatable, load_seed, wait_for

POLICY = policy.policy_name("kubeflow.org")
UPDATABLE = "updatable fields: metadata.labels, metadata.annotations, spec.activeDeadlineSeconds"


def _create_tfjob(custom: client.CustomObjectsApi, namespace: str, body: Body | None = None) -> str:
    body = body or creatable(load_seed(TFJOBS.seed), namespace)
    body["metadata"]["namespace"] = namespace
    custom.create_namespaced_custom_object(TFJOBS.group, TFJOBS.version, namespace, TFJOBS.plural, body)
    return str(body["metadata"]["name"])


def _new_image(body: Body) -> None:
    body["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"


def _policy_refuses(custom: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    outcome = replace(custom, TFJOBS, namespace, name, _new_image, dry_run=True)
    return POLICY in outcome.message


@contextmanager
def bindings_removed(
    cluster: Cluster, custom: client.CustomObjectsApi, namespace: str, name: str
) -> Iterator[None]:
    """Without the policy's bindings (as with `--no-admission-policy`); the operator's next start
    installs them again."""
    for obj in policy.policy_objects():
        if obj["kind"] == "ValidatingAdmissionPolicyBinding":
            cluster.kubectl("delete", "validatingadmissionpolicybinding", obj["metadata"]["name"])
    wait_for(lambda: not _policy_refuses(custom, namespace, name), 30, what="the policy to be unbound")
    yield


def test_with_the_operator_down_metadata_edits_work_and_spec_changes_are_refused(
    operator: LocalOperator, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    name = _create_tfjob(custom, namespace)
    wait_for(lambda: _policy_refuses(custom, namespace, name), 30, what="the policy to be in force")
    with operator.stopped():
        labelled = merge_patch(custom, TFJOBS, namespace, name, {"metadata": {"labels": {"team": "a"}}})
        assert labelled.allowed, labelled
        annotated = replace(
            custom, TFJOBS, namespace, name, lambda b: b["metadata"].update(annotations={"x": "1"})
        )
        assert annotated.allowed, annotated
        finalized = merge_patch(
            custom, TFJOBS, namespace, name, {"metadata": {"finalizers": ["example.com/hold"]}}
        )
        assert finalized.allowed, finalized

        refused = replace(custom, TFJOBS, namespace, name, _new_image)
        assert refused.status == 403, refused
        assert f"ValidatingAdmissionPolicy '{POLICY}'" in refused.message
        path = "spec.tfReplicaSpecs.Worker.template.spec.containers[0].image"
        assert f"denied request: {path}: field is not updatable; " + UPDATABLE in refused.message

        # An allowed spec change still needs the webhook (create-time checks of the new object).
        ttl = replace(custom, TFJOBS, namespace, name, lambda b: b["spec"].update(ttlSecondsAfterFinished=7))
        assert not ttl.allowed and 'failed calling webhook "validate.jobwarden.dev"' in ttl.message, ttl

        with bindings_removed(cluster, custom, namespace, name):
            unguarded = replace(custom, TFJOBS, namespace, name, _new_image)
            assert unguarded.status >= 500 and "failed calling webhook" in unguarded.message, unguarded
            assert merge_patch(
                custom, TFJOBS, namespace, name, {"metadata": {"labels": {"team": "b"}}}
            ).allowed

        released = merge_patch(custom, TFJOBS, namespace, name, {"metadata": {"finalizers": None}})
        assert released.allowed, released
        stored = get(custom, TFJOBS, namespace, name)
        assert stored["metadata"]["labels"]["team"] == "b"
        assert (
            stored["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["image"]
            != "busybox:2"
        )

        # Foreground deletion: the garbage collector's finalizer edits must not wait for jobwarden.
        custom.delete_namespaced_custom_object(
            TFJOBS.group, TFJOBS.version, namespace, TFJOBS.plural, name, propagation_policy="Foreground"
        )
        wait_for(lambda: not _exists(custom, namespace, name), 60, what="foreground deletion to finish")
    # The restarted operator installed the bindings again.
    again = _create_tfjob(custom, namespace, _renamed(namespace))
    wait_for(lambda: _policy_refuses(custom, namespace, again), 30, what="the policy to be bound again")


def _installed(cluster: Cluster) -> set[str]:
    names = set()
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        listed = json.loads(
            cluster.kubectl("get", kind, "-l", "app.kubernetes.io/name=jobwarden", "-o", "json").stdout
        )
        names |= {f"{kind}/{item['metadata']['name']}" for item in listed["items"]}
    return names


def test_the_local_run_installs_and_removes_the_policies(operator: LocalOperator, cluster: Cluster) -> None:
    """What `jobwarden run --webhook-url ... --[no-]admission-policy` does at start (shell/policy_install)."""

    async def sync(enabled: bool) -> None:
        api = kube.KubeApi(kube.load_config(str(cluster.kubeconfig)))
        try:
            await policy_install.sync(api, enabled, "jobwarden-system")
        finally:
            await api.close()

    expected = {f"{o['kind'].lower()}/{o['metadata']['name']}" for o in policy.policy_objects()}
    assert _installed(cluster) == expected, "the operator installed them at start"
    try:
        asyncio.run(sync(False))
        assert _installed(cluster) == set()
        asyncio.run(sync(False))  # idempotent
    finally:
        asyncio.run(sync(True))
    assert _installed(cluster) == expected
    asyncio.run(sync(True))  # replacing what exists works too
    assert _installed(cluster) == expected


def _renamed(namespace: str) -> Body:
    body = creatable(load_seed(TFJOBS.seed), namespace)
    body["metadata"]["name"] = "after-restart"
    return body


def _exists(custom: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    try:
        get(custom, TFJOBS, namespace, name)
        return True
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return False
        raise


# --------------------------------------------------------------------------------------------------
# Large objects

TARGET_BYTES = 1_400_000


def _large_tfjob(namespace: str) -> Body:
    """The seed TFJob padded to TARGET_BYTES of JSON with environment variables on one template."""
    body = creatable(load_seed(TFJOBS.seed), namespace)
    body["metadata"]["name"] = "large"
    replica = next(iter(body["spec"]["tfReplicaSpecs"].values()))
    container = replica["template"]["spec"]["containers"][0]
    env = container.setdefault("env", [])
    chunk = "x" * 1000
    while len(json.dumps(body)) < TARGET_BYTES:
        env.append({"name": f"PAD_{len(env)}", "value": chunk})
    return body


def test_a_job_of_1_4_mb_is_created_labelled_and_edited_through_the_webhook(
    operator: LocalOperator, custom: client.CustomObjectsApi, namespace: str
) -> None:
    name = _create_tfjob(custom, namespace, _large_tfjob(namespace))
    size = len(json.dumps(get(custom, TFJOBS, namespace, name)))
    assert size >= TARGET_BYTES, size
    labelled = merge_patch(custom, TFJOBS, namespace, name, {"metadata": {"labels": {"size": "large"}}})
    assert labelled.allowed, labelled
    # A spec change is reviewed by the webhook: the review carries both 1.4 MB objects.
    edited = replace(custom, TFJOBS, namespace, name, lambda b: b["spec"].update(ttlSecondsAfterFinished=9))
    assert edited.allowed, edited
    assert get(custom, TFJOBS, namespace, name)["spec"]["ttlSecondsAfterFinished"] == 9
    refused = replace(custom, TFJOBS, namespace, name, lambda b: b["spec"].update(backoffLimit=9))
    assert refused.status == 403 and "spec.backoffLimit: field is not updatable" in refused.message, refused
    print(f"largest job created and edited: {size} bytes of JSON")


# --------------------------------------------------------------------------------------------------
# The endpoint itself

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
FUZZ_BODIES = int(os.environ.get("JOBWARDEN_FUZZ_BODIES", "400"))


@pytest.fixture(scope="module")
def http() -> urllib3.PoolManager:
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return urllib3.PoolManager(cert_reqs="CERT_NONE", retries=False, timeout=10)


def post(http: urllib3.PoolManager, url: str, body: bytes) -> tuple[int, str, float]:
    started = time.perf_counter()
    response = http.request("POST", url, body=body, headers={"Content-Type": "application/json"})
    return response.status, response.data.decode(errors="replace"), time.perf_counter() - started


def test_the_endpoint_answers_malformed_reviews_with_400_and_the_reason(
    operator: LocalOperator, http: urllib3.PoolManager
) -> None:
    url = f"https://127.0.0.1:{operator.webhook_port}/validate"
    status, text, _ = post(
        http, url, b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": 5}'
    )
    assert (status, text) == (400, "malformed AdmissionReview: request must be a JSON object\n")
    status, text, _ = post(http, url, b"not json")
    assert status == 400 and "the body is not JSON" in text


def test_fuzzed_bodies_never_get_a_5xx_or_a_slow_answer(
    operator: LocalOperator, http: urllib3.PoolManager
) -> None:
    url = f"https://127.0.0.1:{operator.webhook_port}/validate"
    statuses: Counter[int] = Counter()
    slow: list[float] = []
    server_errors: list[str] = []
    for body in fuzz_bodies(FUZZ_BODIES, random.Random(11)):
        status, text, seconds = post(http, url, body)
        statuses[status] += 1
        if seconds > 1:
            slow.append(seconds)
        if status >= 500:
            server_errors.append(f"{status} {text[:200]} <- {body[:200]!r}")
    print(f"fuzzed {FUZZ_BODIES} bodies: {dict(sorted(statuses.items()))}")
    assert not server_errors, server_errors[:5]
    assert not slow, slow[:5]
    assert operator.healthy()
