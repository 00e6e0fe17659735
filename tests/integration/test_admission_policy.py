"""The ValidatingAdmissionPolicy and the webhook agree on the update contract (issue 11), through the
real apiserver: the same update vectors -- the seeds' PUT and PATCH bodies and the random mutations of
the hypothesis strategies in tests/unit/test_admission_properties.py -- are sent as server-side dry-run
updates once with only the policy bound and once with only the webhook registered.

- Nothing the webhook refuses for the contract (a field that may not change, tasks added/removed, a
  scale below the minimums) may pass the policy: that count must be 0.
- The policy is stricter by design where the webhook normalises (a value written differently); those
  vectors are counted and printed, as are updates the webhook refuses only for a create-time problem of
  the new object (the policy carries the update rules only).

JOBWARDEN_POLICY_VECTORS sets the number of random vectors (default 240; the full run uses 1,200).
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from admission_calls import MXJOBS, PYTORCHJOBS, TFJOBS, VOLCANOJOBS, Body, Res, get, is_lock_conflict
from devcluster.cluster import Cluster
from devcluster.operator import LocalOperator
from kubernetes import client
from policy_vectors import (
    BY_NAME,
    compare,
    layout_moves,
    random_vectors,
    seed_vectors,
    store,
    written_differently,
)

from jobwarden import kinds
from jobwarden.kinds import policy
from jobwarden.kinds.admission import review

VECTORS = int(os.environ.get("JOBWARDEN_POLICY_VECTORS", "240"))


@pytest.fixture(scope="module")
def stored(operator: LocalOperator, custom: client.CustomObjectsApi, core: client.CoreV1Api) -> Iterator[str]:
    namespace = f"policy-vectors-{uuid.uuid4().hex[:6]}"
    store(custom, core, namespace)
    yield namespace
    core.delete_namespace(namespace, propagation_policy="Background")


def test_the_policy_and_the_webhook_agree_on_the_update_contract(
    cluster: Cluster, custom: client.CustomObjectsApi, stored: str
) -> None:
    vectors = seed_vectors() + layout_moves() + written_differently() + random_vectors(VECTORS)
    result = compare(cluster, custom, stored, vectors)
    print("\n" + result.report())
    assert not result.looser, (
        f"the policy let through {len(result.looser)} updates the webhook refuses: {result.looser[:10]}"
    )
    for origin, answer in zip((v.origin for v in vectors), result.by_policy, strict=True):
        if origin.startswith(("seed", "layout-move", "written-differently tf empties")):
            assert answer == "allowed", origin  # the seeds' updates pass the policy
        if origin.startswith(("kubeflow-forbidden", "volcano-forbidden")):
            assert answer != "allowed" or "zz-added" in origin, origin  # a pruned unknown key is no change
    assert sum(p == "policy-denied" for p in result.by_policy) > 0
    assert sum(p == "allowed" for p in result.by_policy) > 0


# --------------------------------------------------------------------------------------------------
# Issue 22: with the policy installed (it answers before the webhook), a refusal names the field that
# changed, in the webhook's words.


def _container(body: Body, field: str, replica: str) -> dict[str, Any]:
    container: dict[str, Any] = body["spec"][field][replica]["template"]["spec"]["containers"][0]
    return container


def _set(path: list[Any], value: Any) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


TF_WORKER = ["spec", "tfReplicaSpecs", "Worker"]
TORCH_WORKER = ["spec", "pytorchReplicaSpecs", "Worker"]
MX_WORKER = ["spec", "mxReplicaSpecs", "Worker"]
CONTAINER = ["template", "spec", "containers", 0]
NAMED = [
    # (what, resource, change, the path the refusal names)
    (
        "image",
        TFJOBS,
        _set([*TF_WORKER, *CONTAINER, "image"], "tf:2"),
        "spec.tfReplicaSpecs.Worker.template.spec.containers[0].image",
    ),
    ("replicas", TFJOBS, _set([*TF_WORKER, "replicas"], 3), "spec.tfReplicaSpecs.Worker.replicas"),
    (
        "image",
        PYTORCHJOBS,
        _set([*TORCH_WORKER, *CONTAINER, "image"], "torch:2"),
        "spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].image",
    ),
    (
        "replicas",
        PYTORCHJOBS,
        _set([*TORCH_WORKER, "replicas"], 3),
        "spec.pytorchReplicaSpecs.Worker.replicas",
    ),
    (
        "image",
        MXJOBS,
        _set([*MX_WORKER, *CONTAINER, "image"], "mx:2"),
        "spec.mxReplicaSpecs.Worker.template.spec.containers[0].image",
    ),
    ("replicas", MXJOBS, _set([*MX_WORKER, "replicas"], 3), "spec.mxReplicaSpecs.Worker.replicas"),
    (
        "command",
        PYTORCHJOBS,
        _set([*TORCH_WORKER, *CONTAINER, "command", 1], "/var/other.py"),
        "spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].command[1]",
    ),
    (
        "resources",
        TFJOBS,
        _set([*TF_WORKER, *CONTAINER, "resources", "limits", "memory"], "8Gi"),
        "spec.tfReplicaSpecs.Worker.template.spec.containers[0].resources.limits.memory",
    ),
    (
        "restartPolicy",
        PYTORCHJOBS,
        _set([*TORCH_WORKER, "restartPolicy"], "Never"),
        "spec.pytorchReplicaSpecs.Worker.restartPolicy",
    ),
    (
        "task minAvailable",
        VOLCANOJOBS,
        _set(["spec", "tasks", 1, "minAvailable"], 1),
        "spec.tasks[1].minAvailable",
    ),
    (
        "task policies",
        VOLCANOJOBS,
        _set(["spec", "tasks", 0, "policies", 0, "action"], "RestartJob"),
        "spec.tasks[0].policies[0].action",
    ),
]
KINDS = {
    res: kind for kind in kinds.REGISTRY for res in BY_NAME.values() if res.plural == kind.resource.plural
}


def dry_run_body(
    custom: client.CustomObjectsApi, res: Res, namespace: str, change: Callable[[Body], None]
) -> tuple[Body, Body, int, str]:
    """(stored, sent, status, the raw answer body) of a dry-run PUT of the stored seed with `change`; a
    409 from the optimistic lock (the operator wrote status in between) is retried with a fresh read."""
    for _ in range(20):
        stored = get(custom, res, namespace, "seed")
        sent = copy.deepcopy(stored)
        change(sent)
        try:
            custom.replace_namespaced_custom_object(
                res.group, res.version, namespace, res.plural, "seed", sent, dry_run="All"
            )
            return stored, sent, 200, ""
        except client.exceptions.ApiException as exc:
            if not is_lock_conflict(exc):
                raw = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body)
                return stored, sent, exc.status, raw
    raise AssertionError("the seed kept changing under the dry run")


@pytest.mark.parametrize(
    ("what", "res", "change", "path"), NAMED, ids=[f"{r.plural}-{w}" for w, r, _, _ in NAMED]
)
def test_with_the_policy_installed_a_refusal_names_the_changed_field_in_the_webhooks_words(
    custom: client.CustomObjectsApi,
    stored: str,
    what: str,
    res: Res,
    change: Callable[[Body], None],
    path: str,
) -> None:
    old, new, status, raw = dry_run_body(custom, res, stored, change)
    print(f"\n{res.plural} {what}: {status} {raw}")
    answer = json.loads(raw)
    assert (status, answer["code"], answer["reason"]) == (403, 403, "Forbidden")
    name = policy.policy_name(res.group)
    prefix = (
        f'{res.plural}.{res.group} "seed" is forbidden: '
        f"ValidatingAdmissionPolicy '{name}' with binding '{name}' denied request: "
    )
    assert answer["message"].startswith(prefix + path + ": field is not updatable; updatable fields: "), (
        answer["message"]
    )
    webhook = review(KINDS[res], "UPDATE", old, new)
    assert answer["message"] == prefix + webhook.message  # the webhook's words, for the one changed path


@pytest.mark.parametrize("res", [VOLCANOJOBS])
def test_volcano_image_and_scale_changes_stay_allowed_or_say_why(
    custom: client.CustomObjectsApi, stored: str, res: Res
) -> None:
    """A Volcano task's template and replicas are updatable: an image change passes, a scale below the
    task's minAvailable is refused (422) by the policy's scale rule."""
    image = ["spec", "tasks", 1, "template", "spec", "containers", 0, "image"]
    _, _, status, raw = dry_run_body(custom, res, stored, _set(image, "mpi:2"))
    print(f"\nvolcano image: {status} {raw}")
    assert status == 200
    _, _, status, raw = dry_run_body(custom, res, stored, _set(["spec", "tasks", 1, "replicas"], 0))
    print(f"volcano replicas 2 -> 0: {status} {raw}")
    assert (
        status == 422
        and "spec.minAvailable: Invalid value: 2: scaling the tasks down" in json.loads(raw)["message"]
    )


def test_an_empty_plugin_argument_list_is_a_value_for_the_policy_too(
    custom: client.CustomObjectsApi, stored: str
) -> None:
    """Absent and empty are alike for the policy, except where the webhook keeps empties: Volcano's
    `plugins: {env: []}` enables the plugin, so dropping it is a change the policy refuses itself."""
    _, _, status, raw = dry_run_body(custom, VOLCANOJOBS, stored, lambda b: b["spec"]["plugins"].pop("env"))
    message = json.loads(raw)["message"]
    assert status == 403 and "ValidatingAdmissionPolicy 'jobwarden-updates.batch.volcano.sh'" in message
    assert "denied request: spec.plugins: field is not updatable" in message
