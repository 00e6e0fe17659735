"""The `Verdict` the webhook and `jobwarden validate` both turn into an answer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from jobwarden.core.fielderrors import FieldError, http_code, render


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
