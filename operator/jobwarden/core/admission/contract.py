"""An update contract as data, read by both enforcers: the webhook (`check_update`, a structural diff
in Python) and the generated ValidatingAdmissionPolicy (CEL, `kinds/policy.py`).

- `updatable`: the paths that may always change (patterns as in `paths.py`);
- `allowances`: paths that may change only when a condition on the old and new object holds (e.g. a
  Kubeflow pod template's scheduling directives while the job is suspended). The condition is given
  twice, as a Python predicate for the webhook and as CEL for the policy, next to each other so they
  are read and changed together;
- `detail`: how deep the policy looks before it names a change. The webhook always names the deepest
  path that differs; CEL has no recursion, so the policy descends only along these patterns (a `*`
  descends into every map key, `[*]` compares a list index by index) and names the first path below
  them that differs, or the deepest pattern node itself. Detail never changes what is allowed, only
  how precisely a refusal names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

# Inside a pod template, where the policy names a change (the rest of a template is named at its first
# level, `template.spec.volumes`): label and annotation keys, node-selector keys, and per container
# (by index, as the webhook) its fields, its command and args items, env and port entries, and the
# resource names of its requests and limits. A family puts its template's path in front.
POD_TEMPLATE_DETAIL: Final[tuple[str, ...]] = (
    "metadata.labels.*",
    "metadata.annotations.*",
    "spec.nodeSelector.*",
    *(
        f"spec.{containers}[*].{field}"
        for containers in ("containers", "initContainers")
        for field in ("*", "command[*]", "args[*]", "env[*].*", "ports[*].*", "resources.*.*")
    ),
)


@dataclass(frozen=True, eq=False)
class Condition:
    """When an allowance holds. `holds(old, new)` for the webhook; `cel`, a CEL boolean over
    `variables.oldSpec` and `variables.newSpec` (the two specs, `{}` when absent), for the policy,
    where it becomes the variable `variables.<name>`."""

    name: str
    holds: Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
    cel: str


@dataclass(frozen=True)
class Allowance:
    """`patterns` may change while `condition` holds; `shown` is how the refusal's list of updatable
    fields describes the allowance (the same words for every kind that shares a policy)."""

    condition: Condition
    patterns: tuple[str, ...]
    shown: str


@dataclass(frozen=True)
class UpdateContract:
    updatable: tuple[str, ...]
    allowances: tuple[Allowance, ...] = ()
    detail: tuple[str, ...] = ()
    # Where an empty value is not "absent" (Volcano's `plugins: {env: []}` enables a plugin): the
    # webhook's `keep_empty`, so that the policy does not call such a change no change.
    keep_empty: tuple[str, ...] = ()

    def allowed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
        """The patterns that may change in this update: the table plus every allowance that holds."""
        extra = tuple(p for a in self.allowances if a.condition.holds(old, new) for p in a.patterns)
        return (*self.updatable, *extra)

    def listing(self) -> str:
        """What a refusal lists after `updatable fields: `."""
        return "; ".join([", ".join(self.updatable), *(a.shown for a in self.allowances)])
