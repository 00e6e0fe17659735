"""Reading malformed input without raising, and the checks of optional integer and enum fields."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from jobwarden.core.admission.messages import invalid_value, unsupported
from jobwarden.core.fielderrors import FieldError


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
