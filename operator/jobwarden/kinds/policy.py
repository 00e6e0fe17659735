"""The update contract as CEL, for the apiserver itself: the webhook's `matchConditions` (which requests
can skip the webhook) and a `ValidatingAdmissionPolicy` + binding per contract (which updates are
refused even while the operator is down).

Everything is generated from the same tables the webhook uses (`JobKind.updatable_fields()`), so a
change to a table changes the policy; `tests/unit/test_admission_policy.py` asserts the YAML committed
in `manifests/policy/` is what this module renders (`jobwarden policy` prints it).

CEL sees the objects as the apiserver stored them, without the webhook's normalisation (replicas
absent vs 1, `cpu: 2` vs `"2000m"`, `Ps` vs `PS`, absent vs `{}`, Volcano's defaults, ...): a value
written differently is a change to the policy. The policy is therefore STRICTER than the webhook,
never looser: everything the policy allows, the webhook allows too (docs/admission.md lists where
they differ). Volcano tasks are matched by name, as the webhook does, only when every task has a
distinct non-empty name (what create-time validation demands); otherwise any task change is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from jobwarden import kinds
from jobwarden.core.runpolicy import RUN_POLICY_FIELDS
from jobwarden.kinds.base import JobKind, Resource

CONTROLLER_SERVICE_ACCOUNT: Final = "jobwarden"
# Controllers whose writes never change a guarded field and must never wait for jobwarden: the garbage
# collector removes ownerReferences/finalizers, the namespace controller deletes what is left.
SYSTEM_USERS: Final[tuple[tuple[str, str], ...]] = (
    ("not-the-garbage-collector", "system:serviceaccount:kube-system:generic-garbage-collector"),
    ("not-the-namespace-controller", "system:serviceaccount:kube-system:namespace-controller"),
)
# An UPDATE that leaves `spec` and `metadata.generateName` as they were cannot break the contract:
# only labels, annotations, finalizers, ownerReferences (or other server-managed metadata) changed.
GUARDED_CHANGE: Final = (
    "request.operation != 'UPDATE' || object.?spec != oldObject.?spec"
    " || object.metadata.?generateName != oldObject.metadata.?generateName"
)
Json = dict[str, Any]
POLICY_LABELS: Final[Mapping[str, str]] = {
    "app.kubernetes.io/name": "jobwarden",
    "app.kubernetes.io/component": "admission-policy",
}


def controller_user(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{CONTROLLER_SERVICE_ACCOUNT}"


def match_conditions(namespace: str = "jobwarden-system") -> list[dict[str, str]]:
    """Shared by the webhook configuration and the policies: a request is judged only if every
    condition holds. The names are what `kubectl describe` shows."""
    users = [("not-the-jobwarden-controller", controller_user(namespace)), *SYSTEM_USERS]
    return [
        *({"name": name, "expression": f"request.userInfo.username != '{user}'"} for name, user in users),
        {"name": "changes-spec-or-generate-name", "expression": GUARDED_CHANGE},
    ]


# --------------------------------------------------------------------------------------------------
# The updatable-field tables as a tree


@dataclass
class _Node:
    """Below a map: keys that may change outright, and keys compared further down. A list node
    (`tasks[*]`) holds the rule for its items, which are matched by their `name`."""

    allowed: set[str] = field(default_factory=set)
    children: dict[str, _Node] = field(default_factory=dict)
    items: _Node | None = None


def _tree(updatable: Iterable[str]) -> _Node:
    """The `spec` part of a table (`metadata.*` is never compared by the contract)."""
    root = _Node()
    for pattern in updatable:
        head, *rest = pattern.split(".")
        if head == "metadata":
            continue
        if head != "spec" or not rest:
            raise ValueError(f"cannot express {pattern!r} in CEL")
        node = root
        for index, part in enumerate(rest):
            key, is_list = (part[:-3], True) if part.endswith("[*]") else (part, False)
            # Lists are supported directly under spec only (`spec.tasks[*].x`): elsewhere the
            # generated CEL would not compare them, which would make the policy looser.
            if "[" in key or "*" in key or (is_list and (index != 0 or index == len(rest) - 1)):
                raise ValueError(f"cannot express {pattern!r} in CEL")
            if index == len(rest) - 1:
                node.allowed.add(key)
                break
            node = node.children.setdefault(key, _Node())
            if is_list:
                node.items = node.items or _Node()
                node = node.items
    return root


def _cel_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in sorted(values)) + "]"


def _changed_keys(new: str, old: str, path: str, node: _Node, moved: Layout | None = None) -> str:
    """CEL: the paths (strings) of the keys that differ between the maps `new` and `old`, except keys
    allowed outright; keys with a subtree are compared below (a list of keys, concatenated). With a
    layout, its fields whose value in force is the same on both sides are no change here, nor in the
    layout's container below."""
    skip = _cel_list(node.allowed | set(node.children))
    same = f" && !(k in {MOVED_UNCHANGED})" if moved else ""
    parts = [
        f"{new}.filter(k, !(k in {skip}){same} && {old}[?k] != {new}[?k]).map(k, {path} + '.' + k)",
        f"{old}.filter(k, !(k in {skip}){same} && !(k in {new})).map(k, {path} + '.' + k)",
    ]
    for key, child in sorted(node.children.items()):
        if child.items is not None:
            continue  # lists of named items get their own validations
        child_new, child_old = f"{new}[?'{key}'].orValue({{}})", f"{old}[?'{key}'].orValue({{}})"
        child_moved = moved if moved and key == moved.container else None
        parts.append(_changed_keys(child_new, child_old, f"{path} + '.{key}'", child, child_moved))
    return " + ".join(f"({p})" for p in parts)


@dataclass(frozen=True)
class Layout:
    """Fields that may sit at `spec.<f>` or `spec.<container>.<f>` (Kubeflow's two run-policy layouts):
    moved between the two with the same value in force, they are no change (check_kubeflow_update's
    `_drop_moved_run_policy`). A field set in both places with different values is compared as is."""

    container: str
    fields: tuple[str, ...]

    def variable(self) -> Json:
        def in_force(spec: str) -> str:
            return f"({spec}[?f].hasValue() ? {spec}[?f] : {spec}[?'{self.container}'].orValue({{}})[?f])"

        def consistent(spec: str) -> str:
            nested = f"{spec}[?'{self.container}'].orValue({{}})[?f]"
            return f"(!{spec}[?f].hasValue() || !{nested}.hasValue() || {spec}[?f] == {nested})"

        old, new = "variables.oldSpec", "variables.newSpec"
        return {
            "name": MOVED_UNCHANGED.removeprefix("variables."),
            "expression": f"{_cel_list(self.fields)}.filter(f, {in_force(old)} == {in_force(new)} "
            f"&& {consistent(old)} && {consistent(new)})",
        }


MOVED_UNCHANGED: Final = "variables.movedUnchanged"
LAYOUTS: Final[Mapping[str, Layout]] = {"kubeflow.org": Layout("runPolicy", RUN_POLICY_FIELDS)}


# --------------------------------------------------------------------------------------------------
# The policies


def _not_updatable(paths: str, updatable: Sequence[str]) -> str:
    """CEL message: the webhook's wording for each path in the list expression `paths`."""
    suffix = ": field is not updatable; updatable fields: " + ", ".join(updatable)
    return f"{paths}.map(p, p + '{suffix}').join('; ')"


def _list_variables(key: str) -> list[dict[str, str]]:
    return [
        {"name": "newItems", "expression": f"variables.newSpec[?'{key}'].orValue([])"},
        {"name": "oldItems", "expression": f"variables.oldSpec[?'{key}'].orValue([])"},
        {"name": "newNames", "expression": "variables.newItems.map(t, t[?'name'].orValue(''))"},
        {"name": "oldNames", "expression": "variables.oldItems.map(t, t[?'name'].orValue(''))"},
        {
            # Items are matched by name, as the webhook does; without distinct names they cannot be.
            "name": "namesUsable",
            "expression": (
                "variables.newNames.all(n, n != '' && size(variables.newNames.filter(m, m == n)) == 1)"
            ),
        },
        {"name": "sameItems", "expression": "variables.newNames == variables.oldNames"},
    ]


def _item_rules(key: str, node: _Node, updatable: Sequence[str]) -> tuple[list[Json], list[Json]]:
    """Items may not be added, removed, renamed or reordered; inside each, only `node.allowed` may
    change. Item paths are shown with the item's index, as the webhook shows them."""
    updatable_text = ", ".join(updatable)
    listed = (
        f"job updates may not add or remove {key} (before: [' + variables.oldNames.join(', ') + '], "
        f"after: [' + variables.newNames.join(', ') + ']), only scale them with spec.{key}[*].replicas; "
        f"updatable fields: {updatable_text}"
    )
    renamed = (
        f"spec.{key}[*].name: field is not updatable ({key} are matched by name; before: ["
        f"' + variables.oldNames.join(', ') + '], after: [' + variables.newNames.join(', ') + ']); "
        f"updatable fields: {updatable_text}"
    )
    index = "variables.newNames.indexOf(t[?'name'].orValue(''))"
    old_item = f"variables.oldItems[{index}]"
    per_item = _changed_keys("t", old_item, f"'spec.{key}[' + string({index}) + ']'", node)
    item_changes = {
        "name": "itemChanges",
        "expression": (
            "!variables.sameItems || !variables.namesUsable ? [] : "
            f"variables.newItems.map(t, {_not_updatable(f'({per_item})', updatable)}).filter(m, m != '')"
        ),
    }
    return [*_list_variables(key), item_changes], [
        {
            "expression": "size(variables.newNames) == size(variables.oldNames)",
            "messageExpression": f"'spec.{key}: {listed}'",
            "reason": "Forbidden",
        },
        {
            "expression": "size(variables.newNames) != size(variables.oldNames) || variables.sameItems",
            "messageExpression": f"'{renamed}'",
            "reason": "Forbidden",
        },
        {
            "expression": (
                "!variables.sameItems || variables.namesUsable || variables.newItems == variables.oldItems"
            ),
            "message": (
                f"spec.{key}: {key} without distinct names cannot be matched, so none of them may change; "
                f"updatable fields: {updatable_text}"
            ),
            "reason": "Forbidden",
        },
        {
            "expression": (
                "!variables.sameItems || !variables.namesUsable || size(variables.itemChanges) == 0"
            ),
            "messageExpression": "variables.itemChanges.join('; ')",
            "reason": "Forbidden",
        },
    ]


# Volcano's scale checks: a scale may not go below the immutable minimums (kinds/volcano_validation
# `_scale_errors`). Not a table, so written out here, in the webhook's wording.
_SCALE_VARIABLES: Final = [
    {
        "name": "newTotal",
        "expression": "variables.newItems.map(t, int(t[?'replicas'].orValue(0))).sum()",
    },
    {
        "name": "oldTotal",
        "expression": "variables.oldItems.map(t, int(t[?'replicas'].orValue(0))).sum()",
    },
    {
        "name": "belowTaskMinimum",
        "expression": (
            "!variables.sameItems || !variables.namesUsable ? [] : variables.newItems.filter(t, "
            "t[?'replicas'].orValue(0) != "
            "variables.oldItems[variables.newNames.indexOf(t.name)][?'replicas'].orValue(0) && "
            "(t[?'replicas'].orValue(0) < 0 || t[?'minAvailable'].orValue(0) > t[?'replicas'].orValue(0)))"
        ),
    },
]
_SCALE_VALIDATIONS: Final = [
    {
        "expression": "size(variables.belowTaskMinimum) == 0",
        "messageExpression": (
            "variables.belowTaskMinimum.map(t, 'spec.tasks[' + "
            "string(variables.newNames.indexOf(t.name)) + '].minAvailable: Invalid value: ' + "
            "string(t[?'minAvailable'].orValue(0)) + ': must not be greater than spec.tasks[' + "
            "string(variables.newNames.indexOf(t.name)) + '].replicas (' + "
            "string(t[?'replicas'].orValue(0)) + '); minAvailable cannot be changed, so the task cannot "
            "be scaled below it').join('; ')"
        ),
        "reason": "Invalid",
    },
    {
        "expression": (
            "!variables.sameItems || variables.newTotal == variables.oldTotal "
            "|| variables.newSpec[?'minAvailable'].orValue(0) <= variables.newTotal"
        ),
        "messageExpression": (
            "'spec.minAvailable: Invalid value: ' + string(variables.newSpec.minAvailable) + ': ' + "
            "(variables.newTotal < variables.oldTotal ? 'scaling the tasks down to ' + "
            "string(variables.newTotal) + ' replicas in total would leave fewer than minAvailable; "
            "spec.minAvailable cannot be changed, so keep at least ' + "
            "string(variables.newSpec.minAvailable) + ' replicas in total' : "
            "'must not be greater than the total replicas of all tasks (' + string(variables.newTotal) + ')')"
        ),
        "reason": "Invalid",
    },
]


# A job without a spec is malformed, but the policy must still answer (an error would refuse with a
# CEL message nobody can act on), so absent is an empty object.
_SPEC_VARIABLES: Final[list[Json]] = [
    {"name": "newSpec", "expression": "object.?spec.orValue({})"},
    {"name": "oldSpec", "expression": "oldObject.?spec.orValue({})"},
]


def _spec_validation(
    tree: _Node, updatable: Sequence[str], layout: Layout | None
) -> tuple[dict[str, str], dict[str, str]]:
    changed = _changed_keys("variables.newSpec", "variables.oldSpec", "'spec'", tree, layout)
    variable = {"name": "specChanges", "expression": changed}
    validation = {
        "expression": "size(variables.specChanges) == 0",
        "messageExpression": _not_updatable("variables.specChanges", updatable),
        "reason": "Forbidden",
    }
    return variable, validation


def policy_name(group: str) -> str:
    return f"jobwarden-updates.{group}"


def _policy(
    group: str, resources: Sequence[Resource], updatable: Sequence[str], namespace: str
) -> dict[str, Any]:
    tree = _tree(updatable)
    layout = LAYOUTS.get(group)
    spec_variable, spec_validation = _spec_validation(tree, updatable, layout)
    variables = [*_SPEC_VARIABLES, *([layout.variable()] if layout else []), spec_variable]
    validations = [spec_validation]
    for key, child in sorted(tree.children.items()):
        if child.items is None:
            continue
        item_variables, item_validations = _item_rules(key, child.items, updatable)
        variables += item_variables
        validations += item_validations
        if key == "tasks" and "replicas" in child.items.allowed:
            variables += _SCALE_VARIABLES
            validations += _SCALE_VALIDATIONS
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy_name(group), "labels": dict(POLICY_LABELS)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                # One rule per version, so that no rule names a resource in a version it lacks
                # (kubeflow.org serves MPIJob in v2beta1 and the others in v1).
                "resourceRules": [
                    {
                        "apiGroups": [group],
                        "apiVersions": [version],
                        "resources": sorted(r.plural for r in resources if r.version == version),
                        "operations": ["UPDATE"],
                        "scope": "Namespaced",
                    }
                    for version in sorted({r.version for r in resources})
                ]
            },
            "matchConditions": match_conditions(namespace),
            "variables": variables,
            "validations": validations,
        },
    }


def _binding(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy_name(group), "labels": dict(POLICY_LABELS)},
        "spec": {"policyName": policy_name(group), "validationActions": ["Deny"]},
    }


def _contracts(registry: Iterable[JobKind]) -> dict[str, tuple[list[Resource], list[str]]]:
    """group -> (its resources, the one updatable table they share)."""
    grouped: dict[str, tuple[list[Resource], list[str]]] = {}
    for kind in registry:
        resources, updatable = grouped.setdefault(kind.resource.group, ([], kind.updatable_fields()))
        if updatable != kind.updatable_fields():
            raise ValueError(f"kinds of group {kind.resource.group} have different update contracts")
        resources.append(kind.resource)
    return grouped


def policy_objects(
    namespace: str = "jobwarden-system", registry: Iterable[JobKind] | None = None
) -> list[dict[str, Any]]:
    """One ValidatingAdmissionPolicy + binding per API group (one update contract each)."""
    objects: list[dict[str, Any]] = []
    for group, (resources, updatable) in sorted(_contracts(registry or kinds.REGISTRY).items()):
        objects += [_policy(group, resources, updatable, namespace), _binding(group)]
    return objects


HEADER: Final = (
    "# GENERATED by `jobwarden policy` from the update-contract tables (jobwarden/kinds/policy.py).\n"
    "# Do not edit: change the tables, regenerate, commit. tests/unit/test_admission_policy.py compares.\n"
)


def render_yaml(namespace: str = "jobwarden-system") -> str:
    docs = yaml.safe_dump_all(policy_objects(namespace), sort_keys=False, width=100)
    return HEADER + docs
