"""Field errors in the style of Kubernetes' apimachinery `field.Error`, so admission and the
offline `jobwarden validate` print the same messages the apiserver's own validation would."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class Severity(Enum):
    """What a failed check means for the request: a malformed object (400) or a forbidden change (403)."""

    INVALID = 400
    FORBIDDEN = 403


@dataclass(frozen=True)
class FieldError:
    """One problem at one field path, e.g. `spec.tfReplicaSpecs[Worker].replicas: Invalid value: -1: ...`."""

    path: str
    message: str
    severity: Severity = Severity.INVALID

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def invalid(path: str, message: str) -> FieldError:
    return FieldError(path, message, Severity.INVALID)


def forbidden(path: str, message: str) -> FieldError:
    return FieldError(path, message, Severity.FORBIDDEN)


def http_code(errors: Iterable[FieldError]) -> int:
    """400 when anything is malformed, else 403 (a well-formed but disallowed change)."""
    errs = list(errors)
    if any(e.severity is Severity.INVALID for e in errs):
        return Severity.INVALID.value
    return Severity.FORBIDDEN.value


def render(errors: Iterable[FieldError]) -> str:
    """One line per error, joined with '; ', in the order the checks produced them."""
    return "; ".join(str(e) for e in errors)
