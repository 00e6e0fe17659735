"""The single admission entry point, shared by the webhook (`shell/webhook.py`) and the offline
`jobwarden validate`, so both give the same answer with the same message.

CREATE runs the kind's create-time checks. UPDATE runs the kind's update contract (what may change)
and the create-time checks on the new object, with two refinements:
- a problem the old object already had is not held against the update (Kubernetes calls this
  validation ratcheting), so a job stored before a rule existed can still get its labels changed or
  its finalizers removed;
- an update-time check that reports an INVALID value at a path replaces the create-time message for
  that same path (e.g. a scale-down below `minAvailable` says why, once).
Other operations (DELETE, CONNECT) are allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jobwarden.core.admission import ALLOWED, Verdict, required, show, verdict_from
from jobwarden.core.fielderrors import FieldError, Severity
from jobwarden.core.plan import Body
from jobwarden.kinds.base import JobKind


def review(kind: JobKind, operation: str, old: Body | None, new: Body | None) -> Verdict:
    """The verdict on one admission request for a job of `kind`."""
    op = operation.upper()
    if op == "CREATE":
        if new is None:
            return verdict_from([required("object", "the request carries no object")])
        return verdict_from(kind.validate(new))
    if op == "UPDATE":
        if old is None or new is None:
            return verdict_from([required("oldObject", "an update must carry the old and the new object")])
        return verdict_from(update_errors(kind, old, new))
    return ALLOWED


def update_errors(kind: JobKind, old: Body, new: Body) -> list[FieldError]:
    changes = kind.check_update(old, new)
    superseded = {e.path for e in changes if e.severity is Severity.INVALID}
    problems = kind.validate(new)
    if problems:  # the old object is validated only when there is something to ratchet
        pre_existing = set(kind.validate(old))
        problems = [e for e in problems if e not in pre_existing and e.path not in superseded]
    return list(dict.fromkeys([*changes, *problems]))  # drop repeats, keep order


# --------------------------------------------------------------------------------------------------
# Whole documents, for `jobwarden validate`

KindLookup = Callable[[str, str], JobKind | None]  # (apiVersion, kind) -> the kind, e.g. kinds.by_kind


@dataclass(frozen=True)
class DocumentReview:
    """The outcome for one document: a verdict, or why it could not be reviewed (`problem`)."""

    kind: str
    name: str
    verdict: Verdict | None = None
    problem: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def allowed(self) -> bool:
        return self.verdict is not None and self.verdict.allowed


Identity = tuple[str, str, str, str]


def identity(doc: Mapping[str, Any]) -> Identity:
    """What an UPDATE keeps: apiVersion, kind, namespace and name."""
    metadata = doc.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    return (
        str(doc.get("apiVersion", "")),
        str(doc.get("kind", "")),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name") or metadata.get("generateName") or ""),
    )


def review_documents(
    new_docs: Iterable[Any], old_docs: Iterable[Any] | None, lookup: KindLookup
) -> list[DocumentReview]:
    """CREATE rules for every document, or with `old_docs`, UPDATE rules for every new document
    against the old document with the same identity."""
    old_by_identity = (
        None if old_docs is None else {identity(d): d for d in old_docs if isinstance(d, Mapping)}
    )
    return [_review_document(doc, old_by_identity, lookup) for doc in new_docs]


def _review_document(
    doc: Any, old_by_identity: Mapping[Identity, Mapping[str, Any]] | None, lookup: KindLookup
) -> DocumentReview:
    if not isinstance(doc, Mapping):
        return DocumentReview("?", "?", problem=f"not a Kubernetes object: {show(doc)[:80]}")
    api_version, kind_name, _, name = identity(doc)
    label = (kind_name or "?", name or "?")
    if not api_version or not kind_name:
        return DocumentReview(*label, problem="not a Kubernetes object: apiVersion and kind are required")
    kind = lookup(api_version, kind_name)
    if kind is None:
        return DocumentReview(
            *label, problem=f"unknown kind {show(kind_name)} in apiVersion {show(api_version)}"
        )
    if old_by_identity is None:
        return DocumentReview(*label, verdict=review(kind, "CREATE", None, doc))
    old = old_by_identity.get(identity(doc))
    if old is None:
        return DocumentReview(
            *label, problem="no old document with the same apiVersion, kind, namespace and name"
        )
    return DocumentReview(*label, verdict=review(kind, "UPDATE", old, doc))
