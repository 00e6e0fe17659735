"""The update vectors the policy-vs-webhook comparison sends through the real apiserver (issue 11, and
issue 26's suspend-updates variants), and the two set-ups it sends them in: only the
ValidatingAdmissionPolicy bound, only the webhook registered. Shared by test_admission_policy.py (the
default contract, on the session's operator) and test_admission_kueue.py (`--allow-suspend-updates`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from admission_calls import (
    MXJOBS,
    PYTORCHJOBS,
    TFJOBS,
    VOLCANOJOBS,
    Body,
    Outcome,
    Res,
    replace,
    webhook_configuration_removed,
)
from devcluster.cluster import Cluster
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes import client

from jobwarden.kinds import policy
from kueue_updates import kueue_ready
from testlib import ROOT, creatable, load_by_path, load_seed, wait_for

BY_NAME = {"tfjob": TFJOBS, "pytorchjob": PYTORCHJOBS, "mxjob": MXJOBS, "volcanojob": VOLCANOJOBS}
# What the webhook says only for the update contract (kinds/*_validation.py check_*_update).
CONTRACT_WORDS = ("field is not updatable", "may not add or remove tasks", "cannot be changed, so")
WEBHOOK_DENIED = 'admission webhook "validate.jobwarden.dev" denied the request'
POLICY_DENIED = "ValidatingAdmissionPolicy 'jobwarden-updates."


def properties() -> ModuleType:
    return load_by_path(
        ROOT / "tests" / "unit" / "test_admission_properties.py", "jobwarden_admission_properties"
    )


@dataclass(frozen=True)
class Vector:
    res: Res
    stored: str  # the name of the stored old object
    origin: str
    new: Body

    def apply(self, body: Body) -> None:
        """The stored object with the vector's spec and user-settable metadata."""
        body["spec"] = self.new.get("spec")
        for key in ("labels", "annotations", "generateName"):
            if key in self.new.get("metadata", {}):
                body["metadata"][key] = self.new["metadata"][key]
            else:
                body["metadata"].pop(key, None)


def _draw(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    drawn: list[Any] = []

    @settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        derandomize=True,  # the same vectors every run, so figures compare
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        drawn.append(example)

    collect()
    return drawn


def random_vectors(count: int) -> list[Vector]:
    props = properties()
    share = count // 4
    vectors = [
        Vector(BY_NAME[name], "seed", "kubeflow-allowed", new)
        for name, _, new in _draw(props.kubeflow_allowed_updates(), share)
    ]
    vectors += [
        Vector(BY_NAME[name], "seed", f"kubeflow-forbidden {changed}", new)
        for name, _, new, changed in _draw(props.kubeflow_forbidden_updates(), share)
    ]
    vectors += [
        Vector(VOLCANOJOBS, "seed", "volcano-allowed", new)
        for _, new in _draw(props.volcano_allowed_updates(), share)
    ]
    vectors += [
        Vector(VOLCANOJOBS, "seed", f"volcano-forbidden {changed}", new)
        for _, new, changed in _draw(props.volcano_forbidden_updates(), share)
    ]
    return vectors


# The seeds' own updates: stored as they were before the seed's change, then the seed body is PUT.
BEFORE_SEED: dict[str, Callable[[Body], object]] = {
    "tfjob": lambda b: b["spec"].update(ttlSecondsAfterFinished=100),
    "pytorchjob": lambda b: b["spec"].update(ttlSecondsAfterFinished=100),
    "mxjob": lambda b: b["spec"].update(ttlSecondsAfterFinished=100),
    "volcanojob": lambda b: b["spec"]["tasks"][1].update(replicas=1),
}


def seed_vectors() -> list[Vector]:
    vectors = [
        Vector(res, "before-seed", f"seed {name} PUT", load_seed(res.seed)) for name, res in BY_NAME.items()
    ]
    patched = creatable(load_seed(PYTORCHJOBS.seed))
    patched["metadata"].update(
        json.loads((ROOT / "tests/seeds/pytorchjob-patch.request.json").read_text())["metadata"]
    )
    return [*vectors, Vector(PYTORCHJOBS, "before-seed", "seed pytorchjob PATCH", patched)]


def _rewritten(res: Res, label: str, change: Callable[[Body], object]) -> Vector:
    body = creatable(load_seed(res.seed))
    change(body)
    return Vector(res, "seed", f"written-differently {label}", body)


def _rekey_ps(body: Body) -> None:
    specs = body["spec"]["tfReplicaSpecs"]
    body["spec"]["tfReplicaSpecs"] = {"PS": specs["Ps"], "Worker": specs["Worker"]}


def _millicores(body: Body) -> None:
    resources = body["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0][
        "resources"
    ]
    resources["requests"]["cpu"] = "2000m"  # the seed says 2


def _typed_client_empties(body: Body) -> None:
    """What a Go client writes back for a template: `metadata.creationTimestamp: null`, and `resources: {}`
    for a container without resources (an init container here)."""
    for replica in body["spec"]["tfReplicaSpecs"].values():
        replica["template"].setdefault("metadata", {})["creationTimestamp"] = None
        for container in replica["template"]["spec"]["containers"]:
            container.setdefault("resources", {})


def written_differently() -> list[Vector]:
    """Updates the webhook calls no change (it normalises) and the policy refuses (CEL compares what
    is stored): the documented strictness, counted rather than hidden."""
    return [
        _rewritten(TFJOBS, "tf Ps as PS", _rekey_ps),
        _rewritten(PYTORCHJOBS, "pytorch cpu 2 as 2000m", _millicores),
        _rewritten(
            PYTORCHJOBS,
            "pytorch Worker replicas left out",
            lambda b: b["spec"]["pytorchReplicaSpecs"]["Worker"].pop("replicas"),
        ),
        _rewritten(VOLCANOJOBS, "volcano schedulerName left out", lambda b: b["spec"].pop("schedulerName")),
        # No longer stricter (issue 26): absent, null, {} and [] alike one level down, as the webhook.
        _rewritten(TFJOBS, "tf empties as a Go client writes them", _typed_client_empties),
    ]


def _to_run_policy(body: Body) -> None:
    spec = body["spec"]
    spec["runPolicy"] = {f: spec.pop(f) for f in ("backoffLimit", "ttlSecondsAfterFinished")}


def layout_moves() -> list[Vector]:
    """The TF seed's run-policy fields (backoffLimit is not updatable) moved to spec.runPolicy with the
    same values: no change to either (both know the two layouts)."""
    moved = creatable(load_seed(TFJOBS.seed))
    _to_run_policy(moved)
    changed = creatable(load_seed(TFJOBS.seed))
    _to_run_policy(changed)
    changed["spec"]["runPolicy"]["backoffLimit"] += 1
    return [
        Vector(TFJOBS, "seed", "layout-move same value", moved),
        Vector(TFJOBS, "seed", "kubeflow-forbidden layout-move new value", changed),
    ]


def store(custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str) -> None:
    """A namespace holding, per kind, the seed as created ("seed") and as it was before the seed's
    update ("before-seed"); per Kubeflow kind also the seed as queued with Kueue, suspended
    ("kueue-suspended") and admitted ("kueue-running")."""
    core.create_namespace({"metadata": {"name": namespace}})
    wait_for(lambda: core.list_namespaced_service_account(namespace).items, 30, what="default SA")
    for name, res in BY_NAME.items():
        for stored_name, change in (("seed", None), ("before-seed", BEFORE_SEED[name])):
            body = creatable(load_seed(res.seed), namespace)
            body["metadata"]["name"] = stored_name
            if change:
                change(body)
            custom.create_namespaced_custom_object(res.group, res.version, namespace, res.plural, body)
        if res is VOLCANOJOBS:
            continue
        for suspended in (True, False):
            body = kueue_ready(creatable(load_seed(res.seed), namespace), suspended)
            body["metadata"]["name"] = kueue_name(suspended)
            custom.create_namespaced_custom_object(res.group, res.version, namespace, res.plural, body)


def kueue_name(suspended: bool) -> str:
    return "kueue-suspended" if suspended else "kueue-running"


def dry_run(custom: client.CustomObjectsApi, namespace: str, vector: Vector) -> Outcome:
    return replace(custom, vector.res, namespace, vector.stored, vector.apply, dry_run=True)


def probe(custom: client.CustomObjectsApi, namespace: str) -> Outcome:
    """A task template change with a malformed container name: the policy allows it (templates are
    updatable), the webhook refuses it (create-time check of the new object)."""

    def bad_container(body: Body) -> None:
        body["spec"]["tasks"][0]["template"]["spec"]["containers"][0]["name"] = "Bad_Name"

    return replace(custom, VOLCANOJOBS, namespace, "seed", bad_container, dry_run=True)


def forbidden_probe(custom: client.CustomObjectsApi, namespace: str) -> Outcome:
    return replace(
        custom, TFJOBS, namespace, "seed", lambda b: b["spec"].update(backoffLimit=77), dry_run=True
    )


@contextmanager
def only_the_policy(cluster: Cluster, custom: client.CustomObjectsApi, namespace: str) -> Iterator[None]:
    with webhook_configuration_removed(cluster, lambda: not probe(custom, namespace).allowed):
        wait_for(lambda: POLICY_DENIED in forbidden_probe(custom, namespace).message, 30, what="the policy")
        yield


@contextmanager
def only_the_webhook(cluster: Cluster, custom: client.CustomObjectsApi, namespace: str) -> Iterator[None]:
    bindings = [o for o in policy.policy_objects() if o["kind"] == "ValidatingAdmissionPolicyBinding"]
    for binding in bindings:
        cluster.kubectl("delete", "validatingadmissionpolicybinding", binding["metadata"]["name"])
    try:
        wait_for(
            lambda: WEBHOOK_DENIED in forbidden_probe(custom, namespace).message, 30, what="policy unbound"
        )
        yield
    finally:
        for binding in bindings:
            cluster.kubectl("create", "-f", "-", input=json.dumps(binding))
        wait_for(
            lambda: POLICY_DENIED in forbidden_probe(custom, namespace).message,
            30,
            what="policy bound again",
        )


def kind_of_answer(outcome: Outcome) -> str:
    if outcome.allowed:
        return "allowed"
    if POLICY_DENIED in outcome.message:
        return "policy-denied"
    if WEBHOOK_DENIED in outcome.message:
        contract = any(word in outcome.message for word in CONTRACT_WORDS)
        return "webhook-denied-contract" if contract else "webhook-denied-create-checks"
    return f"apiserver-{outcome.status}"  # e.g. 422 from the CRD schema, the same in both runs


def suspend_vectors(count: int) -> list[Vector]:
    """Issue 26's updates for an operator with `--allow-suspend-updates`: Kueue-ready jobs (stored
    suspended or running) with their templates' scheduling directives edited, `suspend` set either way,
    maybe written back as a Go client writes them, and maybe one edit that is never allowed."""
    origins = {True: "kueue-while-suspended", False: "kueue-running-directives"}
    vectors = []
    for name, stored_suspended, _, new, other in _draw(properties().kubeflow_suspend_updates(), count):
        suspended = stored_suspended or new["spec"]["runPolicy"]["suspend"]
        origin = f"kubeflow-forbidden {other}" if other else origins[suspended]
        vectors.append(Vector(BY_NAME[name], kueue_name(stored_suspended), origin, new))
    return vectors


@dataclass(frozen=True)
class Comparison:
    vectors: list[Vector]
    by_policy: list[str]
    by_webhook: list[str]

    @property
    def pairs(self) -> Counter[tuple[str, str]]:
        return Counter(zip(self.by_policy, self.by_webhook, strict=True))

    def origins(self, policy_answer: str, webhook_answer: str) -> list[str]:
        return [
            v.origin
            for v, p, w in zip(self.vectors, self.by_policy, self.by_webhook, strict=True)
            if (p, w) == (policy_answer, webhook_answer)
        ]

    @property
    def looser(self) -> list[str]:
        """Allowed by the policy, refused by the webhook for the contract: must be none."""
        return self.origins("allowed", "webhook-denied-contract")

    @property
    def stricter(self) -> list[str]:
        return self.origins("policy-denied", "allowed")

    def report(self) -> str:
        kinds = Counter(o.split(" ")[0] for o in self.stricter)
        return (
            f"{len(self.vectors)} update vectors (policy answer, webhook answer): {dict(self.pairs)}\n"
            f"policy stricter than the webhook on {len(self.stricter)}: {dict(kinds)} {self.stricter[:8]}"
        )


def compare(
    cluster: Cluster, custom: client.CustomObjectsApi, namespace: str, vectors: list[Vector]
) -> Comparison:
    """Every vector as a dry-run update, once with only the policy and once with only the webhook."""
    with only_the_policy(cluster, custom, namespace):
        by_policy = [kind_of_answer(dry_run(custom, namespace, v)) for v in vectors]
    with only_the_webhook(cluster, custom, namespace):
        by_webhook = [kind_of_answer(dry_run(custom, namespace, v)) for v in vectors]
    return Comparison(vectors, by_policy, by_webhook)
