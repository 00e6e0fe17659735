"""The kind-independent half of admission: a structural diff of two JSON-like objects that reports
every path that changed but may not, field-error helpers that word messages the way the apiserver
does, and the `Verdict` the webhook and `jobwarden validate` both turn into an answer.

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
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

from jobwarden.core.fielderrors import FieldError, forbidden, http_code, invalid, render
from jobwarden.core.quantity import is_quantity, parse_quantity, quantities_equal

PathSegment = str | int
FieldPath = tuple[PathSegment, ...]


# --------------------------------------------------------------------------------------------------
# Paths and patterns


class _Wildcard:
    """A pattern segment that matches any list index (`[*]`) or any map key (`*`)."""

    def __init__(self, text: str, matches_index: bool) -> None:
        self.text = text
        self.matches_index = matches_index

    def matches(self, segment: PathSegment) -> bool:
        return isinstance(segment, int) == self.matches_index

    def __repr__(self) -> str:
        return self.text


ANY_INDEX: Final = _Wildcard("[*]", matches_index=True)
ANY_KEY: Final = _Wildcard("*", matches_index=False)

PatternSegment = str | int | _Wildcard
Pattern = tuple[PatternSegment, ...]

_SEGMENT = re.compile(r"\[(\*|\d+)\]|([^.\[\]]+)")


def render_path(path: Sequence[PathSegment]) -> str:
    """`("spec", "tasks", 1, "name")` -> `spec.tasks[1].name`."""
    text = ""
    for segment in path:
        if isinstance(segment, int):
            text += f"[{segment}]"
        else:
            text += f".{segment}" if text else segment
    return text


def parse_pattern(text: str) -> Pattern:
    """`spec.tasks[*].template` -> `("spec", "tasks", ANY_INDEX, "template")`."""
    segments: list[PatternSegment] = []
    for match in _SEGMENT.finditer(text):
        index, key = match.groups()
        if index == "*":
            segments.append(ANY_INDEX)
        elif index is not None:
            segments.append(int(index))
        elif key == "*":
            segments.append(ANY_KEY)
        else:
            segments.append(key)
    return tuple(segments)


def _segment_matches(pattern_segment: PatternSegment, segment: PathSegment) -> bool:
    if isinstance(pattern_segment, _Wildcard):
        return pattern_segment.matches(segment)
    return type(pattern_segment) is type(segment) and pattern_segment == segment


def _matches_start(path: FieldPath, pattern: Pattern, length: int) -> bool:
    return all(_segment_matches(p, s) for p, s in zip(pattern[:length], path[:length], strict=True))


def covered_by(path: FieldPath, pattern: Pattern) -> bool:
    """The pattern names this path or one of its ancestors."""
    return len(pattern) <= len(path) and _matches_start(path, pattern, len(pattern))


def leads_to(path: FieldPath, pattern: Pattern) -> bool:
    """The path is a proper ancestor of what the pattern names (`spec.runPolicy` leads to
    `spec.runPolicy.ttlSecondsAfterFinished`)."""
    return len(path) < len(pattern) and _matches_start(path, pattern, len(path))


def names_exactly(path: FieldPath, pattern: Pattern) -> bool:
    return len(path) == len(pattern) and _matches_start(path, pattern, len(path))


# --------------------------------------------------------------------------------------------------
# Leaf equality


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


# --------------------------------------------------------------------------------------------------
# Field errors worded like the apiserver's (`field.Invalid`, `field.Required`, ...)


def show(value: Any) -> str:
    """A value the way apimachinery prints it in messages: strings quoted, numbers bare."""
    try:
        return json.dumps(value, sort_keys=True, separators=(", ", ": "))
    except (TypeError, ValueError):
        return repr(value)


def invalid_value(path: str, value: Any, detail: str) -> FieldError:
    return invalid(path, f"Invalid value: {show(value)}: {detail}")


def required(path: str, detail: str) -> FieldError:
    return invalid(path, f"Required value: {detail}")


def unsupported(path: str, value: Any, supported: Iterable[str]) -> FieldError:
    choices = ", ".join(show(s) for s in supported)
    return invalid(path, f"Unsupported value: {show(value)}: supported values: {choices}")


def duplicate(path: str, value: Any, detail: str = "") -> FieldError:
    return invalid(path, f"Duplicate value: {show(value)}" + (f": {detail}" if detail else ""))


def not_updatable(path: str, updatable: Sequence[str]) -> FieldError:
    return forbidden(path, f"field is not updatable; updatable fields: {', '.join(updatable)}")


def forbidden_changes(
    old: Any, new: Any, updatable: Sequence[str], keep_empty: Iterable[str] = (), base: FieldPath = ()
) -> list[FieldError]:
    """One `field is not updatable` error per changed path that no `updatable` pattern covers."""
    rules = DiffRules.of(allowed=updatable, keep_empty=keep_empty)
    return [not_updatable(render_path(p), updatable) for p in changed_paths(old, new, rules, base)]


def as_mapping(value: Any) -> Mapping[str, Any]:
    """The value if it is an object, else an empty one: validation reads malformed input without raising."""
    return value if isinstance(value, Mapping) else {}


def is_int(value: Any) -> TypeGuard[int]:
    """A JSON integer (`true` is not one, although Python's bool is an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def int_errors(path: str, value: Any, minimum: int) -> list[FieldError]:
    """An optional integer field (None = unset) that must be at least `minimum`."""
    if value is None:
        return []
    if not is_int(value):
        return [invalid_value(path, value, "must be an integer")]
    if value < minimum:
        bound = "greater than 0" if minimum == 1 else f"greater than or equal to {minimum}"
        return [invalid_value(path, value, f"must be {bound}")]
    return []


def enum_errors(path: str, value: Any, allowed: Sequence[str]) -> list[FieldError]:
    """An optional field (None = unset) that must be one of `allowed`."""
    if value is None or (isinstance(value, str) and value in allowed):
        return []
    return [unsupported(path, value, allowed)]


def container_errors(path: str, containers: list[Any]) -> list[FieldError]:
    """The parts of the apiserver's pod validation a pure check can repeat, so that a job whose pods
    would be refused is refused at admission instead of being half-created: every container has a
    DNS-1123 name (unique in the pod) and an image; ports are in range with IANA service names; resource
    values are quantities and no request exceeds its limit."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, container in enumerate(containers):
        item = f"{path}[{index}]"
        if not isinstance(container, Mapping):
            errors.append(invalid_value(item, container, "must be an object"))
            continue
        for key in ("name", "image"):
            if not (isinstance(container.get(key), str) and container[key].strip()):
                errors.append(required(f"{item}.{key}", f"every container needs a {key}"))
        name = container.get("name")
        if isinstance(name, str) and name.strip():
            errors += [invalid_value(f"{item}.name", name, p) for p in dns1123_label_problems(name)]
            if name in seen:
                errors.append(duplicate(f"{item}.name", name, "container names must be unique in a pod"))
            seen.add(name)
        errors += _port_errors(f"{item}.ports", container.get("ports"))
        errors += _resource_errors(f"{item}.resources", container.get("resources"))
    return errors


_IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


def _port_errors(path: str, ports: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    for index, port in enumerate(ports if isinstance(ports, list) else []):
        item = f"{path}[{index}]"
        port = as_mapping(port)
        for key, low in (("containerPort", 1), ("hostPort", 0)):
            value = port.get(key)
            if value is not None and not (is_int(value) and low <= value <= 65535):
                errors.append(
                    invalid_value(f"{item}.{key}", value, f"must be between {low} and 65535, inclusive")
                )
        name = port.get("name")
        if isinstance(name, str) and name:
            if len(name) > 15 or not _IANA_SVC_NAME.fullmatch(name) or "--" in name or name.isdigit():
                errors.append(
                    invalid_value(
                        f"{item}.name",
                        name,
                        "must be an IANA_SVC_NAME (at most 15 "
                        "characters, lower case alphanumerics and '-', at least one letter)",
                    )
                )
            elif name in names:
                errors.append(duplicate(f"{item}.name", name, "port names must be unique in a container"))
            names.add(name)
    return errors


def _resource_errors(path: str, resources: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    resources = as_mapping(resources)
    for section in ("limits", "requests"):
        for resource, value in as_mapping(resources.get(section)).items():
            if not is_quantity(value):
                errors.append(invalid_value(f"{path}.{section}.{resource}", value, "must be a quantity"))
    limits, requests = as_mapping(resources.get("limits")), as_mapping(resources.get("requests"))
    for resource, request in requests.items():
        limit = limits.get(resource)
        if is_quantity(request) and is_quantity(limit) and parse_quantity(request) > parse_quantity(limit):
            errors.append(
                invalid_value(
                    f"{path}.requests.{resource}",
                    request,
                    f"must be less than or equal to {resource} limit of {limit}",
                )
            )
    return errors


# --------------------------------------------------------------------------------------------------
# Names (apimachinery `validation.IsDNS1035Label` / `IsDNS1123Label`)

DNS_LABEL_MAX_LENGTH: Final = 63
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035_TEXT = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1123_TEXT = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def _label_problems(value: str, pattern: re.Pattern[str], text: str) -> list[str]:
    problems = []
    if len(value) > DNS_LABEL_MAX_LENGTH:
        problems.append(f"must be no more than {DNS_LABEL_MAX_LENGTH} characters")
    if not pattern.fullmatch(value):
        problems.append(text)
    return problems


def dns1035_label_problems(value: str) -> list[str]:
    """Why `value` is not a DNS-1035 label (Service names); empty when it is one."""
    return _label_problems(value, _DNS1035, _DNS1035_TEXT)


def dns1123_label_problems(value: str) -> list[str]:
    """Why `value` is not a DNS-1123 label (pod host names, Volcano task names); empty when it is one."""
    return _label_problems(value, _DNS1123, _DNS1123_TEXT)


# apiserver `generateName`: the prefix is cut to 58 characters and 5 random ones are appended.
_GENERATED_SUFFIX_LENGTH: Final = 5


def job_name(
    metadata: Mapping[str, Any], label_problems: Callable[[str], list[str]]
) -> tuple[str | None, list[FieldError]]:
    """The object's name (for a `generateName` a stand-in of the generated length) and why it is not a
    valid label for what the job will create. The name is None when it is missing or invalid."""
    name, generate_name = metadata.get("name"), metadata.get("generateName")
    if isinstance(name, str) and name:
        path, shown, candidate = "metadata.name", name, name
    elif isinstance(generate_name, str) and generate_name:
        prefix = generate_name[: DNS_LABEL_MAX_LENGTH - _GENERATED_SUFFIX_LENGTH]
        candidate = prefix + "x" * _GENERATED_SUFFIX_LENGTH
        path, shown = "metadata.generateName", generate_name
    else:
        return None, [required("metadata.name", "name or generateName is required")]
    problems = label_problems(candidate)
    if problems:
        return None, [invalid_value(path, shown, ", ".join(problems))]
    return candidate, []


# --------------------------------------------------------------------------------------------------
# The verdict


@dataclass(frozen=True)
class Verdict:
    """The answer to one admission request: allowed (200), malformed (400) or a forbidden change (403)."""

    allowed: bool
    code: int
    message: str
    errors: tuple[FieldError, ...] = field(default=())


ALLOWED: Final = Verdict(allowed=True, code=200, message="")


def verdict_from(errors: Iterable[FieldError]) -> Verdict:
    """No errors: allowed. Otherwise denied with every error in the message, 400 if any error is
    INVALID (the request is malformed), else 403 (well-formed but changes what may not change)."""
    errs = tuple(errors)
    if not errs:
        return ALLOWED
    return Verdict(allowed=False, code=http_code(errs), message=render(errs), errors=errs)
