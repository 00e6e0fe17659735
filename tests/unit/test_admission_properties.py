"""Properties of the admission engine: changes confined to the updatable paths are always allowed;
a change anywhere else is always refused and the message names that path (or one related to it);
malformed input never makes a rule raise. Plus the diff engine's own contract."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobwarden.core.admission import (
    ANY_INDEX,
    DiffRules,
    FieldPath,
    changed_paths,
    covered_by,
    forbidden_changes,
    parse_pattern,
    render_path,
    verdict_from,
)
from jobwarden.core.fielderrors import FieldError, Severity
from jobwarden.kinds.kubeflow.mxjob import MXJOB_SHAPE
from jobwarden.kinds.kubeflow.pytorchjob import PYTORCHJOB_SHAPE
from jobwarden.kinds.kubeflow.tfjob import TFJOB_SHAPE
from jobwarden.kinds.kubeflow.validation import (
    KUBEFLOW_UPDATABLE,
    KUBEFLOW_UPDATABLE_WITH_SUSPEND,
    SCHEDULING_DIRECTIVES,
    check_kubeflow_update,
    validate_kubeflow,
)
from jobwarden.kinds.volcano.updates import VOLCANO_UPDATABLE, check_volcano_update
from jobwarden.kinds.volcano.validation import validate_volcano
from kueue_updates import as_go_writes_it, kueue_ready, replica_specs

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
SHAPES = {"tfjob": TFJOB_SHAPE, "pytorchjob": PYTORCHJOB_SHAPE, "mxjob": MXJOB_SHAPE}
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def seed(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SEEDS / f"{name}-put.request.json").read_text())
    return body


def all_paths(value: Any, path: FieldPath = ()) -> Iterator[FieldPath]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from all_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from all_paths(item, (*path, index))


def node(doc: Any, path: FieldPath) -> Any:
    for segment in path:
        doc = doc[segment]
    return doc


def related(a: str, b: str) -> bool:
    """One path is the other or lies inside it."""
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith((short + ".", short + "["))


HOW = ["replace", "add-key", "append"]


def mutate(doc: dict[str, Any], path: FieldPath, how: str) -> str:
    """Change `doc` at `path` in a way no defaulting can explain; return the path that changed."""
    target = node(doc, path)
    if how == "add-key" and isinstance(target, dict):
        target["zz-added"] = "v"
        return render_path((*path, "zz-added"))
    if how == "append" and isinstance(target, list):
        target.append("zz-added")
        return render_path((*path, len(target) - 1))
    node(doc, path[:-1])[path[-1]] = "zz-mutated"  # never a quantity, enum value or default
    return render_path(path)


# --------------------------------------------------------------------------------------------------
# Kubeflow

label_maps = st.dictionaries(
    st.from_regex(r"[a-z]([a-z0-9.-]{0,10}/)?[a-z0-9]{1,8}", fullmatch=True),
    st.from_regex(r"[a-zA-Z0-9]{0,8}", fullmatch=True),
    max_size=3,
)
RUN_POLICY_VALUES = {
    "ttlSecondsAfterFinished": st.integers(0, 10**6),
    "activeDeadlineSeconds": st.integers(1, 10**6),
    "cleanPodPolicy": st.sampled_from(["All", "Running", "None"]),
}


@st.composite
def kubeflow_allowed_updates(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any]]:
    name = draw(st.sampled_from(sorted(SHAPES)))
    old = seed(name)
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = draw(label_maps)
    new["metadata"]["annotations"] = draw(label_maps)
    new["metadata"]["resourceVersion"] = str(draw(st.integers(1, 10**9)))
    new.pop("status", None) if draw(st.booleans()) else None
    for field, values in RUN_POLICY_VALUES.items():
        where = draw(st.sampled_from(["keep", "unset", "top", "nested"]))
        if where == "keep":
            continue
        new["spec"].pop(field, None)
        new["spec"].setdefault("runPolicy", {}).pop(field, None)
        if where != "unset":
            place = new["spec"] if where == "top" else new["spec"]["runPolicy"]
            place[field] = draw(values)
    return name, old, new


@FAST
@given(kubeflow_allowed_updates())
def test_kubeflow_changes_to_updatable_fields_are_allowed(
    update: tuple[str, dict[str, Any], dict[str, Any]],
) -> None:
    name, old, new = update
    shape = SHAPES[name]
    errors = check_kubeflow_update(shape, old, new) + validate_kubeflow(shape, new)
    assert verdict_from(errors).allowed, errors


def forbidden_kubeflow_paths(name: str) -> list[FieldPath]:
    rules = DiffRules.of(allowed=KUBEFLOW_UPDATABLE)
    return [p for p in all_paths(seed(name)["spec"], ("spec",)) if not rules.is_allowed(p)]


@st.composite
def kubeflow_forbidden_updates(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    name = draw(st.sampled_from(sorted(SHAPES)))
    old = seed(name)
    new = copy.deepcopy(old)
    changed = mutate(new, draw(st.sampled_from(forbidden_kubeflow_paths(name))), draw(st.sampled_from(HOW)))
    return name, old, new, changed


@FAST
@given(kubeflow_forbidden_updates())
def test_kubeflow_changes_elsewhere_are_refused_and_named(
    update: tuple[str, dict[str, Any], dict[str, Any], str],
) -> None:
    name, old, new, changed = update
    errors = check_kubeflow_update(SHAPES[name], old, new)
    assert errors, f"{changed} changed but was allowed"
    assert all(e.severity is Severity.FORBIDDEN for e in errors)
    assert any(related(e.path, changed) for e in errors), (changed, [e.path for e in errors])


# --------------------------------------------------------------------------------------------------
# Kubeflow with suspend updates allowed (issue 26): a template's scheduling directives may change while
# the stored or the new job is suspended; nothing else in a template ever.

DIRECTIVE_EDITS = ("labels", "annotations", "nodeSelector", "tolerations", "schedulingGates")
OTHER_EDITS = ("image", "command", "replicas", "affinity", "template-name", "backoffLimit")
tolerations = st.lists(
    st.fixed_dictionaries(
        {"key": st.sampled_from(["gpu", "spot", "zone"]), "operator": st.just("Exists")},
        optional={"effect": st.sampled_from(["NoSchedule", "NoExecute"])},
    ),
    max_size=2,
)
gates = st.lists(
    st.fixed_dictionaries({"name": st.sampled_from(["kueue.x-k8s.io/topology", "example.com/g"])}), max_size=1
)


def _edit_directive(template: dict[str, Any], directive: str, draw: st.DrawFn) -> None:
    if directive in ("labels", "annotations"):
        template.setdefault("metadata", {})[directive] = draw(label_maps)
    elif directive == "nodeSelector":
        template["spec"]["nodeSelector"] = draw(label_maps)
    else:
        template["spec"][directive] = draw(tolerations if directive == "tolerations" else gates)


def _edit_other(job: dict[str, Any], replica: dict[str, Any], what: str) -> None:
    template = replica["template"]
    if what == "image":
        template["spec"]["containers"][0]["image"] = "zz-other:1"
    elif what == "command":
        template["spec"]["containers"][0]["command"] = ["zz-other"]
    elif what == "replicas":
        replica["replicas"] = 7
    elif what == "affinity":
        template["spec"]["affinity"] = {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 1, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}
                ]
            }
        }
    elif what == "template-name":
        template.setdefault("metadata", {})["name"] = "zz-other"
    else:
        job["spec"]["runPolicy"]["backoffLimit"] = 77


@st.composite
def kubeflow_suspend_updates(draw: st.DrawFn) -> tuple[str, bool, dict[str, Any], dict[str, Any], str]:
    """(kind, stored suspended, stored job, new job, the other edit or ""): a Kueue-ready job (stored
    suspended or running), the new `suspend`, scheduling directives edited in some templates, written
    back as a typed Go client writes it or not, and maybe one edit that is never allowed."""
    name = draw(st.sampled_from(sorted(SHAPES)))
    stored_suspended = draw(st.booleans())
    old = kueue_ready(seed(name), stored_suspended)
    new = as_go_writes_it(old) if draw(st.booleans()) else copy.deepcopy(old)
    new["spec"]["runPolicy"]["suspend"] = draw(st.booleans())
    specs = replica_specs(new)
    for replica in specs.values():
        for directive in draw(st.lists(st.sampled_from(DIRECTIVE_EDITS), max_size=3, unique=True)):
            _edit_directive(replica["template"], directive, draw)
    other = draw(st.sampled_from(("",) * 3 + OTHER_EDITS))
    if other:
        _edit_other(new, specs[draw(st.sampled_from(sorted(specs)))], other)
    return name, stored_suspended, old, new, other


def _directive_path(path: str) -> bool:
    """A scheduling directive, inside one, or a template's `metadata` added whole (it held none)."""
    inside = path.partition(".template.")[2]
    return inside == "metadata" or inside.startswith(SCHEDULING_DIRECTIVES)


@FAST
@given(kubeflow_suspend_updates())
def test_with_suspend_updates_only_a_suspended_jobs_directives_may_change(
    update: tuple[str, bool, dict[str, Any], dict[str, Any], str],
) -> None:
    name, stored_suspended, old, new, other = update
    shape = SHAPES[name]
    errors = check_kubeflow_update(shape, old, new, KUBEFLOW_UPDATABLE_WITH_SUSPEND)
    suspended = stored_suspended or new["spec"]["runPolicy"]["suspend"]
    if other == "template-name":  # a template without metadata gets one: named whole, `…template.metadata`
        assert errors, other
    elif other:
        assert any(not _directive_path(e.path) for e in errors), (other, errors)
    elif suspended:
        assert errors == [], errors
    else:
        assert all(_directive_path(e.path) for e in errors), errors
    seeds_contract = check_kubeflow_update(shape, old, new)  # without the setting: the seeds' contract
    assert len(seeds_contract) >= len(errors)


# --------------------------------------------------------------------------------------------------
# Volcano


def volcano_seed() -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SEEDS / "volcanojob-put.request.json").read_text())
    return body


@st.composite
def template_changes(draw: st.DrawFn, template: dict[str, Any]) -> None:
    container = template["spec"]["containers"][0]
    if draw(st.booleans()):
        container["image"] = draw(st.from_regex(r"[a-z]{1,8}(:[a-z0-9.]{1,5})?", fullmatch=True))
    if draw(st.booleans()):
        container["command"] = draw(st.lists(st.text(max_size=10), max_size=3))
    if draw(st.booleans()):
        container["env"] = [{"name": "X", "value": draw(st.text(max_size=5))}]
    if draw(st.booleans()):
        container["resources"]["limits"]["cpu"] = draw(st.sampled_from(["1", 2, "500m", "0.5"]))
    if draw(st.booleans()):
        template["metadata"] = {"labels": draw(label_maps)}


@st.composite
def volcano_allowed_updates(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    old = volcano_seed()
    new = copy.deepcopy(old)
    counts = draw(st.lists(st.integers(0, 6), min_size=2, max_size=2))
    counts[0] += max(0, old["spec"]["minAvailable"] - sum(counts))  # keep the gang satisfiable
    for task, count in zip(new["spec"]["tasks"], counts, strict=True):
        task["replicas"] = count
        draw(template_changes(task["template"]))
    new["metadata"]["labels"] = draw(label_maps)
    new["metadata"]["annotations"] = draw(label_maps)
    if draw(st.booleans()):
        new["metadata"]["generateName"] = "openmpi-"
    return old, new


@FAST
@given(volcano_allowed_updates())
def test_volcano_scale_and_template_changes_are_allowed(
    update: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    old, new = update
    errors = check_volcano_update(old, new) + validate_volcano(new)
    assert verdict_from(errors).allowed, errors


@st.composite
def volcano_forbidden_updates(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], str]:
    old = volcano_seed()
    rules = DiffRules.of(allowed=VOLCANO_UPDATABLE)
    paths = [p for p in all_paths(old["spec"], ("spec",)) if not rules.is_allowed(p)]
    new = copy.deepcopy(old)
    changed = mutate(new, draw(st.sampled_from(paths)), draw(st.sampled_from(HOW)))
    return old, new, changed


@FAST
@given(volcano_forbidden_updates())
def test_volcano_changes_elsewhere_are_refused_and_named(
    update: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    old, new, changed = update
    errors = check_volcano_update(old, new)
    forbidden = [e for e in errors if e.severity is Severity.FORBIDDEN]
    assert forbidden, f"{changed} changed but was allowed: {errors}"
    assert any(related(e.path, changed) for e in forbidden), (changed, [e.path for e in errors])


# --------------------------------------------------------------------------------------------------
# Malformed input never raises

KEYS = [
    "spec",
    "tasks",
    "name",
    "replicas",
    "template",
    "containers",
    "policies",
    "event",
    "plugins",
    "metadata",
    "minAvailable",
    "runPolicy",
    "Worker",
    "tfReplicaSpecs",
    "image",
    "exitCode",
    "action",
    "volumes",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "x", "2", "Worker", "*", "mpi"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(KEYS), children, max_size=3)
    ),
    max_leaves=12,
)


@FAST
@given(st.sampled_from(["tfjob", "pytorchjob", "mxjob", "volcano"]), st.data())
def test_rules_never_raise_on_malformed_parts(name: str, data: st.DataObject) -> None:
    job = volcano_seed() if name == "volcano" else seed(name)
    broken = copy.deepcopy(job)
    path = data.draw(st.sampled_from([p for p in all_paths(job) if p]))
    node(broken, path[:-1])[path[-1]] = data.draw(json_values)
    if name == "volcano":
        validate_volcano(broken), check_volcano_update(job, broken), check_volcano_update(broken, job)
    else:
        shape = SHAPES[name]
        validate_kubeflow(shape, broken), check_kubeflow_update(shape, job, broken)


# --------------------------------------------------------------------------------------------------
# The diff engine


def test_paths_render_in_kubernetes_notation() -> None:
    assert render_path(("spec", "tasks", 1, "template", "spec", "containers", 0, "image")) == (
        "spec.tasks[1].template.spec.containers[0].image"
    )
    assert (
        render_path(("metadata", "labels", "app.kubernetes.io/name"))
        == "metadata.labels.app.kubernetes.io/name"
    )
    assert parse_pattern("spec.tasks[*].template") == ("spec", "tasks", ANY_INDEX, "template")


def test_patterns_cover_descendants_and_wildcards_match_indexes_only() -> None:
    pattern = parse_pattern("spec.tasks[*].replicas")
    assert covered_by(("spec", "tasks", 3, "replicas"), pattern)
    assert covered_by(("spec", "tasks", 0, "replicas", "x"), pattern)
    assert not covered_by(("spec", "tasks", "a", "replicas"), pattern)
    assert not covered_by(("spec", "tasks", 0), pattern)
    assert covered_by(("spec", "plugins", "env"), parse_pattern("spec.plugins.*"))


def test_added_entries_are_reported_whole_unless_an_allowed_path_is_inside() -> None:
    old = {"spec": {"a": 1}}
    new = {"spec": {"a": 1, "b": {"c": 1, "d": 2}, "runPolicy": {"ttl": 5, "other": 1}}}
    rules = DiffRules.of(allowed=["spec.runPolicy.ttl"])
    assert changed_paths(old, new, rules) == [("spec", "b"), ("spec", "runPolicy", "other")]


def test_booleans_are_not_numbers_and_empty_values_are_absent() -> None:
    assert changed_paths({"a": True}, {"a": 1}) == [("a",)]
    assert changed_paths({"a": 1.0}, {"a": 1}) == []
    assert changed_paths({"a": {}, "b": [], "c": None, "d": {"e": {}}}, {}) == []
    assert changed_paths({"x": [1, 2]}, {"x": [1]}) == [("x", 1)]
    assert changed_paths({"p": {"env": []}}, {"p": {}}, DiffRules.of(keep_empty=["p.*"])) == [("p", "env")]


def test_forbidden_changes_word_each_path() -> None:
    assert forbidden_changes({"a": 1, "b": 1}, {"a": 2, "b": 2}, ["b"]) == [
        FieldError("a", "field is not updatable; updatable fields: b", Severity.FORBIDDEN)
    ]


@FAST
@given(json_values, json_values)
def test_the_diff_is_symmetric_and_nothing_differs_from_itself(a: Any, b: Any) -> None:
    assert changed_paths(a, copy.deepcopy(a)) == []
    assert set(changed_paths(a, b)) == set(changed_paths(b, a))


@pytest.mark.parametrize(("errors", "code"), [([], 200), ([FieldError("a", "x", Severity.FORBIDDEN)], 403)])
def test_verdict_codes(errors: list[FieldError], code: int) -> None:
    verdict = verdict_from(errors)
    assert (verdict.allowed, verdict.code) == (not errors, code)
    mixed = verdict_from([FieldError("a", "x", Severity.FORBIDDEN), FieldError("b", "y")])
    assert (mixed.code, mixed.message) == (400, "a: x; b: y")
