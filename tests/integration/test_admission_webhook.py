"""The validating admission webhook through the real kube-apiserver (admission issue).

Every test runs with `jobwarden run` registered as the ValidatingWebhookConfiguration `jobwarden`, so
each request below goes apiserver -> https://127.0.0.1:<port>/validate -> the pure rule engine and
back. What is checked is what a client sees: the HTTP status code (200, 400, 403, 409), the message
the apiserver relays (`admission webhook "validate.jobwarden.dev" denied the request: <path>: ...`),
and what ends up stored.

The operator reconciles the jobs these tests create and writes their `/status`, which moves the
resourceVersion; every read-modify-write below therefore retries on a 409 that came from the
apiserver's optimistic lock (never on a webhook answer), and the stale-resourceVersion test makes its
version stale on purpose.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from admission_calls import webhook_configuration_removed
from devcluster.cluster import Cluster
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jobwarden.kinds import policy
from testlib import creatable, load_seed, wait_for

Body = dict[str, Any]
Change = Callable[[Body], object]

WEBHOOK = "validate.jobwarden.dev"
DENIED = f'admission webhook "{WEBHOOK}" denied the request'
KUBEFLOW_UPDATABLE = (
    "updatable fields: metadata.labels, metadata.annotations, spec.activeDeadlineSeconds, "
    "spec.ttlSecondsAfterFinished, spec.cleanPodPolicy, spec.runPolicy.activeDeadlineSeconds, "
    "spec.runPolicy.ttlSecondsAfterFinished, spec.runPolicy.cleanPodPolicy"
)
VOLCANO_UPDATABLE = (
    "updatable fields: metadata.labels, metadata.annotations, metadata.generateName, "
    "spec.tasks[*].replicas, spec.tasks[*].template"
)
CONFLICT_WORDS = ("the object has been modified", "Conflict")
ATTEMPTS = 20


@dataclass(frozen=True)
class Kind:
    seed: str
    group: str
    version: str
    plural: str
    updatable: str

    def path(self, namespace: str, name: str) -> str:
        return f"/apis/{self.group}/{self.version}/namespaces/{namespace}/{self.plural}/{name}"


TF = Kind("tfjob-put.request.json", "kubeflow.org", "v1", "tfjobs", KUBEFLOW_UPDATABLE)
PYTORCH = Kind("pytorchjob-put.request.json", "kubeflow.org", "v1", "pytorchjobs", KUBEFLOW_UPDATABLE)
MX = Kind("mxjob-put.request.json", "kubeflow.org", "v1", "mxjobs", KUBEFLOW_UPDATABLE)
VOLCANO = Kind("volcanojob-put.request.json", "batch.volcano.sh", "v1alpha1", "jobs", VOLCANO_UPDATABLE)
KINDS = {"tfjob": TF, "pytorchjob": PYTORCH, "mxjob": MX, "volcanojob": VOLCANO}
# What the Volcano CRD's schema defaults on top of what was sent (as upstream's CRD).
SCHEMA_DEFAULTS: dict[str, Body] = {"jobs": {"maxRetry": 3}}


# --------------------------------------------------------------------------------------------------
# Helpers


def seed(kind: Kind) -> Body:
    return load_seed(kind.seed)


def name_of(kind: Kind) -> str:
    return str(seed(kind)["metadata"]["name"])


def changed(body: Body, change: Change) -> Body:
    copied = copy.deepcopy(body)
    change(copied)
    return copied


def message_of(exc: ApiException) -> str:
    raw = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body or "")
    try:
        return str(json.loads(raw).get("message", raw))
    except ValueError:
        return raw


def is_lock_conflict(exc: ApiException) -> bool:
    """A 409 from the apiserver's optimistic lock (the operator wrote status in between)."""
    return exc.status == 409 and DENIED not in message_of(exc)


def as_body(value: object) -> Body:
    """A custom-objects answer (typed `object` by the client) as the JSON object it is."""
    assert isinstance(value, dict), value
    return dict(value)


def get(custom: client.CustomObjectsApi, kind: Kind, namespace: str, name: str) -> Body:
    return as_body(
        custom.get_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name)
    )


def create(custom: client.CustomObjectsApi, kind: Kind, namespace: str, change: Change | None = None) -> Body:
    body = creatable(seed(kind), namespace)
    if change:
        change(body)
    created = custom.create_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, body)
    return as_body(created)


def replace(
    custom: client.CustomObjectsApi,
    kind: Kind,
    namespace: str,
    name: str,
    change: Change,
    *,
    status: bool = False,
) -> tuple[Body, int]:
    """GET, change, PUT (the main resource or `/status`) with the current resourceVersion; retried
    when the operator moved the version in between. Returns (answer, HTTP status). Raises the
    ApiException of any other refusal."""
    call = (
        custom.replace_namespaced_custom_object_status_with_http_info
        if status
        else custom.replace_namespaced_custom_object_with_http_info
    )
    for _ in range(ATTEMPTS):
        body = changed(get(custom, kind, namespace, name), change)
        try:
            data, code, _ = call(kind.group, kind.version, namespace, kind.plural, name, body)
        except ApiException as exc:
            if is_lock_conflict(exc):
                continue
            raise
        return as_body(data), int(code)
    raise AssertionError(f"{kind.plural}/{name} kept conflicting after {ATTEMPTS} attempts")


def refusal(
    custom: client.CustomObjectsApi, kind: Kind, namespace: str, name: str, change: Change
) -> ApiException:
    """The ApiException a replace with `change` gets (never the optimistic lock's 409)."""
    try:
        answer, code = replace(custom, kind, namespace, name, change)
    except ApiException as exc:
        return exc
    raise AssertionError(f"the change was accepted ({code}): {json.dumps(answer.get('spec'))[:2000]}")


def kubectl_retrying(cluster: Cluster, build: Callable[[], str], *args: str) -> Any:
    """Run kubectl with the body `build()` makes from the current object, again on a lock conflict.
    Returns the last CompletedProcess (not checked: callers look at returncode and stderr)."""
    out = None
    for _ in range(ATTEMPTS):
        out = cluster.kubectl(*args, input=build(), check=False)
        if out.returncode == 0 or DENIED in out.stderr or not any(w in out.stderr for w in CONFLICT_WORDS):
            return out
    return out


def current_rv(custom: client.CustomObjectsApi, kind: Kind, namespace: str, name: str) -> Body:
    meta = get(custom, kind, namespace, name)["metadata"]
    return {"resourceVersion": meta["resourceVersion"], "uid": meta["uid"]}


def seed_replacement(custom: client.CustomObjectsApi, kind: Kind, namespace: str) -> Body:
    """The seed's request body as sent to its URL: server fields and status from 2019 included, only
    namespace, uid and resourceVersion those of the live object."""
    body = seed(kind)
    body["metadata"]["namespace"] = namespace
    body["metadata"].update(current_rv(custom, kind, namespace, name_of(kind)))
    return body


def assert_denied(message: str, paths: list[str], updatable: str | None) -> None:
    assert message.startswith(f"{DENIED}: "), message
    for path in paths:
        expected = f"{path}: field is not updatable; {updatable}" if updatable else f"{path}: "
        assert expected in message, f"{expected!r} not in {message!r}"


def pods(core: client.CoreV1Api, namespace: str) -> list[str]:
    return [str(p.metadata.name) for p in core.list_namespaced_pod(namespace).items if p.metadata]


def containers(body: Body, kind: Kind, replica: str) -> list[Body]:
    spec = body["spec"]
    if kind is VOLCANO:
        task = next(t for t in spec["tasks"] if t["name"] == replica)
        return list(task["template"]["spec"]["containers"])
    field = {"tfjobs": "tfReplicaSpecs", "pytorchjobs": "pytorchReplicaSpecs", "mxjobs": "mxReplicaSpecs"}
    return list(spec[field[kind.plural]][replica]["template"]["spec"]["containers"])


PROBE = "webhook-alone-probe"


def _answer_to_a_forbidden_change(custom: client.CustomObjectsApi) -> str:
    for _ in range(ATTEMPTS):
        body = get(custom, TF, "default", PROBE)
        body["spec"]["backoffLimit"] = 42
        try:
            custom.replace_namespaced_custom_object(
                TF.group, TF.version, "default", TF.plural, PROBE, body, dry_run="All"
            )
            return ""
        except ApiException as exc:
            if not is_lock_conflict(exc):
                return message_of(exc)
    return ""


@pytest.fixture(scope="module", autouse=True)
def webhook_alone(operator: Any, cluster: Cluster, custom: client.CustomObjectsApi) -> Iterator[None]:
    """These tests are about the webhook's answers. The local run also binds the update contract as a
    ValidatingAdmissionPolicy, which the apiserver evaluates first and which is stricter where the
    webhook normalises (tests/integration/test_admission_policy.py compares the two), so it is
    unbound for this module and bound again afterwards."""
    bindings = [o for o in policy.policy_objects() if o["kind"] == "ValidatingAdmissionPolicyBinding"]
    probe = creatable(seed(TF), "default")
    probe["metadata"]["name"] = PROBE
    custom.create_namespaced_custom_object(TF.group, TF.version, "default", TF.plural, probe)
    for binding in bindings:
        cluster.kubectl(
            "delete", "validatingadmissionpolicybinding", binding["metadata"]["name"], check=False
        )
    wait_for(lambda: DENIED in _answer_to_a_forbidden_change(custom), 30, what="the policy to be unbound")
    custom.delete_namespaced_custom_object(TF.group, TF.version, "default", TF.plural, PROBE)
    yield
    for binding in bindings:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(binding))


# --------------------------------------------------------------------------------------------------
# The registration


def test_webhook_configuration_as_registered(operator: Any, cluster: Cluster) -> None:
    config = json.loads(
        cluster.kubectl("get", "validatingwebhookconfiguration", "jobwarden", "-o", "json").stdout
    )
    [hook] = config["webhooks"]
    assert hook["name"] == WEBHOOK
    assert hook["sideEffects"] == "None"
    assert hook["failurePolicy"] == "Fail"
    assert 1 <= hook["timeoutSeconds"] <= 10
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["clientConfig"]["url"] == f"https://127.0.0.1:{operator.webhook_port}/validate"
    assert hook["clientConfig"]["caBundle"]
    covered: set[tuple[str, str, str]] = set()
    for rule in hook["rules"]:
        assert sorted(rule["operations"]) == ["CREATE", "UPDATE"], rule
        assert rule["scope"] == "Namespaced"
        for resource in rule["resources"]:
            assert "/" not in resource and "*" not in resource, f"subresource in {rule}"
            for group in rule["apiGroups"]:
                for version in rule["apiVersions"]:
                    covered.add((group, version, resource))
    # The kinds training-operator v1.9.4 added go through the same rule (test_kubeflow_v194_kinds.py).
    v194 = {("kubeflow.org", "v1", plural) for plural in ("xgboostjobs", "paddlejobs", "jaxjobs")}
    assert covered == {(k.group, k.version, k.plural) for k in KINDS.values()} | v194


# --------------------------------------------------------------------------------------------------
# The seeds' updates are allowed


# kind -> (the job as created differs from the seed like this, the seed's change as (path, value))
SEED_UPDATES: dict[str, tuple[Change, list[Any], Any]] = {
    "tfjob": (lambda b: b["spec"].update(ttlSecondsAfterFinished=100), ["ttlSecondsAfterFinished"], 1000),
    "pytorchjob": (
        lambda b: b["spec"].update(ttlSecondsAfterFinished=100),
        ["ttlSecondsAfterFinished"],
        3000,
    ),
    "mxjob": (lambda b: b["spec"].update(ttlSecondsAfterFinished=100), ["ttlSecondsAfterFinished"], 10000),
    "volcanojob": (lambda b: b["spec"]["tasks"][1].update(replicas=1), ["tasks", 1, "replicas"], 2),
}


def spec_value(body: Body, path: list[Any]) -> Any:
    target: Any = body["spec"]
    for key in path:
        target = target[key]
    return target


@pytest.mark.parametrize("key", sorted(SEED_UPDATES))
def test_seed_put_at_the_seed_url_is_allowed_and_stored(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str, key: str
) -> None:
    kind = KINDS[key]
    before, path, value = SEED_UPDATES[key]
    name = name_of(kind)
    created = create(custom, kind, namespace, before)
    assert spec_value(created, path) != value
    url = kind.path(namespace, name) + "?pretty=true"
    out = kubectl_retrying(
        cluster,
        lambda: json.dumps(seed_replacement(custom, kind, namespace)),
        "replace",
        "--raw",
        url,
        "-f",
        "-",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('{\n  "'), "pretty=true answers an indented body"
    answered = json.loads(out.stdout)
    assert spec_value(answered, path) == value
    assert answered["spec"] == {**SCHEMA_DEFAULTS.get(kind.plural, {}), **seed(kind)["spec"]}
    stored = get(custom, kind, namespace, name)
    assert spec_value(stored, path) == value
    assert stored["spec"] == answered["spec"]
    assert stored["metadata"]["uid"] == created["metadata"]["uid"]


@pytest.mark.parametrize("key", sorted(SEED_UPDATES))
def test_seed_put_through_the_client_answers_200(
    operator: Any, custom: client.CustomObjectsApi, namespace: str, key: str
) -> None:
    kind = KINDS[key]
    before, path, value = SEED_UPDATES[key]
    create(custom, kind, namespace, before)
    answer, code = replace(
        custom,
        kind,
        namespace,
        name_of(kind),
        lambda current: current.update(seed_replacement(custom, kind, namespace)),
    )
    assert code == 200
    assert spec_value(answer, path) == value
    assert spec_value(get(custom, kind, namespace, name_of(kind)), path) == value


def test_create_answers_201_for_every_seed_and_for_a_generated_name(
    operator: Any, custom: client.CustomObjectsApi, namespace: str
) -> None:
    for kind in KINDS.values():
        body = creatable(seed(kind), namespace)
        data, code, _ = custom.create_namespaced_custom_object_with_http_info(
            kind.group, kind.version, namespace, kind.plural, body
        )
        assert code == 201, kind.plural
        assert as_body(data)["spec"] == {**SCHEMA_DEFAULTS.get(kind.plural, {}), **body["spec"]}
    generated = creatable(seed(PYTORCH), namespace)
    del generated["metadata"]["name"]
    generated["metadata"]["generateName"] = "pytorch-"
    data, code, _ = custom.create_namespaced_custom_object_with_http_info(
        PYTORCH.group, PYTORCH.version, namespace, PYTORCH.plural, generated
    )
    assert code == 201
    assert as_body(data)["metadata"]["name"].startswith("pytorch-")


def test_merge_patch_of_the_004_example_is_allowed(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, PYTORCH, namespace, lambda b: b["metadata"].pop("labels"))
    patch = load_seed("pytorchjob-patch.request.json")
    out = cluster.kubectl(
        "patch", "pytorchjob", "pytorch-test", "-n", namespace, "--type=merge", "-p", json.dumps(patch)
    )
    assert out.returncode == 0
    assert get(custom, PYTORCH, namespace, "pytorch-test")["metadata"]["labels"] == {"app": "test"}
    # The same patch through the client (application/merge-patch+json) answers 200.
    again = {"metadata": {"labels": {"app": "test", "team": "ml"}}}
    data, code, _ = custom.patch_namespaced_custom_object_with_http_info(
        PYTORCH.group, PYTORCH.version, namespace, PYTORCH.plural, "pytorch-test", again
    )
    assert code == 200
    assert as_body(data)["metadata"]["labels"] == {"app": "test", "team": "ml"}


def test_json_patch_of_an_updatable_field_is_allowed(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, PYTORCH, namespace)
    patch = [{"op": "replace", "path": "/spec/ttlSecondsAfterFinished", "value": 7}]
    out = cluster.kubectl(
        "patch", "pytorchjob", "pytorch-test", "-n", namespace, "--type=json", "-p", json.dumps(patch)
    )
    assert out.returncode == 0
    assert get(custom, PYTORCH, namespace, "pytorch-test")["spec"]["ttlSecondsAfterFinished"] == 7


def test_json_patch_of_a_fixed_field_is_refused(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, PYTORCH, namespace)
    path = "/spec/pytorchReplicaSpecs/Worker/template/spec/containers/0/image"
    patch = [{"op": "replace", "path": path, "value": "pytorch:v2"}]
    out = cluster.kubectl(
        "patch",
        "pytorchjob",
        "pytorch-test",
        "-n",
        namespace,
        "--type=json",
        "-p",
        json.dumps(patch),
        check=False,
    )
    assert out.returncode != 0
    assert DENIED in out.stderr
    assert (
        f"spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].image: field is not updatable; "
        f"{KUBEFLOW_UPDATABLE}" in out.stderr
    )
    stored = get(custom, PYTORCH, namespace, "pytorch-test")
    assert containers(stored, PYTORCH, "Worker")[0]["image"] == "*.*.*.215:20202/gcs/pytorch-cpu:v1"


def test_server_side_apply_of_an_updatable_field_is_allowed(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    created = create(custom, TF, namespace)
    applied = changed(creatable(seed(TF), namespace), lambda b: b["spec"].update(ttlSecondsAfterFinished=42))
    out = cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(applied), check=False
    )
    assert out.returncode == 0, out.stderr
    assert get(custom, TF, namespace, "tfjob-test")["spec"]["ttlSecondsAfterFinished"] == 42
    # The usual SSA shape: another manager applies only the fields it owns.
    partial = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": "tfjob-test", "namespace": namespace, "labels": {"tuned": "yes"}},
        "spec": {"activeDeadlineSeconds": 600, "cleanPodPolicy": "All"},
    }
    out = cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=deadline-tuner",
        "-f",
        "-",
        input=json.dumps(partial),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    stored = get(custom, TF, namespace, "tfjob-test")
    assert (stored["spec"]["activeDeadlineSeconds"], stored["spec"]["cleanPodPolicy"]) == (600, "All")
    assert stored["metadata"]["labels"] == {"app": "test", "tuned": "yes"}
    assert stored["spec"]["tfReplicaSpecs"] == created["spec"]["tfReplicaSpecs"]


def test_server_side_apply_of_a_fixed_field_is_refused(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, TF, namespace)
    applied = changed(creatable(seed(TF), namespace), lambda b: b["spec"].update(backoffLimit=2))
    out = cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(applied), check=False
    )
    assert out.returncode != 0
    assert DENIED in out.stderr
    assert f"spec.backoffLimit: field is not updatable; {KUBEFLOW_UPDATABLE}" in out.stderr
    assert get(custom, TF, namespace, "tfjob-test")["spec"]["backoffLimit"] == 6


# --------------------------------------------------------------------------------------------------
# Forbidden changes: 403 with every offending path and the updatable list


def _image(kind: Kind, replica: str, image: str) -> Change:
    return lambda b: containers(b, kind, replica)[0].update(image=image)


def _add_task(body: Body) -> None:
    body["spec"]["tasks"].append({**copy.deepcopy(body["spec"]["tasks"][1]), "name": "extra"})


FORBIDDEN: dict[str, tuple[Kind, Change, list[str]]] = {
    "tf-image": (
        TF,
        _image(TF, "Ps", "tf:2"),
        ["spec.tfReplicaSpecs.Ps.template.spec.containers[0].image"],
    ),
    "pytorch-replicas": (
        PYTORCH,
        lambda b: b["spec"]["pytorchReplicaSpecs"]["Worker"].update(replicas=3),
        ["spec.pytorchReplicaSpecs.Worker.replicas"],
    ),
    "mx-replicas": (
        MX,
        lambda b: b["spec"]["mxReplicaSpecs"]["Worker"].update(replicas=2),
        ["spec.mxReplicaSpecs.Worker.replicas"],
    ),
    "tf-backoffLimit": (TF, lambda b: b["spec"].update(backoffLimit=3), ["spec.backoffLimit"]),
    "pytorch-runPolicy-backoffLimit": (
        PYTORCH,
        lambda b: b["spec"].update(runPolicy={"backoffLimit": 3}),
        ["spec.runPolicy.backoffLimit"],
    ),
    "volcano-schedulerName": (
        VOLCANO,
        lambda b: b["spec"].update(schedulerName="default-scheduler"),
        ["spec.schedulerName"],
    ),
    "volcano-minAvailable": (VOLCANO, lambda b: b["spec"].update(minAvailable=1), ["spec.minAvailable"]),
    "volcano-task-policies": (
        VOLCANO,
        lambda b: b["spec"]["tasks"][0].update(policies=[{"action": "AbortJob", "event": "PodFailed"}]),
        ["spec.tasks[0].policies[0].action", "spec.tasks[0].policies[0].event"],
    ),
}


@pytest.mark.parametrize("case", sorted(FORBIDDEN))
def test_forbidden_change_is_403_naming_the_path_and_the_updatable_fields(
    operator: Any, custom: client.CustomObjectsApi, namespace: str, case: str
) -> None:
    kind, change, paths = FORBIDDEN[case]
    created = create(custom, kind, namespace)
    name = created["metadata"]["name"]
    exc = refusal(custom, kind, namespace, name, change)
    assert exc.status == 403, message_of(exc)
    assert_denied(message_of(exc), paths, kind.updatable)
    assert get(custom, kind, namespace, name)["spec"] == created["spec"], "nothing was stored"


def test_every_offending_path_of_one_request_is_named(
    operator: Any, custom: client.CustomObjectsApi, namespace: str
) -> None:
    created = create(custom, TF, namespace)

    def change(body: Body) -> None:
        replicas = body["spec"]["tfReplicaSpecs"]
        containers(body, TF, "Ps")[0]["image"] = "tf:2"
        replicas["Worker"]["replicas"] = 2
        containers(body, TF, "Worker")[0]["args"].append("--num_gpus=2")
        body["spec"]["backoffLimit"] = 1
        body["spec"]["ttlSecondsAfterFinished"] = 5  # allowed: not named
        body["metadata"]["labels"]["extra"] = "yes"  # allowed: not named

    exc = refusal(custom, TF, namespace, "tfjob-test", change)
    assert exc.status == 403
    message = message_of(exc)
    paths = [
        "spec.backoffLimit",
        "spec.tfReplicaSpecs.Ps.template.spec.containers[0].image",
        "spec.tfReplicaSpecs.Worker.replicas",
        "spec.tfReplicaSpecs.Worker.template.spec.containers[0].args[9]",
    ]
    assert_denied(message, paths, KUBEFLOW_UPDATABLE)
    assert message.count("field is not updatable") == len(paths), message
    assert "ttlSecondsAfterFinished:" not in message and "metadata.labels.extra" not in message
    stored = get(custom, TF, namespace, "tfjob-test")
    assert stored["spec"] == created["spec"]
    assert "extra" not in stored["metadata"]["labels"], "a refused request stores none of its changes"


def test_a_template_restart_policy_change_names_only_the_path_that_changed(
    operator: Any, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, TF, namespace)
    exc = refusal(
        custom,
        TF,
        namespace,
        "tfjob-test",
        lambda b: b["spec"]["tfReplicaSpecs"]["Ps"]["template"]["spec"].update(restartPolicy="Never"),
    )
    assert exc.status == 403
    assert message_of(exc) == (
        f"{DENIED}: spec.tfReplicaSpecs.Ps.template.spec.restartPolicy: field is not updatable; "
        f"{KUBEFLOW_UPDATABLE}"
    )


def test_adding_a_volcano_task_is_403_naming_spec_tasks(
    operator: Any, custom: client.CustomObjectsApi, namespace: str
) -> None:
    created = create(custom, VOLCANO, namespace)
    exc = refusal(custom, VOLCANO, namespace, created["metadata"]["name"], _add_task)
    assert exc.status == 403, message_of(exc)
    assert message_of(exc) == (
        f"{DENIED}: spec.tasks: job updates may not add or remove tasks (before: [mpimaster, mpiworker], "
        "after: [mpimaster, mpiworker, extra]), only scale them with spec.tasks[*].replicas"
        "; updatable fields: metadata.labels, metadata.annotations, metadata.generateName, "
        "spec.tasks[*].replicas, spec.tasks[*].template"
    )
    assert len(get(custom, VOLCANO, namespace, created["metadata"]["name"])["spec"]["tasks"]) == 2


def test_volcano_scale_below_min_available_is_400(
    operator: Any, custom: client.CustomObjectsApi, namespace: str
) -> None:
    """An allowed field with a value the job cannot run with is malformed (400), not forbidden."""
    created = create(custom, VOLCANO, namespace)
    exc = refusal(
        custom,
        VOLCANO,
        namespace,
        created["metadata"]["name"],
        lambda b: b["spec"]["tasks"][1].update(replicas=0),
    )
    assert exc.status == 400, message_of(exc)
    assert message_of(exc).startswith(
        f"{DENIED}: spec.minAvailable: Invalid value: 2: scaling the tasks down"
    )
    assert get(custom, VOLCANO, namespace, created["metadata"]["name"])["spec"]["tasks"][1]["replicas"] == 2


# --------------------------------------------------------------------------------------------------
# Conflicts come from the apiserver


def test_stale_resource_version_is_409_from_the_apiserver(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, PYTORCH, namespace)
    stale = get(custom, PYTORCH, namespace, "pytorch-test")
    replace(custom, PYTORCH, namespace, "pytorch-test", lambda b: b["metadata"]["labels"].update(v="2"))
    for change in (
        lambda b: b["spec"].update(ttlSecondsAfterFinished=1),  # allowed by the webhook
        lambda b: b["spec"]["pytorchReplicaSpecs"]["Worker"].update(replicas=5),  # refused by it
    ):
        body = changed(stale, change)
        with pytest.raises(ApiException) as caught:
            custom.replace_namespaced_custom_object(
                PYTORCH.group, PYTORCH.version, namespace, PYTORCH.plural, "pytorch-test", body
            )
        assert caught.value.status == 409
        assert "the object has been modified" in message_of(caught.value)
        assert "admission webhook" not in message_of(caught.value)
    # The seed body itself carries a resourceVersion from 2019: a conflict, not a denial.
    old = seed(PYTORCH)
    old["metadata"]["namespace"] = namespace
    old["metadata"]["uid"] = stale["metadata"]["uid"]
    out = cluster.kubectl(
        "replace",
        "--raw",
        PYTORCH.path(namespace, "pytorch-test"),
        "-f",
        "-",
        input=json.dumps(old),
        check=False,
    )
    assert out.returncode != 0
    assert "Conflict" in out.stderr or "the object has been modified" in out.stderr, out.stderr
    assert "admission webhook" not in out.stderr
    assert get(custom, PYTORCH, namespace, "pytorch-test")["spec"]["ttlSecondsAfterFinished"] == 3000


# --------------------------------------------------------------------------------------------------
# Malformed jobs: 400 with the field path, nothing created


def _rename_tf_containers(body: Body) -> None:
    containers(body, TF, "Ps")[0]["name"] = "tf"


def _duplicate_task(body: Body) -> None:
    body["spec"]["tasks"][1]["name"] = "mpimaster"


def _boss(body: Body) -> None:
    specs = body["spec"]["pytorchReplicaSpecs"]
    specs["Boss"] = copy.deepcopy(specs["Worker"])


def _both_layouts(body: Body) -> None:
    body["spec"]["runPolicy"] = {"ttlSecondsAfterFinished": 100}


MALFORMED: dict[str, tuple[Kind, Change, str]] = {
    "tf-no-tensorflow-container": (
        TF,
        _rename_tf_containers,
        "spec.tfReplicaSpecs.Ps.template.spec.containers: Required value: "
        "must have at least one container with name tensorflow",
    ),
    "volcano-duplicate-task": (
        VOLCANO,
        _duplicate_task,
        'spec.tasks[1].name: Duplicate value: "mpimaster": task names must be unique',
    ),
    "pytorch-unknown-replica-type": (
        PYTORCH,
        _boss,
        'spec.pytorchReplicaSpecs.Boss: Unsupported value: "Boss": supported values: "Master", "Worker"',
    ),
    "volcano-min-available-above-total": (
        VOLCANO,
        lambda b: b["spec"].update(minAvailable=5),
        "spec.minAvailable: Invalid value: 5: must not be greater than the total replicas of all tasks (3)",
    ),
    "tf-name-not-a-dns-1035-label": (
        TF,
        lambda b: b["metadata"].update(name="1tfjob"),
        'metadata.name: Invalid value: "1tfjob": a DNS-1035 label must consist of',
    ),
    "pytorch-run-policy-layouts-disagree": (
        PYTORCH,
        _both_layouts,
        "spec.ttlSecondsAfterFinished: Invalid value: 3000: conflicts with "
        "spec.runPolicy.ttlSecondsAfterFinished=100",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_job_is_400_with_the_path_and_nothing_is_created(
    operator: Any, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str, case: str
) -> None:
    kind, change, expected = MALFORMED[case]
    body = changed(creatable(seed(kind), namespace), change)
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, body)
    assert caught.value.status == 400, message_of(caught.value)
    message = message_of(caught.value)
    assert message.startswith(f"{DENIED}: "), message
    assert expected in message, message
    with pytest.raises(ApiException) as missing:
        get(custom, kind, namespace, body["metadata"]["name"])
    assert missing.value.status == 404
    listed = custom.list_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural)
    assert as_body(listed)["items"] == []
    time.sleep(1)  # time enough for the operator to have acted on a job, had one been stored
    assert pods(core, namespace) == []
    assert core.list_namespaced_service(namespace).items == []


# --------------------------------------------------------------------------------------------------
# Dry runs run the same checks


def test_replace_dry_run_runs_the_same_checks(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, MX, namespace)

    def body(change: Change) -> Callable[[], str]:
        return lambda: json.dumps(changed(get(custom, MX, namespace, "mxnet-job"), change))

    refused = kubectl_retrying(
        cluster,
        body(lambda b: b["spec"]["mxReplicaSpecs"]["Server"].update(replicas=2)),
        "replace",
        "--dry-run=server",
        "-f",
        "-",
    )
    assert refused.returncode != 0
    assert DENIED in refused.stderr
    assert (
        f"spec.mxReplicaSpecs.Server.replicas: field is not updatable; {KUBEFLOW_UPDATABLE}" in refused.stderr
    )
    allowed = kubectl_retrying(
        cluster,
        body(lambda b: b["spec"].update(ttlSecondsAfterFinished=5)),
        "replace",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
    )
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["spec"]["ttlSecondsAfterFinished"] == 5
    stored = get(custom, MX, namespace, "mxnet-job")
    assert stored["spec"]["ttlSecondsAfterFinished"] == 10000, "a dry run stores nothing"
    assert stored["spec"]["mxReplicaSpecs"]["Server"]["replicas"] == 1


def test_apply_dry_run_runs_the_same_checks(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    manifest = creatable(seed(VOLCANO), namespace)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    refused = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input=json.dumps(changed(manifest, lambda b: b["spec"].update(queue="gpu"))),
        check=False,
    )
    assert refused.returncode != 0
    assert DENIED in refused.stderr
    assert f"spec.queue: field is not updatable; {VOLCANO_UPDATABLE}" in refused.stderr

    # Scaling a task and changing its template are allowed: answered, not stored.
    def scaled(body: Body) -> None:
        body["spec"]["tasks"][1]["replicas"] = 4
        containers(body, VOLCANO, "mpiworker")[0]["image"] = "openmpi:4"

    allowed = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        input=json.dumps(changed(manifest, scaled)),
        check=False,
    )
    assert allowed.returncode == 0, allowed.stderr
    answered = json.loads(allowed.stdout)
    assert answered["spec"]["tasks"][1]["replicas"] == 4
    assert containers(answered, VOLCANO, "mpiworker")[0]["image"] == "openmpi:4"
    stored = get(custom, VOLCANO, namespace, "openmpi-hello-2-com")
    assert stored["spec"]["tasks"][1]["replicas"] == 2, "a dry run stores nothing"
    assert stored["spec"]["queue"] == "default"
    assert containers(stored, VOLCANO, "mpiworker")[0]["image"] == "*.*.*.*:20202/swr/openmpi-hello:3.28"


def test_create_dry_run_runs_the_create_checks(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    bad = changed(creatable(seed(TF), namespace), _rename_tf_containers)
    out = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode != 0
    assert DENIED in out.stderr
    assert "spec.tfReplicaSpecs.Ps.template.spec.containers: Required value" in out.stderr
    good = creatable(seed(TF), namespace)
    out = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(good), check=False)
    assert out.returncode == 0, out.stderr
    with pytest.raises(ApiException) as missing:
        get(custom, TF, namespace, "tfjob-test")
    assert missing.value.status == 404


# --------------------------------------------------------------------------------------------------
# Status is the controller's: never refused


def test_status_replace_and_patch_are_never_refused(
    operator: Any, custom: client.CustomObjectsApi, namespace: str
) -> None:
    created = create(custom, TF, namespace)
    written = {
        "conditions": [
            {
                "type": "Created",
                "status": "True",
                "reason": "TFJobCreated",
                "message": "TFJob tfjob-test is created.",
                "lastTransitionTime": "2019-07-24T07:16:13Z",
                "lastUpdateTime": "2019-07-24T07:16:13Z",
            }
        ],
        "replicaStatuses": {"PS": {"active": 1}, "Worker": {"active": 1}},
        "startTime": "2019-07-24T07:16:13Z",
    }

    def status_and_forbidden_spec(body: Body) -> None:
        # On /status the spec is ignored, so a change the webhook would refuse on the main resource
        # (an image, a replica count) is neither refused nor stored.
        body["status"] = copy.deepcopy(written)
        containers(body, TF, "Ps")[0]["image"] = "tf:2"
        body["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] = 4

    answer, code = replace(custom, TF, namespace, "tfjob-test", status_and_forbidden_spec, status=True)
    assert code == 200
    assert answer["status"]["startTime"] == "2019-07-24T07:16:13Z"
    assert answer["spec"] == created["spec"]

    patch = {"status": {"startTime": "2020-01-01T00:00:00Z"}, "spec": {"backoffLimit": 0}}
    data, code, _ = custom.patch_namespaced_custom_object_status_with_http_info(
        TF.group, TF.version, namespace, TF.plural, "tfjob-test", patch
    )
    assert code == 200
    assert as_body(data)["status"]["startTime"] == "2020-01-01T00:00:00Z"
    assert as_body(data)["spec"] == created["spec"]


@pytest.mark.parametrize("key", ["pytorchjob", "volcanojob"])
def test_the_operator_reaches_running_through_its_own_webhook(
    operator: Any, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str, key: str
) -> None:
    kind = KINDS[key]
    created = create(custom, kind, namespace)
    name = created["metadata"]["name"]

    def running() -> Body | None:
        status = get(custom, kind, namespace, name).get("status") or {}
        if kind is VOLCANO:
            return status if (status.get("state") or {}).get("phase") == "Running" else None
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        return status if conditions.get("Running") == "True" else None

    status = wait_for(running, 60, what=f"{kind.plural}/{name} Running")
    assert status
    assert pods(core, namespace), "the operator created the pods"
    stored = get(custom, kind, namespace, name)
    assert stored["spec"] == created["spec"], "the operator never changes the spec"
    refused = [line for line in operator.logs().splitlines() if namespace in line and "denied" in line]
    assert refused == [], "the operator's own writes were refused"


def test_foreground_deletion_completes_through_the_webhook(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str
) -> None:
    """Foreground deletion: the apiserver adds the `foregroundDeletion` finalizer and the garbage
    collector removes it with an UPDATE of the job (deletionTimestamp set), which the webhook sees."""
    create(custom, PYTORCH, namespace)
    wait_for(lambda: len(pods(core, namespace)) == 2, 60, what="the job's two pods")
    out = cluster.kubectl(
        "delete",
        "pytorchjob",
        "pytorch-test",
        "-n",
        namespace,
        "--cascade=foreground",
        "--wait=true",
        "--timeout=60s",
        check=False,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    with pytest.raises(ApiException) as missing:
        get(custom, PYTORCH, namespace, "pytorch-test")
    assert missing.value.status == 404


# --------------------------------------------------------------------------------------------------
# What is not a change


def test_server_managed_metadata_in_a_replace_is_not_refused(
    operator: Any, custom: client.CustomObjectsApi, namespace: str
) -> None:
    created = create(custom, PYTORCH, namespace)
    finalizer = "example.com/hold"

    def server_fields(body: Body) -> None:
        meta = body["metadata"]
        meta["generation"] = 99
        meta["creationTimestamp"] = "2019-07-24T10:35:38Z"
        meta["selfLink"] = "/apis/kubeflow.org/v1/namespaces/kube-test/pytorchjobs/pytorch-test"
        meta["finalizers"] = [finalizer]
        meta["managedFields"] = [
            {
                "manager": "someone-else",
                "operation": "Update",
                "apiVersion": "kubeflow.org/v1",
                "time": "2019-07-24T10:35:38Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}},
            }
        ]

    try:
        answer, code = replace(custom, PYTORCH, namespace, "pytorch-test", server_fields)
        assert code == 200
        assert answer["metadata"]["finalizers"] == [finalizer]
        assert answer["metadata"]["generation"] == created["metadata"]["generation"]
        assert answer["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
        assert answer["spec"] == created["spec"]
        # Removing the finalizer again is just as allowed.
        _, code = replace(
            custom, PYTORCH, namespace, "pytorch-test", lambda b: b["metadata"].pop("finalizers")
        )
        assert code == 200
    finally:
        custom.patch_namespaced_custom_object(
            PYTORCH.group,
            PYTORCH.version,
            namespace,
            PYTORCH.plural,
            "pytorch-test",
            {"metadata": {"finalizers": None}},
        )
    assert not get(custom, PYTORCH, namespace, "pytorch-test")["metadata"].get("finalizers")


def _cpu_as_number(body: Body) -> None:
    for replica in ("Ps", "Worker"):
        for container in containers(body, TF, replica):
            container["resources"] = {
                "limits": {"cpu": 2, "memory": "4Gi"},
                "requests": {"cpu": 2, "memory": "4Gi"},
            }


def _ps_as_upper_case(body: Body) -> None:
    specs = body["spec"]["tfReplicaSpecs"]
    body["spec"]["tfReplicaSpecs"] = {"PS": specs["Ps"], "Worker": specs["Worker"]}


def _cpu_in_millis(body: Body) -> None:
    for replica in ("Master", "Worker"):
        for container in containers(body, PYTORCH, replica):
            container["resources"]["requests"]["cpu"] = "2000m"


def _replicas_left_out(body: Body) -> None:
    body["spec"]["pytorchReplicaSpecs"]["Worker"].pop("replicas")


def _ttl_moved_to_run_policy(body: Body) -> None:
    body["spec"]["runPolicy"] = {"ttlSecondsAfterFinished": body["spec"].pop("ttlSecondsAfterFinished")}


def _scheduler_left_out(body: Body) -> None:
    body["spec"].pop("schedulerName")


# case -> (kind, change, what the stored spec shows afterwards)
SAME_VALUES: dict[str, tuple[Kind, Change, Callable[[Body], bool]]] = {
    "tf-cpu-as-number": (
        TF,
        _cpu_as_number,
        lambda s: containers(s, TF, "Ps")[0]["resources"]["limits"]["cpu"] == 2,
    ),
    "tf-Ps-rekeyed-PS": (
        TF,
        _ps_as_upper_case,
        lambda s: sorted(s["spec"]["tfReplicaSpecs"]) == ["PS", "Worker"],
    ),
    "pytorch-cpu-in-millis": (
        PYTORCH,
        _cpu_in_millis,
        lambda s: containers(s, PYTORCH, "Master")[0]["resources"]["requests"]["cpu"] == "2000m",
    ),
    "pytorch-replicas-default-1": (
        PYTORCH,
        _replicas_left_out,
        lambda s: "replicas" not in s["spec"]["pytorchReplicaSpecs"]["Worker"],
    ),
    "pytorch-ttl-moved-to-runPolicy": (
        PYTORCH,
        _ttl_moved_to_run_policy,
        lambda s: s["spec"]["runPolicy"]["ttlSecondsAfterFinished"] == 3000,
    ),
    "volcano-schedulerName-default": (
        VOLCANO,
        _scheduler_left_out,
        lambda s: "schedulerName" not in s["spec"],
    ),
}


@pytest.mark.parametrize("case", sorted(SAME_VALUES))
def test_values_only_written_differently_are_not_a_change(
    operator: Any, custom: client.CustomObjectsApi, namespace: str, case: str
) -> None:
    kind, change, shows = SAME_VALUES[case]
    created = create(custom, kind, namespace)
    answer, code = replace(custom, kind, namespace, created["metadata"]["name"], change)
    assert code == 200
    assert shows(answer), json.dumps(answer["spec"])[:3000]
    assert shows(get(custom, kind, namespace, created["metadata"]["name"]))


# --------------------------------------------------------------------------------------------------
# Ratcheting: a job stored before a rule existed stays manageable


def _probe_is_denied(cluster: Cluster, namespace: str) -> bool:
    probe = changed(creatable(seed(TF), namespace), _rename_tf_containers)
    probe["metadata"]["name"] = "webhook-probe"
    out = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False)
    return DENIED in out.stderr


@contextmanager
def webhook_suspended(cluster: Cluster, namespace: str) -> Iterator[None]:
    """Take the ValidatingWebhookConfiguration away (as before jobwarden was installed, or before a
    rule existed) and put the very same one back afterwards."""
    with webhook_configuration_removed(cluster, lambda: _probe_is_denied(cluster, namespace)):
        yield


def test_a_job_stored_before_a_rule_can_still_be_managed(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    """A TFJob whose two run-policy layouts disagree (refused today, 400) was stored while no webhook
    was registered. Its labels, finalizers and status can still be written; a forbidden change is
    still refused for that change alone; changing the conflicting field to a new conflicting value is
    refused, and resolving the conflict is allowed."""
    with webhook_suspended(cluster, namespace):
        created = create(custom, TF, namespace, _conflicting_layouts)
    assert created["spec"]["runPolicy"] == {"ttlSecondsAfterFinished": 2000}
    finalizer = "example.com/hold"
    try:
        _, code = replace(
            custom, TF, namespace, "tfjob-test", lambda b: b["metadata"]["labels"].update(v="2")
        )
        assert code == 200
        _, code = replace(
            custom, TF, namespace, "tfjob-test", lambda b: b["metadata"].update(finalizers=[finalizer])
        )
        assert code == 200
        _, code = replace(custom, TF, namespace, "tfjob-test", lambda b: b["metadata"].pop("finalizers"))
        assert code == 200
        _, code = replace(
            custom,
            TF,
            namespace,
            "tfjob-test",
            lambda b: b.update(status={"startTime": "2019-07-24T07:16:13Z"}),
            status=True,
        )
        assert code == 200

        exc = refusal(custom, TF, namespace, "tfjob-test", lambda b: b["spec"].update(backoffLimit=1))
        assert exc.status == 403, message_of(exc)
        assert message_of(exc) == f"{DENIED}: spec.backoffLimit: field is not updatable; {KUBEFLOW_UPDATABLE}"

        exc = refusal(
            custom, TF, namespace, "tfjob-test", lambda b: b["spec"].update(ttlSecondsAfterFinished=1500)
        )
        assert exc.status == 400, message_of(exc)
        assert message_of(exc).startswith(
            f"{DENIED}: spec.ttlSecondsAfterFinished: Invalid value: 1500: conflicts with "
            "spec.runPolicy.ttlSecondsAfterFinished=2000"
        )

        answer, code = replace(
            custom,
            TF,
            namespace,
            "tfjob-test",
            lambda b: b["spec"]["runPolicy"].update(ttlSecondsAfterFinished=1000),
        )
        assert code == 200
        assert (
            answer["spec"]["runPolicy"]["ttlSecondsAfterFinished"]
            == answer["spec"]["ttlSecondsAfterFinished"]
        )
        assert answer["metadata"]["labels"]["v"] == "2"
    finally:
        custom.patch_namespaced_custom_object(
            TF.group, TF.version, namespace, TF.plural, "tfjob-test", {"metadata": {"finalizers": None}}
        )


def _conflicting_layouts(body: Body) -> None:
    body["spec"]["runPolicy"] = {"ttlSecondsAfterFinished": 2000}


# --------------------------------------------------------------------------------------------------
# Answers come promptly whatever the input


HUGE_EXPONENT_CPU = "1e10000000"  # a well-formed quantity string; exact arithmetic on it is 10**10**7


def test_a_quantity_with_a_huge_exponent_is_answered_promptly(
    operator: Any, cluster: Cluster, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, TF, namespace)

    def huge(body: Body) -> None:
        # Two such values (~10 s each here), so that even a much faster machine is past the timeout.
        resources = containers(body, TF, "Ps")[0]["resources"]
        resources["limits"]["cpu"] = resources["requests"]["cpu"] = HUGE_EXPONENT_CPU

    try:
        exc = refusal(custom, TF, namespace, "tfjob-test", huge)
        # A webhook still computing at its 5 s timeout makes the apiserver answer 500; the webhook's
        # own answer is 400: such a text is not a quantity, and the pods would be refused with it.
        assert exc.status == 400, message_of(exc)
        for field in ("limits", "requests"):
            path = f"spec.tfReplicaSpecs.Ps.template.spec.containers[0].resources.{field}.cpu"
            assert f'{path}: Invalid value: "{HUGE_EXPONENT_CPU}": must be a quantity' in message_of(exc)
    finally:
        # Whatever happened, later tests need a responsive webhook again.
        wait_for(lambda: _probe_is_denied(cluster, namespace), 300, what="the webhook to answer again")
