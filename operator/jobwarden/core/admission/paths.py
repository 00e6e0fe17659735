"""Field paths in Kubernetes' notation (`spec.tasks[1].template.spec.containers[0].image`) and the
patterns of the update allowlists (`[*]` any list index, `*` any map key): types, rendering, parsing.
Map keys are joined with dots even when they contain dots themselves."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

PathSegment = str | int
FieldPath = tuple[PathSegment, ...]


class Wildcard:
    """A pattern segment that matches any list index (`[*]`) or any map key (`*`)."""

    def __init__(self, text: str, matches_index: bool) -> None:
        self.text = text
        self.matches_index = matches_index

    def matches(self, segment: PathSegment) -> bool:
        return isinstance(segment, int) == self.matches_index

    def __repr__(self) -> str:
        return self.text


ANY_INDEX: Final = Wildcard("[*]", matches_index=True)
ANY_KEY: Final = Wildcard("*", matches_index=False)

PatternSegment = str | int | Wildcard
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
