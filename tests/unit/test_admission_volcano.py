"""Admission for the Volcano Job: the seeds' update contract (scale and template only, tasks matched by
name) and Volcano's create-time checks."""

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
from jobwarden.kinds.volcano.updates import VOLCANO_UPDATABLE, check_volcano_update
from jobwarden.kinds.volcano.validation import VALID_ACTIONS, VALID_EVENTS, validate_volcano
from jobwarden.plugins.registry import KNOWN_PLUGINS

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
NOT_UPDATABLE = (
    "field is not updatable; updatable fields: metadata.labels, metadata.annotations, metadata.generateName, "
    "spec.tasks[*].replicas, spec.tasks[*].template"
)

Change = Callable[[dict[str, Any]], object]


class FakeVolcanoKind:
    """Just enough of a `JobKind` for `review`."""

    resource = Resource("batch.volcano.sh", "v1alpha1", "jobs", "Job")
    job_name_label = "volcano.sh/job-name"

    def validate(self, job: Body) -> list[FieldError]:
        return validate_volcano(job)

    def check_update(self, old: Body, new: Body) -> list[FieldError]:
        return check_volcano_update(old, new)

    def updatable_fields(self) -> list[str]:
        return list(VOLCANO_UPDATABLE)

    def plan(self, observed: Observed) -> Plan:
        raise NotImplementedError


KIND = FakeVolcanoKind()


def seed() -> dict[str, Any]:
    """The seed PUT: `mpiworker` scaled to 2 replicas (job minAvailable 2, plugins env/ssh/svc)."""
    body: dict[str, Any] = json.loads((SEEDS / "volcanojob-put.request.json").read_text())
    return body


def stored() -> dict[str, Any]:
    """The job before the seed PUT: `mpiworker` at 1 replica."""
    return changed(seed(), lambda job: task(job, 1).update(replicas=1))


def changed(body: dict[str, Any], change: Change) -> dict[str, Any]:
    copied = copy.deepcopy(body)
    change(copied)
    return copied


def task(job: dict[str, Any], index: int) -> dict[str, Any]:
    found: dict[str, Any] = job["spec"]["tasks"][index]
    return found


def update(change: Change, old: dict[str, Any] | None = None) -> Verdict:
    old = stored() if old is None else old
    return review(KIND, "UPDATE", old, changed(old, change))


def create_messages(change: Change) -> list[str]:
    return [str(e) for e in validate_volcano(changed(seed(), change))]


# --------------------------------------------------------------------------------------------------
# UPDATE: what may change


def test_the_seed_scale_up_is_allowed() -> None:
    assert check_volcano_update(stored(), seed()) == []
    assert review(KIND, "UPDATE", stored(), seed()) == Verdict(True, 200, "", ())


@pytest.mark.parametrize(
    "change",
    [
        lambda job: task(job, 0)["template"]["spec"]["containers"][0].update(image="openmpi:4", args=["-v"]),
        lambda job: task(job, 1)["template"].update(metadata={"labels": {"role": "worker"}}),
        lambda job: job["metadata"].update(labels={"a": "b"}, annotations={"c": "d"}, generateName="mpi-"),
        lambda job: (task(job, 0).update(replicas=3), task(job, 1).update(replicas=0)),
        lambda job: job["metadata"].update(resourceVersion="9", finalizers=["x"], generation=4, uid="u"),
        lambda job: job.update(status={"state": {"phase": "Running"}}),
    ],
    ids=["image", "template-labels", "metadata", "rebalance", "server-metadata", "status"],
)
def test_updatable_fields_may_change(change: Change) -> None:
    assert update(change).allowed


@pytest.mark.parametrize(
    "change",
    [
        lambda job: job["spec"].pop("queue"),  # absent vs "default"
        lambda job: job["spec"].update(maxRetry=3),  # absent vs 3
        lambda job: job["spec"].update(maxRetry=0),  # 0 is defaulted to 3
        lambda job: task(job, 1).update(minAvailable=1, maxRetry=3),  # absent vs replicas / 3
        lambda job: job["spec"].pop("schedulerName"),  # absent vs "volcano"
        lambda job: job["spec"].update(minAvailable=0),  # 0 is defaulted to the tasks' sum (2)
    ],
    ids=["queue", "maxRetry", "maxRetry-zero", "task-defaults", "scheduler", "job-min-zero"],
)
def test_volcano_defaults_are_not_changes(change: Change) -> None:
    assert check_volcano_update(stored(), changed(stored(), change)) == []


def test_task_min_available_default_is_fixed_at_creation() -> None:
    # The task had no minAvailable at 1 replica: writing it out as 1 while scaling to 2 is no change.
    assert (
        check_volcano_update(stored(), changed(seed(), lambda job: task(job, 1).update(minAvailable=1))) == []
    )
    assert [
        e.path
        for e in check_volcano_update(
            stored(), changed(seed(), lambda job: task(job, 1).update(minAvailable=2))
        )
    ] == ["spec.tasks[1].minAvailable"]


def test_plugins_added_by_volcanos_mutating_webhook_are_not_changes() -> None:
    old = changed(stored(), lambda job: job["spec"].update(plugins={"mpi": ["--master=mpimaster"]}))
    defaulted = changed(old, lambda job: job["spec"]["plugins"].update(ssh=[], svc=[]))
    assert check_volcano_update(old, defaulted) == []


def test_quantities_and_empty_values_compare_by_meaning() -> None:
    def respelled(job: dict[str, Any]) -> None:
        container = task(job, 0)["template"]["spec"]["containers"][0]
        container["resources"]["limits"] = {"cpu": "0.25", "memory": "1024Mi"}
        job["spec"]["policies"] = []
        task(job, 0)["policies"][0]["events"] = []

    assert check_volcano_update(stored(), changed(stored(), respelled)) == []


# --------------------------------------------------------------------------------------------------
# UPDATE: what is refused


def test_changing_the_scheduler_is_forbidden_with_the_exact_message() -> None:
    verdict = update(lambda job: job["spec"].update(schedulerName="default-scheduler"))
    assert (verdict.allowed, verdict.code) == (False, 403)
    assert verdict.message == f"spec.schedulerName: {NOT_UPDATABLE}"


def test_adding_a_task_is_forbidden() -> None:
    verdict = update(lambda job: job["spec"]["tasks"].append({**task(job, 1), "name": "extra"}))
    assert verdict.code == 403
    assert verdict.message == (
        "spec.tasks: job updates may not add or remove tasks (before: [mpimaster, mpiworker], "
        "after: [mpimaster, mpiworker, extra]), only scale them with spec.tasks[*].replicas"
        "; updatable fields: metadata.labels, metadata.annotations, metadata.generateName, "
        "spec.tasks[*].replicas, spec.tasks[*].template"
    )


def test_removing_a_task_is_forbidden() -> None:
    old = changed(stored(), lambda job: job["spec"].update(minAvailable=1))
    verdict = update(lambda job: job["spec"]["tasks"].pop(1), old=old)
    assert verdict.code == 403
    assert verdict.message == (
        "spec.tasks: job updates may not add or remove tasks (before: [mpimaster, mpiworker], "
        "after: [mpimaster]), only scale them with spec.tasks[*].replicas"
        "; updatable fields: metadata.labels, metadata.annotations, metadata.generateName, "
        "spec.tasks[*].replicas, spec.tasks[*].template"
    )


def test_removing_a_task_that_min_available_needs_also_reports_the_invalid_result() -> None:
    verdict = update(lambda job: job["spec"]["tasks"].pop(1))
    assert verdict.code == 400
    assert [e.path for e in verdict.errors] == ["spec.tasks", "spec.minAvailable"]


def test_renaming_a_task_names_the_task_name_path() -> None:
    verdict = update(lambda job: task(job, 1).update(name="worker"))
    assert verdict.message == f"spec.tasks[1].name: {NOT_UPDATABLE}"


def test_reordering_tasks_is_forbidden_but_their_contents_are_matched_by_name() -> None:
    verdict = update(lambda job: job["spec"]["tasks"].reverse())
    assert verdict.message == f"spec.tasks[0].name: {NOT_UPDATABLE}; spec.tasks[1].name: {NOT_UPDATABLE}"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda job: job["spec"].update(minAvailable=1), "spec.minAvailable"),
        (lambda job: job["spec"].update(queue="gpu"), "spec.queue"),
        (lambda job: job["spec"].update(priorityClassName="high"), "spec.priorityClassName"),
        (lambda job: job["spec"]["plugins"].pop("env"), "spec.plugins.env"),
        (lambda job: job["spec"]["plugins"].update(ssh=["--ssh-port=2222"]), "spec.plugins.ssh[0]"),
        (
            lambda job: task(job, 0)["policies"][0].update(action="AbortJob"),
            "spec.tasks[0].policies[0].action",
        ),
        (lambda job: task(job, 1).update(minAvailable=0), "spec.tasks[1].minAvailable"),
        (lambda job: task(job, 1).update(maxRetry=5), "spec.tasks[1].maxRetry"),
        (lambda job: task(job, 1).update(topologyPolicy="best-effort"), "spec.tasks[1].topologyPolicy"),
        (lambda job: job["spec"].update(ttlSecondsAfterFinished=60), "spec.ttlSecondsAfterFinished"),
    ],
    ids=[
        "minAvailable",
        "queue",
        "priority",
        "plugin-removed",
        "plugin-args",
        "policy",
        "task-min",
        "task-retry",
        "topology",
        "ttl",
    ],
)
def test_immutable_paths_are_named(change: Change, path: str) -> None:
    old = stored()
    assert check_volcano_update(old, changed(old, change)) == [
        FieldError(path, NOT_UPDATABLE, Severity.FORBIDDEN)
    ]


def test_scale_down_below_min_available_says_why_once() -> None:
    verdict = update(lambda job: task(job, 1).update(replicas=0))  # total 1 < minAvailable 2
    assert verdict == Verdict(
        False,
        400,
        "spec.minAvailable: Invalid value: 2: scaling the tasks down to 1 replicas in total would leave "
        "fewer than minAvailable; spec.minAvailable cannot be changed, so keep at least 2 replicas in total",
        verdict.errors,
    )


def test_scale_down_below_a_task_min_available_says_why() -> None:
    old = changed(seed(), lambda job: task(job, 1).update(minAvailable=2))
    verdict = update(lambda job: task(job, 1).update(replicas=1), old=old)
    assert verdict.code == 400
    assert verdict.message == (
        "spec.tasks[1].minAvailable: Invalid value: 2: must not be greater than spec.tasks[1].replicas (1); "
        "minAvailable cannot be changed, so the task cannot be scaled below it"
    )


def test_negative_replicas_are_invalid() -> None:
    verdict = update(lambda job: task(job, 0).update(replicas=-1))
    assert verdict.code == 400
    assert "spec.tasks[0].replicas: Invalid value: -1: must be greater than or equal to 0" in verdict.message
    assert verdict.message.count("spec.tasks[0].replicas") == 1


def test_forbidden_and_invalid_together_answer_400() -> None:
    verdict = update(lambda job: (job["spec"].update(queue="gpu"), task(job, 1).update(replicas=-3)))
    assert verdict.code == 400
    assert [e.severity for e in verdict.errors] == [Severity.FORBIDDEN, Severity.INVALID]


# --------------------------------------------------------------------------------------------------
# CREATE


def test_the_seed_body_is_valid() -> None:
    assert validate_volcano(seed()) == []
    assert review(KIND, "CREATE", None, seed()).allowed


def test_the_vocabularies_match_volcano() -> None:
    assert "PodRunning" not in VALID_EVENTS and "Unknown" in VALID_EVENTS
    assert "SyncJob" not in VALID_ACTIONS and "RestartPartition" in VALID_ACTIONS
    assert KNOWN_PLUGINS == ("ssh", "env", "svc", "tensorflow", "mpi", "pytorch", "hcclrank", "ray")


def policies(*items: dict[str, Any]) -> Change:
    return lambda job: job["spec"].update(policies=list(items))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda job: job["spec"].update(tasks=[]),
            ["spec.tasks: Required value: No task specified in job spec"],
        ),
        (
            lambda job: task(job, 1).update(name="mpimaster"),
            ['spec.tasks[1].name: Duplicate value: "mpimaster": task names must be unique'],
        ),
        (
            lambda job: task(job, 1).update(name="MPI_worker"),
            [
                'spec.tasks[1].name: Invalid value: "MPI_worker": a lowercase RFC 1123 label must consist '
                "of lower case alphanumeric characters or '-', and must start and end with an alphanumeric "
                "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ],
        ),
        (
            lambda job: task(job, 1).pop("name"),
            ["spec.tasks[1].name: Required value: every task needs a name"],
        ),
        (
            lambda job: task(job, 1).update(replicas=-1),
            ["spec.tasks[1].replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            lambda job: task(job, 1).update(minAvailable=3),
            [
                "spec.tasks[1].minAvailable: Invalid value: 3: "
                "must not be greater than spec.tasks[1].replicas (2)"
            ],
        ),
        (
            lambda job: job["spec"].update(minAvailable=4),
            [
                "spec.minAvailable: Invalid value: 4: "
                "must not be greater than the total replicas of all tasks (3)"
            ],
        ),
        (
            lambda job: job["spec"].update(minAvailable=-1),
            ["spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            lambda job: job["spec"].update(maxRetry=-1, ttlSecondsAfterFinished=-1),
            [
                "spec.maxRetry: Invalid value: -1: must be greater than or equal to 0",
                "spec.ttlSecondsAfterFinished: Invalid value: -1: must be greater than or equal to 0",
            ],
        ),
        (
            lambda job: job["spec"]["plugins"].update(horovod=[]),
            [
                'spec.plugins.horovod: Unsupported value: "horovod": supported values: "ssh", "env", "svc", '
                '"tensorflow", "mpi", "pytorch", "hcclrank", "ray"'
            ],
        ),
        (
            lambda job: job["spec"]["plugins"].update(mpi=["--master=launcher"]),
            [
                'spec.plugins.mpi: Invalid value: ["--master=launcher"]: '
                'The specified mpi master task was not found: no task is named "launcher"'
            ],
        ),
        (lambda job: job["spec"]["plugins"].update(mpi=["--master", "mpimaster"]), []),
        (
            # Each plugin's own argument parser runs at create time: a bad argument is a 400.
            lambda job: job["spec"]["plugins"].update(ssh=["--ssh-port=x"]),
            ['spec.plugins.ssh: Invalid value: ["--ssh-port=x"]: invalid value "x" for flag -ssh-port'],
        ),
        (
            lambda job: job["spec"]["plugins"].update(svc=["--disable-network-policy"], env=["--nope"]),
            ['spec.plugins.env: Invalid value: ["--nope"]: flag provided but not defined: -nope'],
        ),
        (
            lambda job: task(job, 0)["template"]["spec"]["containers"][0].pop("image"),
            [
                "spec.tasks[0].template.spec.containers[0].image: "
                "Required value: every container needs a image"
            ],
        ),
        (
            lambda job: task(job, 0)["template"]["spec"].update(containers=[]),
            ["spec.tasks[0].template.spec.containers: Required value: must specify at least one container"],
        ),
        (
            lambda job: task(job, 0)["template"]["spec"].update(restartPolicy="ExitCode"),
            [
                'spec.tasks[0].template.spec.restartPolicy: Unsupported value: "ExitCode": supported values: '
                '"Always", "OnFailure", "Never"'
            ],
        ),
        (
            lambda job: job["metadata"].update(name="1-openmpi"),  # the svc plugin names a Service after it
            [
                'metadata.name: Invalid value: "1-openmpi": a DNS-1035 label must consist of lower case '
                "alphanumeric characters or '-', start with an alphabetic character, and end with an "
                "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
                "'[a-z]([-a-z0-9]*[a-z0-9])?')"
            ],
        ),
        (lambda job: job.update(metadata={"name": "1-openmpi"}, spec={**job["spec"], "plugins": {}}), []),
        (
            lambda job: job["metadata"].update(name="o" * 52),
            [
                f'spec.tasks[0]: Invalid value: "{"o" * 52}-mpimaster-0": '
                "the name of this task's last pod must be a DNS-1123 label: "
                "must be no more than 63 characters",
                f'spec.tasks[1]: Invalid value: "{"o" * 52}-mpiworker-1": '
                "the name of this task's last pod must be a DNS-1123 label: "
                "must be no more than 63 characters",
            ],
        ),
        (
            lambda job: job["spec"].update(
                volumes=[{"mountPath": "/d", "volumeClaimName": "c"}, {"mountPath": "/d"}]
            ),
            [
                'spec.volumes[1].mountPath: Duplicate value: "/d"',
                "spec.volumes[1]: Required value: either volumeClaim or volumeClaimName must be specified",
            ],
        ),
        (
            lambda job: (
                task(job, 0).update(dependsOn={"name": ["mpiworker"]}),
                task(job, 1).update(dependsOn={"name": ["mpimaster", "ghost"]}),
            ),
            [
                'spec.tasks[1].dependsOn.name[1]: Invalid value: "ghost": no task has this name',
                'spec.tasks: Invalid value: ["mpimaster", "mpiworker"]: '
                "dependsOn must not form a cycle between these tasks",
            ],
        ),
        (
            lambda job: (
                task(job, 1).update(topologyPolicy="single-numa-node"),
                task(job, 1)["template"]["spec"]["containers"][0]["resources"].update(requests={}),
            ),
            [
                'spec.tasks[1].template.spec.containers[0].resources.requests.cpu: Invalid value: "250m": '
                "must be a whole number of CPUs with topologyPolicy single-numa-node"
            ],
        ),
        (
            lambda job: task(job, 1).update(
                replicas=4, partitionPolicy={"totalPartitions": 2, "partitionSize": 2, "minPartitions": 1}
            ),
            [],
        ),
        (
            lambda job: task(job, 1).update(
                minAvailable=1, partitionPolicy={"totalPartitions": 2, "partitionSize": 2, "minPartitions": 1}
            ),
            [
                "spec.tasks[1].replicas: Invalid value: 2: "
                "must equal totalPartitions * partitionSize (2 * 2)",
                "spec.tasks[1].minAvailable: Invalid value: 1: "
                "must equal minPartitions * partitionSize (1 * 2)",
            ],
        ),
        (
            lambda job: job["spec"].update(
                networkTopology={"highestTierAllowed": 1, "highestTierName": "rack"}
            ),
            [
                "spec.networkTopology: must not specify 'highestTierAllowed' and 'highestTierName' in "
                "networkTopology simultaneously"
            ],
        ),
    ],
    ids=[
        "no-tasks",
        "dup-task",
        "task-name",
        "unnamed",
        "replicas",
        "task-min",
        "job-min",
        "job-min-negative",
        "retry-ttl",
        "plugin",
        "mpi-master",
        "mpi-master-ok",
        "plugin-args",
        "plugin-args-env",
        "image",
        "containers",
        "restart",
        "svc-name",
        "no-svc-name",
        "pod-name",
        "volumes",
        "depends-on",
        "topology-cpu",
        "partition-ok",
        "partition-counts",
        "network-topology",
    ],
)
def test_create_checks(change: Change, expected: list[str]) -> None:
    assert create_messages(change) == expected


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (
            [{"event": "PodFailed", "exitCode": 1, "action": "RestartJob"}],
            ["spec.policies[0]: must not specify event and exitCode simultaneously"],
        ),
        (
            [{"action": "RestartJob"}],
            ["spec.policies[0]: Required value: either event or exitCode should be specified"],
        ),
        (
            [{"event": "PodRunning", "action": "RestartJob"}],
            [
                'spec.policies[0].event: Unsupported value: "PodRunning": supported values: "*", '
                '"PodFailed", "PodEvicted", "PodPending", "Unknown", "TaskCompleted", "TaskFailed", '
                '"JobUpdated"'
            ],
        ),
        (
            [{"event": "PodFailed", "action": "SyncJob"}],
            [
                'spec.policies[0].action: Unsupported value: "SyncJob": supported values: "AbortJob", '
                '"RestartJob", "RestartTask", "RestartPod", "RestartPartition", "TerminateJob", '
                '"CompleteJob", "ResumeJob"'
            ],
        ),
        ([{"event": "PodFailed"}], ["spec.policies[0].action: Required value: every policy needs an action"]),
        (
            [
                {"event": "PodFailed", "action": "RestartJob"},
                {"events": ["PodEvicted", "PodFailed"], "action": "AbortJob"},
            ],
            [
                'spec.policies[1].events[1]: Duplicate value: "PodFailed": '
                "this event is already handled by spec.policies[0]"
            ],
        ),
        (
            [{"exitCode": 0, "action": "RestartJob"}],
            ["spec.policies[0].exitCode: Invalid value: 0: 0 is not a valid error code"],
        ),
        (
            [{"exitCode": 3, "action": "RestartJob"}, {"exitCode": 3, "action": "AbortJob"}],
            [
                "spec.policies[1].exitCode: Duplicate value: 3: "
                "this exit code is already handled by spec.policies[0]"
            ],
        ),
        (
            [{"event": "*", "action": "RestartJob"}, {"event": "PodEvicted", "action": "AbortJob"}],
            [
                'spec.policies: Invalid value: ["*", "PodEvicted"]: '
                '"*" already matches every event, so no other event policy may be listed with it'
            ],
        ),
        ([{"events": ["PodFailed", "PodFailed"], "event": "PodFailed", "action": "RestartJob"}], []),
    ],
    ids=[
        "event-and-code",
        "neither",
        "event",
        "action",
        "no-action",
        "dup-event",
        "code-zero",
        "dup-code",
        "star",
        "repeat-within",
    ],
)
def test_policy_rules(items: list[dict[str, Any]], expected: list[str]) -> None:
    assert create_messages(policies(*items)) == expected


def test_task_policies_use_the_task_path() -> None:
    messages = create_messages(
        lambda job: task(job, 0)["policies"].append({"event": "TaskCompleted", "action": "AbortJob"})
    )
    assert messages == [
        'spec.tasks[0].policies[1].event: Duplicate value: "TaskCompleted": this event is already handled by '
        "spec.tasks[0].policies[0]"
    ]


@pytest.mark.parametrize(
    "garbage",
    [
        {},
        {"spec": []},
        {"spec": {"tasks": [None, 3, {"replicas": "x", "policies": "p", "template": 1}]}},
        {"spec": {"tasks": [{"name": "a", "dependsOn": {"name": [["x"]]}}], "plugins": [], "volumes": [[]]}},
        {"spec": {"tasks": {}, "policies": [None, {"events": "x"}], "minAvailable": "2"}},
    ],
)
def test_malformed_objects_are_reported_not_raised(garbage: dict[str, Any]) -> None:
    assert validate_volcano(garbage)
    check_volcano_update(garbage, seed())
    check_volcano_update(seed(), garbage)
