"""Field errors worded like the apiserver's (`field.Invalid`, `field.Required`, `field.NotSupported`,
`field.Duplicate`, `field.Forbidden`), and the `field is not updatable` errors of a diff."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from jobwarden.core.admission.diff import DiffRules, changed_paths
from jobwarden.core.admission.paths import FieldPath, render_path
from jobwarden.core.fielderrors import FieldError, forbidden, invalid


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


def not_updatable(path: str, updatable: Sequence[str] | str) -> FieldError:
    """`updatable`: the table, or the text that lists it (`UpdateContract.listing`)."""
    listing = updatable if isinstance(updatable, str) else ", ".join(updatable)
    return forbidden(path, f"field is not updatable; updatable fields: {listing}")


def forbidden_changes(
    old: Any,
    new: Any,
    updatable: Sequence[str],
    keep_empty: Iterable[str] = (),
    base: FieldPath = (),
    listing: str | None = None,
) -> list[FieldError]:
    """One `field is not updatable` error per changed path that no `updatable` pattern covers; the
    message lists `listing`, by default the patterns themselves."""
    rules = DiffRules.of(allowed=updatable, keep_empty=keep_empty)
    shown = ", ".join(updatable) if listing is None else listing
    return [not_updatable(render_path(p), shown) for p in changed_paths(old, new, rules, base)]
