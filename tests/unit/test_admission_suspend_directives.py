"""Issue 26: with suspend updates allowed (`--allow-suspend-updates`), a Kubeflow replica template's
scheduling directives (labels, annotations, nodeSelector, tolerations, schedulingGates) may change
while the stored job is suspended, in the update that resumes it and in the one that suspends it
again: what Kueue writes when it admits a job and restores when it evicts it (tests/kueue_updates.py).
Nothing else in a template becomes mutable; without the setting nothing changes. The webhook side
here; the generated policy's tree below, and both through the apiserver in
tests/integration/test_admission_kueue.py."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from jobwarden.kinds import registry
from jobwarden.kinds.admission import review
from jobwarden.kinds.base import JobKind
from jobwarden.kinds.kubeflow import KubeflowKind
from jobwarden.kinds.kubeflow.validation import SCHEDULING_DIRECTIVES, WHILE_SUSPENDED
from jobwarden.kinds.policy import _tree
from kueue_updates import admitted, as_go_writes_it, evicted, kueue_ready, replica_specs

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
EXAMPLES = Path(__file__).resolve().parents[2] / "devcluster" / "examples"
OPT_IN = [k for k in registry(allow_suspend_updates=True) if isinstance(k, KubeflowKind)]
DEFAULT = [k for k in registry() if isinstance(k, KubeflowKind)]


def queued(kind: JobKind, suspend: bool = True) -> dict[str, Any]:
    """The kind's seed (the demo's example for the kinds the seeds do not have) as a job queued with
    Kueue (tests/kueue_updates.py)."""
    name = kind.resource.kind.lower()
    seed = SEEDS / f"{name}-put.request.json"
    body = seed if seed.exists() else EXAMPLES / f"{name}.json"
    return kueue_ready(json.loads(body.read_text()), suspend)


def ids(kinds: list[KubeflowKind]) -> list[str]:
    return [k.resource.kind for k in kinds]


@pytest.mark.parametrize("kind", OPT_IN, ids=ids(OPT_IN))
@pytest.mark.parametrize("topology", [False, True])
def test_kueue_admits_and_evicts_a_job_with_suspend_updates_allowed(
    kind: KubeflowKind, topology: bool
) -> None:
    stored = queued(kind)
    running = admitted(stored, topology=topology)
    assert review(kind, "UPDATE", stored, running).allowed, review(kind, "UPDATE", stored, running).message
    back = evicted(running, stored)
    assert back == as_go_writes_it(stored)  # the templates as they were
    verdict = review(kind, "UPDATE", running, back)
    assert verdict.allowed, verdict.message


@pytest.mark.parametrize("kind", DEFAULT, ids=ids(DEFAULT))
def test_without_the_setting_kueues_updates_are_refused(kind: KubeflowKind) -> None:
    stored = queued(kind)
    verdict = review(kind, "UPDATE", stored, admitted(stored))
    assert (verdict.allowed, verdict.code) == (False, 403)
    field = next(k for k in stored["spec"] if k.endswith("ReplicaSpecs"))
    replica = next(iter(stored["spec"][field]))
    paths = [e.path for e in verdict.errors]
    assert "spec.runPolicy.suspend" in paths
    assert f"spec.{field}.{replica}.template.metadata" in paths  # the seed's templates have none: added whole
    assert f"spec.{field}.{replica}.template.spec.nodeSelector" in paths
    assert WHILE_SUSPENDED not in verdict.message


@pytest.mark.parametrize("kind", OPT_IN, ids=ids(OPT_IN))
def test_directives_of_a_running_job_stay_immutable(kind: KubeflowKind) -> None:
    running = queued(kind, suspend=False)
    relabelled = admitted(running)  # suspend stays false: neither side suspended
    verdict = review(kind, "UPDATE", running, relabelled)
    assert verdict.code == 403
    assert verdict.message.endswith(
        f"updatable fields: {', '.join(kind.updatable_fields())}; {WHILE_SUSPENDED}"
    )


@pytest.mark.parametrize("kind", OPT_IN, ids=ids(OPT_IN))
def test_a_suspended_job_may_be_relabelled_and_stay_suspended(kind: KubeflowKind) -> None:
    stored = queued(kind)
    relabelled = admitted(stored)
    relabelled["spec"]["runPolicy"]["suspend"] = True
    assert review(kind, "UPDATE", stored, relabelled).allowed


def _template_change(body: dict[str, Any], where: str) -> str:
    """Change one thing in the last replica's template that is not a scheduling directive; return the
    path the webhook names."""
    replica_type, replica = list(replica_specs(body).items())[-1]
    template = replica["template"]
    field = next(k for k in body["spec"] if k.endswith("ReplicaSpecs"))
    base = f"spec.{field}.{replica_type}.template"
    if where == "image":
        template["spec"]["containers"][0]["image"] = "other:2"
        return f"{base}.spec.containers[0].image"
    if where == "affinity":
        term = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
        required = {"nodeSelectorTerms": [term]}
        template["spec"]["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
        }
        return f"{base}.spec.affinity"
    if where == "metadata.name":
        template.setdefault("metadata", {})["name"] = "x"
        return f"{base}.metadata.name"
    replica["replicas"] = 5
    return f"spec.{field}.{replica_type}.replicas"


@pytest.mark.parametrize("kind", OPT_IN, ids=ids(OPT_IN))
@pytest.mark.parametrize("where", ["image", "affinity", "metadata.name", "replicas"])
def test_nothing_else_in_a_template_becomes_mutable(kind: KubeflowKind, where: str) -> None:
    stored = queued(kind)
    resumed = admitted(stored)
    path = _template_change(resumed, where)
    verdict = review(kind, "UPDATE", stored, resumed)
    assert verdict.code == 403
    assert [e.path for e in verdict.errors] == [path]


def test_every_kubeflow_kind_gets_the_rule_from_the_family_table() -> None:
    """A new Kubeflow kind is a `KubeflowKind` with a shape: the allowance names its own replica field."""
    assert OPT_IN and len(OPT_IN) == len(DEFAULT)
    for kind in OPT_IN:
        [allowance] = kind.update_contract().allowances
        field = kind.shape.replica_specs_field
        assert allowance.patterns == tuple(f"spec.{field}.*.template.{d}" for d in SCHEDULING_DIRECTIVES)
    assert all(k.update_contract().allowances == () for k in DEFAULT)


def test_the_policy_tree_allows_the_directives_only_under_the_condition() -> None:
    contract = OPT_IN[0].update_contract()
    [allowance] = contract.allowances
    tree = _tree(
        contract.updatable, [(allowance.condition.name, p) for p in allowance.patterns], contract.detail
    )
    replica = tree.children[OPT_IN[0].shape.replica_specs_field].any_key
    assert replica is not None
    template = replica.children["template"]
    condition = allowance.condition.name
    assert template.children["metadata"].allowed_when == {condition: {"labels", "annotations"}}
    assert template.children["spec"].allowed_when == {
        condition: {"nodeSelector", "tolerations", "schedulingGates"}
    }
    assert template.allowed == template.children["spec"].allowed == set()


def test_the_condition_is_the_stored_or_the_new_job_suspended() -> None:
    [allowance] = OPT_IN[0].update_contract().allowances
    holds = allowance.condition.holds
    job = queued(OPT_IN[0], suspend=False)
    suspended = copy.deepcopy(job)
    suspended["spec"]["runPolicy"]["suspend"] = True
    assert not holds(job, job)
    assert holds(suspended, job) and holds(job, suspended) and holds(suspended, suspended)
    assert "variables.oldSpec" in allowance.condition.cel and "variables.newSpec" in allowance.condition.cel
