"""The diff walker: a structural diff of two JSON-like objects that reports every path that changed
but may not.

Paths use Kubernetes' notation, `spec.tasks[1].template.spec.containers[0].image`; map keys are
joined with dots even when they contain dots themselves (`metadata.labels.app.kubernetes.io/name`).
Patterns are paths where `[*]` matches any list index and `*` matches any map key; a pattern also
covers everything below it (`spec.tasks[*].template` covers the whole pod template).

What counts as "no change" (the normalisation hooks):
- a key that is absent, `null`, `{}` or `[]` on one side and absent/empty on the other, because the
  apiserver drops empty optional fields (`omitempty`); `keep_empty` names the places where an empty
  value still means something (e.g. Volcano's `plugins: {env: []}` enables a plugin);
- leaves that `leaf_equal` says are the same; the default treats resource quantities by value
  (`cpu: 2` == `cpu: "2000m"`). Kind-specific defaults (replicas absent == 1, ...) are applied by the
  kind before diffing, because they depend on the kind's schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jobwarden.core.admission.allowlist import covered_by, leads_to, names_exactly
from jobwarden.core.admission.paths import FieldPath, Pattern, parse_pattern
from jobwarden.core.quantity import quantities_equal


def is_quantity_path(path: FieldPath) -> bool:
    """Where Kubernetes objects hold resource quantities: `resources.{limits,requests}.<name>` (containers,
    PVC claims), pod `overhead`, Kubeflow's `schedulingPolicy.minResources`, `emptyDir.sizeLimit`."""
    if len(path) >= 3 and path[-3] == "resources" and path[-2] in ("limits", "requests"):
        return True
    return (len(path) >= 2 and path[-2] in ("overhead", "minResources")) or path[-1:] == ("sizeLimit",)


def plain_equal(a: Any, b: Any) -> bool:
    # JSON `true` is not `1`, although Python says True == 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def kubernetes_leaf_equal(path: FieldPath, a: Any, b: Any) -> bool:
    """Scalars compare as data, except quantities, which compare by value."""
    if is_quantity_path(path):
        return quantities_equal(a, b)
    return plain_equal(a, b)


LeafEqual = Callable[[FieldPath, Any, Any], bool]


# --------------------------------------------------------------------------------------------------
# The diff


@dataclass(frozen=True)
class DiffRules:
    """How `changed_paths` decides what is a change and what may change."""

    allowed: tuple[Pattern, ...] = ()
    keep_empty: tuple[Pattern, ...] = ()
    leaf_equal: LeafEqual = kubernetes_leaf_equal

    @classmethod
    def of(cls, allowed: Iterable[str] = (), keep_empty: Iterable[str] = ()) -> DiffRules:
        return cls(
            allowed=tuple(parse_pattern(p) for p in allowed),
            keep_empty=tuple(parse_pattern(p) for p in keep_empty),
        )

    def is_allowed(self, path: FieldPath) -> bool:
        return any(covered_by(path, pattern) for pattern in self.allowed)

    def leads_to_allowed(self, path: FieldPath) -> bool:
        return any(leads_to(path, pattern) for pattern in self.allowed)

    def is_empty(self, value: Any, path: FieldPath) -> bool:
        """Absent, null, or an empty map/list (recursively), unless an empty value matters here."""
        if value is None:
            return True
        if any(names_exactly(path, pattern) for pattern in self.keep_empty):
            return False
        if isinstance(value, Mapping):
            return all(self.is_empty(v, (*path, k)) for k, v in value.items())
        if isinstance(value, list):
            return not value
        return False


def changed_paths(
    old: Any, new: Any, rules: DiffRules | None = None, base: FieldPath = ()
) -> list[FieldPath]:
    """The deepest paths where `old` and `new` differ and no `rules.allowed` pattern covers them, in
    document order. An entry present on one side only is reported as a whole (`containers[1]`,
    `spec.tfReplicaSpecs.Evaluator`), unless an allowed path lies inside it, in which case the
    diff descends so an allowed change there stays allowed."""
    found: list[FieldPath] = []
    _walk(old, new, base, rules or DiffRules(), found)
    return found


def strictly_equal(a: Any, b: Any) -> bool:
    """Equal as JSON documents. Python's `==` alone would call `true` and `1` (or `1` and `1.0`) the
    same; the JSON text tells them apart. Most of an UPDATE is unchanged, so skipping equal subtrees
    here keeps the walk (and its pattern matching) to the few places that differ."""
    if a is b:
        return True
    if isinstance(a, Mapping | list):
        return bool(a == b) and json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    return type(a) is type(b) and bool(a == b)


def _walk(old: Any, new: Any, path: FieldPath, rules: DiffRules, found: list[FieldPath]) -> None:
    if strictly_equal(old, new) or rules.is_allowed(path):
        return
    old_empty, new_empty = rules.is_empty(old, path), rules.is_empty(new, path)
    if old_empty and new_empty:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        _walk_mappings(old, new, path, rules, found)
    elif isinstance(old, list) and isinstance(new, list):
        _walk_lists(old, new, path, rules, found)
    elif old_empty or new_empty:
        _walk_one_side(new if old_empty else old, old_empty, path, rules, found)
    elif isinstance(old, Mapping | list) or isinstance(new, Mapping | list):
        found.append(path)  # a container on one side, a scalar or another container type on the other
    elif not rules.leaf_equal(path, old, new):
        found.append(path)


def _walk_one_side(
    present: Any, added: bool, path: FieldPath, rules: DiffRules, found: list[FieldPath]
) -> None:
    """An entry on one side only: reported whole, unless an allowed path lies inside it (a new
    `spec.runPolicy` holding only `ttlSecondsAfterFinished` is an allowed change)."""
    if not (isinstance(present, Mapping | list) and rules.leads_to_allowed(path)):
        found.append(path)
        return
    if isinstance(present, Mapping):
        no_map: Mapping[str, Any] = {}
        _walk_mappings(no_map if added else present, present if added else no_map, path, rules, found)
    else:
        _walk_lists([] if added else present, present if added else [], path, rules, found)


def _walk_mappings(
    old: Mapping[str, Any], new: Mapping[str, Any], path: FieldPath, rules: DiffRules, found: list[FieldPath]
) -> None:
    keys = list(old) + [k for k in new if k not in old]
    for key in keys:
        _walk(old.get(key), new.get(key), (*path, key), rules, found)


def _walk_lists(
    old: list[Any], new: list[Any], path: FieldPath, rules: DiffRules, found: list[FieldPath]
) -> None:
    for index in range(max(len(old), len(new))):
        item_path = (*path, index)
        if index < len(old) and index < len(new):
            _walk(old[index], new[index], item_path, rules, found)
        elif not rules.is_allowed(item_path):
            found.append(item_path)  # an element added or removed
