"""The update contract as CEL, for the apiserver itself: the webhook's `matchConditions` (which requests
can skip the webhook) and a `ValidatingAdmissionPolicy` + binding per contract (which updates are
refused even while the operator is down).

Everything is generated from the same contracts the webhook uses (`JobKind.update_contract()`: the
table, the allowances under a condition, the detail patterns), so a change to a contract changes the
policy; `tests/unit/test_admission_policy_render.py` asserts the YAML committed in `manifests/` is what
this module renders (`jobwarden policy` prints it).

A contract becomes a tree (`_Node`): maps compared key by key, lists index by index, the rest whole.
Every changed path that may not change is collected (a list of strings; CEL has no flatMap, so the
paths found inside one comprehension travel joined by newlines) and the refusal names each in the
webhook's words. The tree is as deep as the contract's detail patterns: CEL has no recursion.

CEL sees the objects as the apiserver stored them, without most of the webhook's normalisation
(replicas absent vs 1, `cpu: 2` vs `"2000m"`, `Ps` vs `PS`, Volcano's defaults, ...): a value written
differently is a change to the policy (empty values excepted, see `_same`). The policy is therefore
STRICTER than the webhook, never looser: everything the policy allows, the webhook allows too
(docs/admission.md lists where they differ). Volcano tasks are matched by name, as the webhook does,
only when every task has a distinct non-empty name (what create-time validation demands); otherwise
any task change is refused.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from jobwarden import kinds
from jobwarden.core.admission import ANY_INDEX, ANY_KEY, Allowance, UpdateContract, Wildcard, parse_pattern
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
# The update contract as a tree


@dataclass
class _Node:
    """How the policy compares one value. A map (the default): keys in `allowed` may change outright,
    keys in `allowed_when[c]` while the condition variable `c` holds, keys in `children` are compared
    further down with their node, any other key with `any_key` if set (`*`), else named as it is.
    `items`: a list of items matched by name (Volcano's tasks, directly under spec). `indexed`: a list
    compared index by index (`[*]` in a detail pattern). A node with none of these is a leaf: compared
    whole and named."""

    allowed: set[str] = field(default_factory=set)
    allowed_when: dict[str, set[str]] = field(default_factory=dict)
    children: dict[str, _Node] = field(default_factory=dict)
    any_key: _Node | None = None
    items: _Node | None = None
    indexed: _Node | None = None
    keeps_empty: bool = False  # an empty value below this map is not absent (UpdateContract.keep_empty)

    def is_leaf(self) -> bool:
        return not (self.is_map() or self.items or self.indexed)

    def is_map(self) -> bool:
        return bool(self.allowed or self.allowed_when or self.children or self.any_key is not None)

    def leads_to_allowed(self) -> bool:
        """Something below may change: an absent side is then an empty map, compared key by key
        (the webhook likewise descends into an added entry that holds an allowed path)."""
        below = [*self.children.values(), self.any_key, self.items, self.indexed]
        return bool(self.allowed or self.allowed_when) or any(n.leads_to_allowed() for n in below if n)


_ALLOWED, _DETAIL = "allowed", "detail"


def _tree(
    updatable: Iterable[str],
    allowances: Iterable[tuple[str, str]] = (),
    detail: Iterable[str] = (),
    keep_empty: Iterable[str] = (),
) -> _Node:
    """The `spec` part of a contract (`metadata.*` is never compared by the contract): the table,
    the (condition, pattern) allowances, the detail patterns, then where empty values are kept."""
    root = _Node()
    for pattern in updatable:
        _add(root, pattern, _ALLOWED)
    for condition, pattern in allowances:
        _add(root, pattern, condition)
    for pattern in detail:
        _add(root, pattern, _DETAIL)
    for pattern in keep_empty:
        _keep_empty(root, pattern)
    return root


def _keep_empty(root: _Node, pattern: str) -> None:
    """`spec.plugins.*`: the map `spec.plugins` is compared as a whole where an empty value inside it
    is a value (`{env: []}` is not `{}`)."""
    head, *rest = parse_pattern(pattern)
    if (
        head != "spec"
        or not rest
        or rest[-1] is not ANY_KEY
        or not all(isinstance(s, str) for s in rest[:-1])
    ):
        raise ValueError(f"cannot express keep-empty {pattern!r} in CEL")
    node = root
    for segment in rest[:-1]:
        node = node.children.setdefault(str(segment), _Node())
    node.keeps_empty = True


def _add(root: _Node, pattern: str, how: str) -> None:
    """`how`: allowed outright, detail, or the name of the condition that allows it."""
    head, *rest = parse_pattern(pattern)
    if head == "metadata":
        return
    if head != "spec" or not rest:
        raise ValueError(f"cannot express {pattern!r} in CEL")
    node = root
    for index, segment in enumerate(rest):
        last = index == len(rest) - 1
        if isinstance(segment, int) or (last and how != _DETAIL and isinstance(segment, Wildcard)):
            raise ValueError(f"cannot express {pattern!r} in CEL")
        if segment is ANY_INDEX:
            node = _list_node(node, pattern, how, index)
        elif last and how == _ALLOWED:
            node.allowed.add(str(segment))
        elif last and how != _DETAIL:
            node.allowed_when.setdefault(how, set()).add(str(segment))
        elif segment is ANY_KEY:
            node.any_key = node.any_key or _Node()
            node = node.any_key
        else:
            node = node.children.setdefault(str(segment), _Node())


def _list_node(node: _Node, pattern: str, how: str, index: int) -> _Node:
    """A list in a table or allowance is one of items matched by name, directly under spec
    (`spec.tasks[*].replicas`): elsewhere the webhook's own matching would have to be known here. A
    detail pattern's list is compared index by index, as the webhook compares lists."""
    if how != _DETAIL:
        if index != 1 or node.indexed:
            raise ValueError(f"cannot express {pattern!r} in CEL")
        node.items = node.items or _Node()
        return node.items
    if node.items:
        return node.items
    node.indexed = node.indexed or _Node()
    return node.indexed


def _cel_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_cel_string(v) for v in sorted(values)) + "]"


def _cel_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


# Several paths found inside one comprehension travel as one string, joined by a newline (a message
# may not contain one, so no path does); `variables.changedPaths` splits them again.
_JOIN: Final = "'\\n'"
# Lists are compared index by index up to this length (CEL has no ranges before Kubernetes 1.34);
# a longer list that differs is named as a whole.
MAX_INDEXED: Final = 32
_INDICES: Final = "variables.indices"


def _changes(node: _Node, new: str, old: str, path: str, depth: int, moved: Layout | None = None) -> str:
    """CEL: the paths (a list of strings) where the values `new` and `old`, known to differ, differ
    and may not; `path` is a CEL string expression. A value of another shape than the node expects
    (a list where a map is expected, absent, a scalar) is named as a whole."""
    if node.is_leaf():
        return f"[{path}]"
    if not (_IDENTIFIER.fullmatch(new) and _IDENTIFIER.fullmatch(old)):
        # CEL has no `let` (cel.bind is not in Kubernetes' environment): a one-element comprehension
        # binds both values to a short name, so the expression does not repeat the whole access path
        # at every level below (the policy would grow past CEL's 100,000-character limit).
        pair = f"v{depth}"
        below = _changes(node, f"{pair}[0]", f"{pair}[1]", path, depth, moved)
        return f"[[{new}, {old}]].map({pair}, {below})[0]"
    if node.indexed is not None:
        return _list_changes(node.indexed, new, old, path, depth)
    body = _map_changes(node, new, old, path, depth, moved)
    return f"type({new}) == map && type({old}) == map ? ({body}) : [{path}]"


# Absent as a value: `null` typed `dyn`, so the type checker lets it stand where a map or list may be.
_NOTHING: Final = "dyn(null)"


def _same(new: str, old: str, empties: int = 2) -> str:
    """CEL: two optional values are the same, an empty value and an absent one alike (as the webhook,
    because the apiserver and typed clients drop or write empty optional fields at will: a Go client
    writes a template's `metadata: {creationTimestamp: null}` and a container's `resources: {}`).
    `empties`: how deep a value is looked into for emptiness (`_empty`)."""
    both_empty = f"{_empty(new, empties)} && {_empty(old, empties)}"
    return f"({new}.orValue({_NOTHING}) == {old}.orValue({_NOTHING}) || {both_empty})"


def _empty(value: str, empties: int = 2) -> str:
    """CEL: absent or `null` (0); or `{}` or `[]` (1); or a map holding only those (2, the default;
    an emptiness nested deeper is a change to the policy: stricter than the webhook, never looser)."""
    hollow = "{0} == null || {0} == {{}} || {0} == []"
    if empties == 0:
        return f"({value}.orValue({_NOTHING}) == null)"
    if empties == 1:
        return f"[{value}.orValue({_NOTHING})].all(e, {hollow.format('e')})"
    inner = hollow.format("e[k]")
    outer = hollow.format("e")
    return f"[{value}.orValue({_NOTHING})].all(e, {outer} || type(e) == map && e.all(k, {inner}))"


def _extend(path: str, literal: str) -> str:
    """The CEL string expression `path` followed by the text `literal`, folded into a trailing literal."""
    if path.endswith("'") and not path.endswith("\\'"):
        return path[:-1] + _cel_string(literal)[1:]
    return f"{path} + {_cel_string(literal)}"


_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(\[\d+\])?")


def _list_changes(item: _Node, new: str, old: str, path: str, depth: int) -> str:
    """Index by index, as the webhook: an index on one side only is named, one on both is compared
    with `item`."""
    i, p = f"i{depth}", f"p{depth}"
    item_path = f"{_extend(path, '[')} + string({i}) + ']'"
    inner = (
        item_path
        if item.is_leaf()
        else f"({_changes(item, f'{new}[{i}]', f'{old}[{i}]', item_path, depth + 1)}).join({_JOIN})"
    )
    body = (
        f"{_INDICES}.filter({i}, {i} < size({new}) || {i} < size({old})).map({i}, "
        f"{i} >= size({new}) || {i} >= size({old}) ? {item_path} : {new}[{i}] == {old}[{i}] ? '' : {inner})"
        f".filter({p}, {p} != '')"
    )
    fits = f"size({new}) <= {MAX_INDEXED} && size({old}) <= {MAX_INDEXED}"
    return f"type({new}) == list && type({old}) == list && {fits} ? ({body}) : [{path}]"


def _map_changes(node: _Node, new: str, old: str, path: str, depth: int, moved: Layout | None = None) -> str:
    """CEL: the changed paths below two maps. Keys allowed outright are skipped, keys allowed under a
    condition while it holds; keys with a node of their own are compared below (several keys with the
    same node in one comprehension); any other key is compared with `any_key`, or named. With a
    layout, its fields whose value in force is the same on both sides are no change here, nor in the
    layout's container below."""
    k, p = f"k{depth}", f"p{depth}"
    skipped = node.allowed | set(node.children)
    keep = [f"!({k} in {_cel_list(skipped)})"] if skipped else []
    for condition, keys in sorted(node.allowed_when.items()):
        if keys - set(node.children):
            keep.append(f"!(variables.{condition} && {k} in {_cel_list(keys - set(node.children))})")
    if moved:
        keep.append(f"!({k} in {MOVED_UNCHANGED})")
    kept = "".join(f"{part} && " for part in keep)
    key_path = f"{_extend(path, '.')} + {k}"
    empties = 0 if node.keeps_empty else 2
    changed = f"{new}.filter({k}, {kept}!{_same(f'{new}[?{k}]', f'{old}[?{k}]', empties)})"
    any_key = node.any_key
    if any_key is None or any_key.is_leaf():
        parts = [f"{changed}.map({k}, {key_path})"]
    else:
        inner = _changes(any_key, f"{new}[{k}]", f"{old}[{k}]", key_path, depth + 1)
        parts = [
            f"{changed}.map({k}, {k} in {old} ? ({inner}).join({_JOIN}) : {key_path}).filter({p}, {p} != '')"
        ]
    parts.append(
        f"{old}.filter({k}, {kept}!({k} in {new}) && !{_empty(f'{old}[?{k}]')}).map({k}, {key_path})"
    )
    parts += _children_changes(node, new, old, path, depth, moved)
    return " + ".join(f"({part})" for part in parts)


@dataclass
class _Group:
    """Fixed keys compared with the same node, allowed under the same conditions."""

    node: _Node
    keys: list[str]
    allowing: list[str]
    alone: bool  # the layout's container is compared on its own (the layout reaches into it)


def _children_changes(
    node: _Node, new: str, old: str, path: str, depth: int, moved: Layout | None
) -> list[str]:
    groups: list[_Group] = []
    for key, child in sorted(node.children.items()):
        if key in node.allowed or child.items is not None:
            continue  # allowed outright; lists of named items get their own validations
        allowing = sorted(c for c, keys in node.allowed_when.items() if key in keys)
        alone = moved is not None and key == moved.container
        same = [g for g in groups if (g.node, g.allowing, g.alone, alone) == (child, allowing, False, False)]
        if same:
            same[0].keys.append(key)
        else:
            groups.append(_Group(child, [key], allowing, alone))
    return [
        _child_changes(g.node, g.keys, g.allowing, new, old, path, depth, moved if g.alone else None)
        for g in groups
    ]


def _child_changes(
    child: _Node,
    keys: list[str],
    allowing: list[str],
    new: str,
    old: str,
    path: str,
    depth: int,
    moved: Layout | None,
) -> str:
    """A fixed key compared with its node (or several keys with the same node, in one comprehension).
    While a condition allowing the key holds, nothing below it is a change."""
    default = "{}" if child.leads_to_allowed() else _NOTHING
    unless = "".join(f" || variables.{c}" for c in allowing)
    if len(keys) == 1:
        key = _cel_string(keys[0])
        a, b = f"{new}[?{key}]", f"{old}[?{key}]"
        below = _changes(
            child,
            f"{a}.orValue({default})",
            f"{b}.orValue({default})",
            _extend(path, "." + keys[0]),
            depth + 1,
            moved,
        )
        return f"{_same(a, b, 1 if child.keeps_empty else 2)}{unless} ? [] : {below}"
    f, p = f"f{depth}", f"q{depth}"
    a, b = f"{new}[?{f}]", f"{old}[?{f}]"
    below = _changes(
        child, f"{a}.orValue({default})", f"{b}.orValue({default})", f"{_extend(path, '.')} + {f}", depth + 1
    )
    keep = f"!{_same(a, b, 1 if child.keeps_empty else 2)}" + "".join(f" && !variables.{c}" for c in allowing)
    return f"{_cel_list(keys)}.filter({f}, {keep}).map({f}, ({below}).join({_JOIN})).filter({p}, {p} != '')"


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


UPDATABLE_FIELDS: Final = "variables.updatableFields"


def _updatable_fields(contract: UpdateContract) -> Json:
    """What every refusal lists after `updatable fields: ` (`UpdateContract.listing`)."""
    return {
        "name": UPDATABLE_FIELDS.removeprefix("variables."),
        "expression": _cel_string(contract.listing()),
    }


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


def _item_rules(key: str, node: _Node, contract: UpdateContract) -> tuple[list[Json], list[Json]]:
    """Items may not be added, removed, renamed or reordered; inside each, only `node.allowed` may
    change. Item paths are shown with the item's index, as the webhook shows them. The changed
    paths (`itemChanges`) join the spec's in one refusal."""
    names = "[' + variables.oldNames.join(', ') + '], after: [' + variables.newNames.join(', ') + ']"
    listed = (
        f"'spec.{key}: job updates may not add or remove {key} (before: {names}), only scale them with "
        f"spec.{key}[*].replicas; updatable fields: ' + {UPDATABLE_FIELDS}"
    )
    renamed = (
        f"'spec.{key}[*].name: field is not updatable ({key} are matched by name; before: {names}); "
        f"updatable fields: ' + {UPDATABLE_FIELDS}"
    )
    index = "variables.newNames.indexOf(t[?'name'].orValue(''))"
    old_item = f"variables.oldItems[{index}]"
    per_item = _map_changes(node, "t", old_item, f"'spec.{key}[' + string({index}) + ']'", 1)
    item_changes = {
        "name": "itemChanges",
        "expression": (
            "!variables.sameItems || !variables.namesUsable ? [] : "
            f"variables.newItems.map(t, ({per_item}).join({_JOIN})).filter(m, m != '')"
        ),
    }
    return [*_list_variables(key), item_changes], [
        {
            "expression": "size(variables.newNames) == size(variables.oldNames)",
            "messageExpression": listed,
            "reason": "Forbidden",
        },
        {
            "expression": "size(variables.newNames) != size(variables.oldNames) || variables.sameItems",
            "messageExpression": renamed,
            "reason": "Forbidden",
        },
        {
            "expression": (
                "!variables.sameItems || variables.namesUsable || variables.newItems == variables.oldItems"
            ),
            "message": (
                f"spec.{key}: {key} without distinct names cannot be matched, so none of them may change; "
                f"updatable fields: {contract.listing()}"
            ),
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
# The apiserver drops a message longer than 5 KiB (and then shows the static `message`): a refusal
# naming that many paths lists them with the updatable fields once, or, longer still, names the first
# and counts the rest.
_MESSAGE_BUDGET: Final = 4000


def _changes_validation(contract: UpdateContract) -> tuple[list[Json], Json]:
    """One refusal for every changed path, each worded as the webhook words it."""
    listing = f"'updatable fields: ' + {UPDATABLE_FIELDS}"
    full = f"variables.changedPaths.map(p, p + ': field is not updatable; ' + {listing}).join('; ')"
    compact = f"variables.changedPaths.join(', ') + ': fields are not updatable; ' + {listing}"
    short = (
        f"variables.changedPaths[0] + ' and ' + string(size(variables.changedPaths) - 1) + ' more paths: "
        f"fields are not updatable; ' + {listing}"
    )
    fits = f"size({compact}) <= {_MESSAGE_BUDGET}"
    message = f"size({full}) <= {_MESSAGE_BUDGET} ? {full} : {fits} ? {compact} : {short}"
    variables = [
        {
            "name": "changedPaths",
            "expression": (
                f"size(variables.changes) == 0 ? [] : variables.changes.join({_JOIN}).split({_JOIN})"
            ),
        }
    ]
    validation = {
        "expression": "size(variables.changes) == 0",
        "messageExpression": message,
        "message": f"spec: fields that are not updatable changed; updatable fields: {contract.listing()}",
        "reason": "Forbidden",
    }
    return variables, validation


def _indices() -> Json:
    return {"name": _INDICES.removeprefix("variables."), "expression": str(list(range(MAX_INDEXED)))}


def policy_name(group: str) -> str:
    return f"jobwarden-updates.{group}"


def _policy(
    group: str, resources: Sequence[Resource], contract: UpdateContract, namespace: str
) -> dict[str, Any]:
    allowances = [(a.condition.name, p) for a in contract.allowances for p in a.patterns]
    tree = _tree(contract.updatable, allowances, contract.detail, contract.keep_empty)
    layout = LAYOUTS.get(group)
    conditions = {a.condition.name: a.condition.cel for a in contract.allowances}
    variables = [
        *_SPEC_VARIABLES,
        *([layout.variable()] if layout else []),
        *({"name": name, "expression": cel} for name, cel in sorted(conditions.items())),
        *([_indices()] if contract.detail else []),
        _updatable_fields(contract),
        {
            "name": "specChanges",
            "expression": _map_changes(tree, "variables.newSpec", "variables.oldSpec", "'spec'", 0, layout),
        },
    ]
    changes, validations = ["variables.specChanges"], []
    for key, child in sorted(tree.children.items()):
        if child.items is None:
            continue
        item_variables, item_validations = _item_rules(key, child.items, contract)
        variables += item_variables
        validations += item_validations
        changes.append("variables.itemChanges")
        if key == "tasks" and "replicas" in child.items.allowed:
            variables += _SCALE_VARIABLES
            validations += _SCALE_VALIDATIONS
    variables.append({"name": "changes", "expression": " + ".join(changes)})
    changed_variables, changed_validation = _changes_validation(contract)
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
            "variables": [*variables, *changed_variables],
            "validations": [changed_validation, *validations],
        },
    }


def _binding(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy_name(group), "labels": dict(POLICY_LABELS)},
        "spec": {"policyName": policy_name(group), "validationActions": ["Deny"]},
    }


def _contracts(registry: Iterable[JobKind]) -> dict[str, tuple[list[Resource], UpdateContract]]:
    """group -> (its resources, the one contract they share). The kinds of a group share their table
    and what their refusals list; their allowances (one condition each) and detail patterns are
    merged, each kind naming its own paths (a Kubeflow kind's `spec.<replicaSpecs>.*...`): the CRD's
    schema prunes another kind's replica field, so a job never holds one to be compared."""
    grouped: dict[str, tuple[list[Resource], UpdateContract]] = {}
    for kind in registry:
        contract = kind.update_contract()
        resources, shared = grouped.setdefault(kind.resource.group, ([], contract))
        if (shared.updatable, shared.listing()) != (contract.updatable, contract.listing()):
            raise ValueError(f"kinds of group {kind.resource.group} have different update contracts")
        resources.append(kind.resource)
        grouped[kind.resource.group] = (resources, _merged(shared, contract))
    return grouped


def _merged(a: UpdateContract, b: UpdateContract) -> UpdateContract:
    allowances: dict[str, Allowance] = {}
    for allowance in (*a.allowances, *b.allowances):
        known = allowances.get(allowance.condition.name)
        if known and known.condition.cel != allowance.condition.cel:
            raise ValueError(f"two conditions named {allowance.condition.name}")
        patterns = tuple(dict.fromkeys([*(known.patterns if known else ()), *allowance.patterns]))
        allowances[allowance.condition.name] = dataclasses.replace(allowance, patterns=patterns)
    detail = tuple(dict.fromkeys([*a.detail, *b.detail]))
    keep_empty = tuple(dict.fromkeys([*a.keep_empty, *b.keep_empty]))
    return UpdateContract(a.updatable, tuple(allowances.values()), detail, keep_empty)


def policy_objects(
    namespace: str = "jobwarden-system", registry: Iterable[JobKind] | None = None
) -> list[dict[str, Any]]:
    """One ValidatingAdmissionPolicy + binding per API group (one update contract each)."""
    objects: list[dict[str, Any]] = []
    for group, (resources, contract) in sorted(_contracts(registry or kinds.REGISTRY).items()):
        objects += [_policy(group, resources, contract, namespace), _binding(group)]
    return objects


HEADER: Final = (
    "# GENERATED by `jobwarden policy` from the update-contract tables (jobwarden/kinds/policy.py).\n"
    "# Do not edit: change the tables, regenerate, commit. tests/unit/test_admission_policy.py compares.\n"
)


def render_yaml(namespace: str = "jobwarden-system", allow_suspend_updates: bool = False) -> str:
    registry = kinds.registry(allow_suspend_updates)
    docs = yaml.safe_dump_all(policy_objects(namespace, registry), sort_keys=False, width=100)
    return HEADER + docs


def suspend_updates_patches() -> dict[str, list[Json]]:
    """policy name -> the JSON patch that turns the default policy into the one of an operator with
    `--allow-suspend-updates` (manifests/components/allow-suspend-updates). Only what the setting
    changes is replaced, so the policies' matchConditions (and their namespace) stay the install's."""
    policies = [o for o in policy_objects() if o["kind"] == "ValidatingAdmissionPolicy"]
    default = {o["metadata"]["name"]: o for o in policies}
    patches: dict[str, list[Json]] = {}
    for changed in policy_objects(registry=kinds.registry(allow_suspend_updates=True)):
        name = changed["metadata"]["name"]
        if changed["kind"] != "ValidatingAdmissionPolicy" or changed == default[name]:
            continue
        if {k: v for k, v in changed["spec"].items() if k not in _PATCHED} != {
            k: v for k, v in default[name]["spec"].items() if k not in _PATCHED
        }:
            raise ValueError(f"the setting changes more of {name} than its {', '.join(_PATCHED)}")
        patches[name] = [
            {"op": "replace", "path": f"/spec/{key}", "value": changed["spec"][key]} for key in _PATCHED
        ]
    return patches


_PATCHED: Final = ("variables", "validations")


def render_suspend_updates_patch() -> str:
    """The one patch the setting needs (the Kubeflow kinds' policy), as kustomize reads it."""
    [(name, patch)] = suspend_updates_patches().items()
    header = HEADER.replace("`jobwarden policy`", "`jobwarden policy --allow-suspend-updates --patch`")
    return (
        header
        + f"# Patches ValidatingAdmissionPolicy {name}.\n"
        + yaml.safe_dump(patch, sort_keys=False, width=100)
    )
