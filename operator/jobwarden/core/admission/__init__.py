"""The kind-independent half of admission: a structural diff of two JSON-like objects that reports
every path that changed but may not, field-error helpers that word messages the way the apiserver
does, and the `Verdict` the webhook and `jobwarden validate` both turn into an answer.

One concern per module, every public name importable from `jobwarden.core.admission`: `paths` (path
rendering and pattern parsing), `allowlist` (the pattern matcher), `diff` (the diff walker and leaf
equality), `messages` (errors worded like the apiserver's), `fields` (integer and enum fields),
`names` (DNS labels, the job name), `containers` (container checks), `contract` (an update contract
as data, for the webhook and the policy alike), `verdict`.

Path notation, patterns and what counts as "no change": see `diff.py`.
"""

from __future__ import annotations

from jobwarden.core.admission.allowlist import covered_by, leads_to, names_exactly
from jobwarden.core.admission.containers import container_errors
from jobwarden.core.admission.contract import (
    POD_TEMPLATE_DETAIL,
    Allowance,
    Condition,
    UpdateContract,
)
from jobwarden.core.admission.diff import (
    DiffRules,
    changed_paths,
    is_quantity_path,
    kubernetes_leaf_equal,
    plain_equal,
    strictly_equal,
)
from jobwarden.core.admission.fields import as_mapping, enum_errors, int_errors, is_int
from jobwarden.core.admission.messages import (
    duplicate,
    forbidden_changes,
    invalid_value,
    not_updatable,
    required,
    show,
    unsupported,
)
from jobwarden.core.admission.names import (
    DNS_LABEL_MAX_LENGTH,
    dns1035_label_problems,
    dns1123_label_problems,
    job_name,
)
from jobwarden.core.admission.paths import (
    ANY_INDEX,
    ANY_KEY,
    FieldPath,
    PathSegment,
    Pattern,
    PatternSegment,
    Wildcard,
    parse_pattern,
    render_path,
)
from jobwarden.core.admission.verdict import ALLOWED, Verdict, verdict_from

__all__ = [
    "ALLOWED",
    "ANY_INDEX",
    "ANY_KEY",
    "DNS_LABEL_MAX_LENGTH",
    "POD_TEMPLATE_DETAIL",
    "Allowance",
    "Condition",
    "DiffRules",
    "FieldPath",
    "PathSegment",
    "Pattern",
    "PatternSegment",
    "UpdateContract",
    "Verdict",
    "Wildcard",
    "as_mapping",
    "changed_paths",
    "container_errors",
    "covered_by",
    "dns1035_label_problems",
    "dns1123_label_problems",
    "duplicate",
    "enum_errors",
    "forbidden_changes",
    "int_errors",
    "invalid_value",
    "is_int",
    "is_quantity_path",
    "job_name",
    "kubernetes_leaf_equal",
    "leads_to",
    "names_exactly",
    "not_updatable",
    "parse_pattern",
    "plain_equal",
    "render_path",
    "required",
    "show",
    "strictly_equal",
    "unsupported",
    "verdict_from",
]
