"""The allowlist matcher: whether a pattern covers a path (names it or an ancestor), leads to it,
or names it exactly. A pattern also covers everything below it (`spec.tasks[*].template` covers the
whole pod template)."""

from __future__ import annotations

from jobwarden.core.admission.paths import FieldPath, PathSegment, Pattern, PatternSegment, Wildcard


def _segment_matches(pattern_segment: PatternSegment, segment: PathSegment) -> bool:
    if isinstance(pattern_segment, Wildcard):
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
