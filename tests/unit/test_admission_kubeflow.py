"""Admission for TFJob, PyTorchJob and MXJob: the seeds' update contract and the create-time checks."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobwarden.core.admission import Verdict
from jobwarden.core.fielderrors import FieldError, Severity
from jobwarden.core.plan import Body, Observed, Plan
from jobwarden.kinds.admission import review
from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow.mxjob import MXJOB_SHAPE
from jobwarden.kinds.kubeflow.pytorchjob import PYTORCHJOB_SHAPE
from jobwarden.kinds.kubeflow.tfjob import TFJOB_SHAPE
from jobwarden.kinds.kubeflow.validation import (
    KUBEFLOW_UPDATABLE,
    KubeflowShape,
    canonical_replica_type,
    check_kubeflow_update,
    validate_kubeflow,
)

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
UPDATABLE = (
    "updatable fields: metadata.labels, metadata.annotations, spec.activeDeadlineSeconds, "
    "spec.ttlSecondsAfterFinished, spec.cleanPodPolicy, spec.runPolicy.activeDeadlineSeconds, "
    "spec.runPolicy.ttlSecondsAfterFinished, spec.runPolicy.cleanPodPolicy"
)
NOT_UPDATABLE = f"field is not updatable; {UPDATABLE}"
SHAPES = {"tfjob": TFJOB_SHAPE, "pytorchjob": PYTORCHJOB_SHAPE, "mxjob": MXJOB_SHAPE}


class FakeKind:
    """Just enough of a `JobKind` for `review`: the admission methods on one Kubeflow shape."""

    job_name_label = "training.kubeflow.org/job-name"

    def __init__(self, shape: KubeflowShape) -> None:
        self.shape = shape
        self.resource = Resource("kubeflow.org", "v1", shape.kind.lower() + "s", shape.kind)

    def validate(self, job: Body) -> list[FieldError]:
        return validate_kubeflow(self.shape, job)

    def check_update(self, old: Body, new: Body) -> list[FieldError]:
        return check_kubeflow_update(self.shape, old, new)

    def updatable_fields(self) -> list[str]:
        return list(KUBEFLOW_UPDATABLE)

    def plan(self, observed: Observed) -> Plan:
        raise NotImplementedError


def seed(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SEEDS / f"{name}-put.request.json").read_text())
    return body


def changed(body: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    copied = copy.deepcopy(body)
    change(copied)
    return copied


def update(name: str, change: Callable[[dict[str, Any]], object]) -> Verdict:
    old = seed(name)
    return review(FakeKind(SHAPES[name]), "UPDATE", old, changed(old, change))


def create(name: str, change: Callable[[dict[str, Any]], object] = lambda job: None) -> Verdict:
    return review(FakeKind(SHAPES[name]), "CREATE", None, changed(seed(name), change))


def tf_container(job: dict[str, Any], replica: str = "Worker") -> dict[str, Any]:
    container: dict[str, Any] = job["spec"]["tfReplicaSpecs"][replica]["template"]["spec"]["containers"][0]
    return container


# --------------------------------------------------------------------------------------------------
# UPDATE: what may change


@pytest.mark.parametrize("name", ["tfjob", "pytorchjob", "mxjob"])
def test_seed_puts_changing_ttl_are_allowed(name: str) -> None:
    new = seed(name)
    old = changed(new, lambda job: job["spec"].update(ttlSecondsAfterFinished=60))
    assert check_kubeflow_update(SHAPES[name], old, new) == []
    assert review(FakeKind(SHAPES[name]), "UPDATE", old, new) == Verdict(True, 200, "", ())


def test_seed_merge_patch_adding_a_label_is_allowed() -> None:
    new: dict[str, Any] = json.loads((SEEDS / "pytorchjob-patch.response.json").read_text())
    old = changed(new, lambda job: job["metadata"].pop("labels"))
    assert review(FakeKind(PYTORCHJOB_SHAPE), "UPDATE", old, new).allowed


@pytest.mark.parametrize(
    "change",
    [
        lambda job: job["metadata"].setdefault("labels", {}).update(team="ml"),
        lambda job: job["metadata"].setdefault("annotations", {}).update({"example.com/note": "x"}),
        lambda job: job["spec"].update(activeDeadlineSeconds=3600, cleanPodPolicy="All"),
        lambda job: job["spec"].pop("ttlSecondsAfterFinished"),
        lambda job: job["spec"].update(
            runPolicy={
                "ttlSecondsAfterFinished": job["spec"].pop("ttlSecondsAfterFinished") + 5,
                "cleanPodPolicy": "None",
            }
        ),
        lambda job: job["spec"].update(runPolicy={"activeDeadlineSeconds": 9}),
    ],
    ids=["label", "annotation", "deadline-and-clean", "drop-ttl", "nested-ttl", "nested-deadline"],
)
def test_updatable_fields_may_change(change: Callable[[dict[str, Any]], object]) -> None:
    assert update("tfjob", change).allowed


def test_server_managed_metadata_and_status_are_not_user_changes() -> None:
    def server_side(job: dict[str, Any]) -> None:
        job["metadata"].update(
            resourceVersion="1",
            generation=9,
            uid="other",
            creationTimestamp="2024-01-01T00:00:00Z",
            selfLink="/x",
            managedFields=[{"manager": "kubectl"}],
            finalizers=["jobwarden.dev/cleanup"],
            ownerReferences=[{"kind": "Workflow", "name": "w"}],
            deletionTimestamp="2024-01-01T00:00:00Z",
            deletionGracePeriodSeconds=0,
        )
        job["status"] = {"conditions": []}

    assert update("tfjob", server_side).allowed


# --------------------------------------------------------------------------------------------------
# UPDATE: what is only spelled differently


@pytest.mark.parametrize(
    "change",
    [
        # replica key `Ps` renamed to its canonical spelling with the same content
        lambda job: job["spec"]["tfReplicaSpecs"].update(PS=job["spec"]["tfReplicaSpecs"].pop("Ps")),
        # replicas absent means 1
        lambda job: job["spec"]["tfReplicaSpecs"]["Worker"].pop("replicas"),
        # no replica restartPolicy: the template's (OnFailure) is in force
        lambda job: job["spec"]["tfReplicaSpecs"]["Worker"].update(restartPolicy="OnFailure"),
        # "2" cpus and 4Gi written another way
        lambda job: tf_container(job)["resources"]["limits"].update(cpu=2, memory="4096Mi"),
        lambda job: tf_container(job)["resources"]["requests"].update(cpu="2000m"),
        # empty list / map vs absent
        lambda job: tf_container(job).update(env=[], volumeMounts=None),
        lambda job: job["spec"]["tfReplicaSpecs"]["Worker"]["template"].update(metadata={}),
        # the same backoffLimit moved into the current layout
        lambda job: job["spec"].update(runPolicy={"backoffLimit": job["spec"].pop("backoffLimit")}),
        # defaults spelled out
        lambda job: job["spec"].update(successPolicy="", runPolicy={"suspend": False}),
    ],
    ids=[
        "Ps-to-PS",
        "replicas-default",
        "restart-in-force",
        "cpu-int",
        "cpu-milli",
        "empty-list",
        "empty-map",
        "backoff-moved",
        "tf-defaults",
    ],
)
def test_equivalent_spellings_are_not_changes(change: Callable[[dict[str, Any]], object]) -> None:
    old = seed("tfjob")
    assert check_kubeflow_update(TFJOB_SHAPE, old, changed(old, change)) == []


def test_pytorch_restart_policy_absent_means_on_failure() -> None:
    old = seed("pytorchjob")
    worker_default = changed(
        old, lambda job: job["spec"]["pytorchReplicaSpecs"]["Worker"].pop("restartPolicy")
    )
    assert check_kubeflow_update(PYTORCHJOB_SHAPE, old, worker_default) == []
    master_default = changed(
        old, lambda job: job["spec"]["pytorchReplicaSpecs"]["Master"].pop("restartPolicy")
    )
    assert [e.path for e in check_kubeflow_update(PYTORCHJOB_SHAPE, old, master_default)] == [
        "spec.pytorchReplicaSpecs.Master.restartPolicy"
    ]


# --------------------------------------------------------------------------------------------------
# UPDATE: what is refused, with the exact message


def test_changing_a_replica_count_is_forbidden_with_the_exact_message() -> None:
    verdict = update(
        "pytorchjob", lambda job: job["spec"]["pytorchReplicaSpecs"]["Worker"].update(replicas=3)
    )
    assert (verdict.allowed, verdict.code) == (False, 403)
    assert verdict.message == f"spec.pytorchReplicaSpecs.Worker.replicas: {NOT_UPDATABLE}"


def test_changing_an_image_names_the_deepest_path() -> None:
    verdict = update("tfjob", lambda job: tf_container(job).update(image="tf:2"))
    assert verdict.code == 403
    assert verdict.message == f"spec.tfReplicaSpecs.Worker.template.spec.containers[0].image: {NOT_UPDATABLE}"


def test_paths_keep_the_replica_key_as_the_user_wrote_it() -> None:
    verdict = update("tfjob", lambda job: tf_container(job, "Ps").update(image="tf:2"))
    assert verdict.message == f"spec.tfReplicaSpecs.Ps.template.spec.containers[0].image: {NOT_UPDATABLE}"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda job: job["spec"].update(backoffLimit=7), "spec.backoffLimit"),
        (lambda job: job["spec"].update(runPolicy={"backoffLimit": 7}), "spec.runPolicy.backoffLimit"),
        (
            lambda job: job["spec"].update(runPolicy={"schedulingPolicy": {"queue": "q"}}),
            "spec.runPolicy.schedulingPolicy",
        ),
        (lambda job: job["spec"].update(successPolicy="AllWorkers"), "spec.successPolicy"),
        (
            lambda job: tf_container(job)["args"].append("--x"),
            "spec.tfReplicaSpecs.Worker.template.spec.containers[0].args[9]",
        ),
        (
            lambda job: tf_container(job)["resources"]["limits"].update(cpu="3"),
            "spec.tfReplicaSpecs.Worker.template.spec.containers[0].resources.limits.cpu",
        ),
        (
            lambda job: job["spec"]["tfReplicaSpecs"]["Worker"].update(restartPolicy="Never"),
            "spec.tfReplicaSpecs.Worker.restartPolicy",
        ),
        (
            lambda job: job["spec"]["tfReplicaSpecs"].update(
                Evaluator=job["spec"]["tfReplicaSpecs"]["Worker"]
            ),
            "spec.tfReplicaSpecs.Evaluator",
        ),
        (lambda job: job["spec"]["tfReplicaSpecs"].pop("Ps"), "spec.tfReplicaSpecs.Ps"),
        (lambda job: job["spec"].update(runPolicy={"suspend": True}), "spec.runPolicy.suspend"),
    ],
    ids=[
        "backoff",
        "nested-backoff",
        "scheduling",
        "success",
        "args",
        "cpu",
        "restart",
        "add-type",
        "drop-type",
        "suspend",
    ],
)
def test_immutable_paths_are_named(change: Callable[[dict[str, Any]], object], path: str) -> None:
    old = seed("tfjob")
    assert check_kubeflow_update(TFJOB_SHAPE, old, changed(old, change)) == [
        FieldError(path, NOT_UPDATABLE, Severity.FORBIDDEN)
    ]


def test_every_offending_path_is_listed_joined_with_semicolons() -> None:
    def several(job: dict[str, Any]) -> None:
        job["spec"]["backoffLimit"] = 1
        job["spec"]["ttlSecondsAfterFinished"] = 5  # allowed, not listed
        job["spec"]["mxReplicaSpecs"]["Server"]["replicas"] = 2
        job["spec"]["mxReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["image"] = "mx:2"

    verdict = update("mxjob", several)
    assert verdict.code == 403
    assert verdict.message == "; ".join(
        f"{path}: {NOT_UPDATABLE}"
        for path in (
            "spec.mxReplicaSpecs.Server.replicas",
            "spec.mxReplicaSpecs.Worker.template.spec.containers[0].image",
            "spec.backoffLimit",
        )
    )


def test_a_forbidden_change_to_an_invalid_value_answers_400_with_both_errors() -> None:
    verdict = update(
        "pytorchjob", lambda job: job["spec"]["pytorchReplicaSpecs"]["Worker"].update(replicas=-1)
    )
    assert verdict.code == 400
    assert verdict.message == (
        f"spec.pytorchReplicaSpecs.Worker.replicas: {NOT_UPDATABLE}; "
        "spec.pytorchReplicaSpecs.Worker.replicas: Invalid value: -1: must be greater than or equal to 0"
    )


def test_problems_the_old_object_already_had_do_not_block_an_update() -> None:
    broken = changed(
        seed("tfjob"), lambda job: tf_container(job).update(name="main")
    )  # no `tensorflow` container
    relabelled = changed(broken, lambda job: job["metadata"]["labels"].update(app="other"))
    assert review(FakeKind(TFJOB_SHAPE), "UPDATE", broken, relabelled).allowed
    assert review(FakeKind(TFJOB_SHAPE), "CREATE", None, relabelled).code == 400


def test_other_operations_are_allowed() -> None:
    assert review(FakeKind(TFJOB_SHAPE), "DELETE", seed("tfjob"), None).allowed


# --------------------------------------------------------------------------------------------------
# CREATE


@pytest.mark.parametrize("name", ["tfjob", "pytorchjob", "mxjob"])
def test_seed_bodies_are_valid(name: str) -> None:
    assert validate_kubeflow(SHAPES[name], seed(name)) == []


def test_replica_keys_are_case_insensitive() -> None:
    assert canonical_replica_type(TFJOB_SHAPE, "Ps") == "PS"
    assert canonical_replica_type(TFJOB_SHAPE, "worker") == "Worker"
    assert canonical_replica_type(MXJOB_SHAPE, "tunertracker") == "TunerTracker"
    assert canonical_replica_type(PYTORCHJOB_SHAPE, "Chief") is None


def messages(name: str, change: Callable[[dict[str, Any]], object]) -> list[str]:
    return [str(e) for e in validate_kubeflow(SHAPES[name], changed(seed(name), change))]


def worker(job: dict[str, Any]) -> dict[str, Any]:
    replica: dict[str, Any] = job["spec"]["tfReplicaSpecs"]["Worker"]
    return replica


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda job: job["spec"]["tfReplicaSpecs"].update(Foo=worker(job)),
            'spec.tfReplicaSpecs.Foo: Unsupported value: "Foo": supported values: "PS", "Worker", "Chief", '
            '"Master", "Evaluator"',
        ),
        (
            lambda job: job["spec"]["tfReplicaSpecs"].update(PS=job["spec"]["tfReplicaSpecs"]["Ps"]),
            'spec.tfReplicaSpecs.PS: Duplicate value: "PS": the same replica type as PS',
        ),
        (
            lambda job: worker(job).update(replicas=-1),
            "spec.tfReplicaSpecs.Worker.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            lambda job: worker(job).update(replicas="2"),
            'spec.tfReplicaSpecs.Worker.replicas: Invalid value: "2": must be an integer',
        ),
        (
            lambda job: worker(job).update(restartPolicy="Sometimes"),
            'spec.tfReplicaSpecs.Worker.restartPolicy: Unsupported value: "Sometimes": supported values: '
            '"Always", "OnFailure", "Never", "ExitCode"',
        ),
        (
            lambda job: worker(job)["template"]["spec"].update(restartPolicy="ExitCode"),
            'spec.tfReplicaSpecs.Worker.template.spec.restartPolicy: Unsupported value: "ExitCode": '
            'supported values: "Always", "OnFailure", "Never"',
        ),
        (
            lambda job: tf_container(job).update(name="main"),
            "spec.tfReplicaSpecs.Worker.template.spec.containers: Required value: must have at least one "
            "container with name tensorflow",
        ),
        (
            lambda job: tf_container(job).pop("image"),
            "spec.tfReplicaSpecs.Worker.template.spec.containers[0].image: Required value: every container "
            "needs a image",
        ),
        (
            lambda job: worker(job)["template"]["spec"].update(containers=[]),
            "spec.tfReplicaSpecs.Worker.template.spec.containers: Required value: must specify at least one "
            "container",
        ),
        (
            lambda job: job["spec"].update(tfReplicaSpecs={}),
            "spec.tfReplicaSpecs: Required value: must specify at least one replica type",
        ),
        (
            lambda job: job["spec"].update(cleanPodPolicy="Some"),
            'spec.cleanPodPolicy: Unsupported value: "Some": supported values: "All", "Running", "None"',
        ),
        (
            lambda job: job["spec"].update(ttlSecondsAfterFinished=-1),
            "spec.ttlSecondsAfterFinished: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            lambda job: job["spec"].update(runPolicy={"activeDeadlineSeconds": 0}),
            "spec.runPolicy.activeDeadlineSeconds: Invalid value: 0: must be greater than 0",
        ),
        (
            lambda job: job["spec"].update(backoffLimit=-2),
            "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
        ),
        (
            lambda job: job["spec"].update(runPolicy={"ttlSecondsAfterFinished": 200}),
            "spec.ttlSecondsAfterFinished: Invalid value: 1000: conflicts with "
            "spec.runPolicy.ttlSecondsAfterFinished=200; set it in one place only (spec.runPolicy is the "
            "current Kubeflow layout)",
        ),
        (
            lambda job: job["spec"].update(successPolicy="AnyWorker"),
            'spec.successPolicy: Unsupported value: "AnyWorker": supported values: "", "AllWorkers"',
        ),
        (
            lambda job: job["spec"]["tfReplicaSpecs"].update(Chief=worker(job), Master=worker(job)),
            'spec.tfReplicaSpecs: Invalid value: "Chief, Master": '
            "must not have more than 1 Chief or Master role",
        ),
        (
            lambda job: job["spec"]["tfReplicaSpecs"].update(chief={**worker(job), "replicas": 2}),
            "spec.tfReplicaSpecs.chief.replicas: Invalid value: 2: "
            "must be 0 or 1: at most one replica of this type",
        ),
    ],
)
def test_tfjob_create_checks(change: Callable[[dict[str, Any]], object], expected: str) -> None:
    assert messages("tfjob", change) == [expected]


def test_job_name_must_be_a_dns_1035_label() -> None:
    assert messages("tfjob", lambda job: job["metadata"].update(name="1-tf")) == [
        'metadata.name: Invalid value: "1-tf": a DNS-1035 label must consist of lower case alphanumeric '
        "characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. "
        "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    ]
    assert messages("tfjob", lambda job: job["metadata"].pop("name")) == [
        "metadata.name: Required value: name or generateName is required"
    ]
    assert messages("tfjob", lambda job: job["metadata"].update(name=None, generateName="tf-")) == []


def test_pod_and_service_names_must_fit_in_63_characters() -> None:
    name = "t" * 50  # `<name>-worker-0` has 59 characters
    assert messages("tfjob", lambda job: job["metadata"].update(name=name)) == []
    longer = "t" * 55
    assert messages(
        "tfjob", lambda job: (job["metadata"].update(name=longer), worker(job).update(replicas=10))
    ) == [
        f'spec.tfReplicaSpecs.Worker: Invalid value: "{longer}-worker-9": the pod and Service name of this '
        "replica type's last replica must be a DNS-1035 label: must be no more than 63 characters"
    ]


def test_pytorch_master_must_have_exactly_one_replica() -> None:
    def two_masters(job: dict[str, Any]) -> None:
        job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 2

    assert messages("pytorchjob", two_masters) == [
        "spec.pytorchReplicaSpecs.Master.replicas: Invalid value: 2: must be 1"
    ]
    assert (
        messages("pytorchjob", lambda job: job["spec"]["pytorchReplicaSpecs"]["Master"].pop("replicas")) == []
    )


def test_pytorch_elastic_policy_needs_workers() -> None:
    def elastic_without_workers(job: dict[str, Any]) -> None:
        job["spec"]["pytorchReplicaSpecs"].pop("Worker")
        job["spec"]["elasticPolicy"] = {"minReplicas": 3, "maxReplicas": 2}

    assert messages("pytorchjob", elastic_without_workers) == [
        "spec.pytorchReplicaSpecs.Worker: Required value: must be configured if elastic policy is used",
        "spec.elasticPolicy.minReplicas: Invalid value: 3: must not exceed maxReplicas (2)",
    ]


def test_pytorch_container_name_is_checked() -> None:
    def renamed(job: dict[str, Any]) -> None:
        job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["name"] = "torch"

    assert messages("pytorchjob", renamed) == [
        "spec.pytorchReplicaSpecs.Worker.template.spec.containers: Required value: must have at least one "
        "container with name pytorch"
    ]


def test_mxjob_checks() -> None:
    assert messages("mxjob", lambda job: job["spec"].update(jobMode="MXServe")) == [
        'spec.jobMode: Unsupported value: "MXServe": supported values: "MXTrain", "MXTune"'
    ]
    assert messages("mxjob", lambda job: job["spec"]["mxReplicaSpecs"]["Scheduler"].update(replicas=2)) == [
        "spec.mxReplicaSpecs.Scheduler.replicas: Invalid value: 2: "
        "must be 0 or 1: at most one replica of this type"
    ]


def test_create_verdict_is_400_with_every_problem() -> None:
    verdict = create(
        "tfjob", lambda job: (worker(job).update(replicas=-1), job["spec"].update(backoffLimit=-1))
    )
    assert verdict == Verdict(
        False,
        400,
        "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0; "
        "spec.tfReplicaSpecs.Worker.replicas: Invalid value: -1: must be greater than or equal to 0",
        verdict.errors,
    )
    assert all(e.severity is Severity.INVALID for e in verdict.errors)


@pytest.mark.parametrize(
    "garbage",
    [
        {},
        {"spec": None},
        {"spec": []},
        {"metadata": "x", "spec": {"tfReplicaSpecs": []}},
        {"spec": {"tfReplicaSpecs": {"Worker": {"replicas": None, "template": []}}, "runPolicy": 3}},
    ],
)
def test_malformed_objects_are_reported_not_raised(garbage: dict[str, Any]) -> None:
    assert validate_kubeflow(TFJOB_SHAPE, garbage)
    check_kubeflow_update(TFJOB_SHAPE, garbage, seed("tfjob"))
