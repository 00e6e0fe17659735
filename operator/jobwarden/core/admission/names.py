"""Names (apimachinery `validation.IsDNS1035Label` / `IsDNS1123Label`) and the job's own name."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from jobwarden.core.admission.messages import invalid_value, required
from jobwarden.core.fielderrors import FieldError

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
