"""The parts of the apiserver's pod validation a pure check can repeat: container names, images,
ports and resources."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jobwarden.core.admission.fields import as_mapping, is_int
from jobwarden.core.admission.messages import duplicate, invalid_value, required
from jobwarden.core.admission.names import dns1123_label_problems
from jobwarden.core.fielderrors import FieldError
from jobwarden.core.quantity import is_quantity, parse_quantity


def container_errors(path: str, containers: list[Any]) -> list[FieldError]:
    """The parts of the apiserver's pod validation a pure check can repeat, so that a job whose pods
    would be refused is refused at admission instead of being half-created: every container has a
    DNS-1123 name (unique in the pod) and an image; ports are in range with IANA service names; resource
    values are quantities and no request exceeds its limit."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, container in enumerate(containers):
        item = f"{path}[{index}]"
        if not isinstance(container, Mapping):
            errors.append(invalid_value(item, container, "must be an object"))
            continue
        for key in ("name", "image"):
            if not (isinstance(container.get(key), str) and container[key].strip()):
                errors.append(required(f"{item}.{key}", f"every container needs a {key}"))
        name = container.get("name")
        if isinstance(name, str) and name.strip():
            errors += [invalid_value(f"{item}.name", name, p) for p in dns1123_label_problems(name)]
            if name in seen:
                errors.append(duplicate(f"{item}.name", name, "container names must be unique in a pod"))
            seen.add(name)
        errors += _port_errors(f"{item}.ports", container.get("ports"))
        errors += _resource_errors(f"{item}.resources", container.get("resources"))
    return errors


_IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


def _port_errors(path: str, ports: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    if ports is not None and not isinstance(ports, list):
        return [invalid_value(path, ports, "must be a list")]
    for index, port in enumerate(ports or []):
        item = f"{path}[{index}]"
        if not isinstance(port, Mapping):
            errors.append(invalid_value(item, port, "must be an object"))
            continue
        if port.get("containerPort") is None:  # the apiserver refuses such a pod; so does admission
            errors.append(required(f"{item}.containerPort", "every port needs a containerPort"))
        for key, low in (("containerPort", 1), ("hostPort", 0)):
            value = port.get(key)
            if value is not None and not (is_int(value) and low <= value <= 65535):
                errors.append(
                    invalid_value(f"{item}.{key}", value, f"must be between {low} and 65535, inclusive")
                )
        name = port.get("name")
        if isinstance(name, str) and name:
            if len(name) > 15 or not _IANA_SVC_NAME.fullmatch(name) or "--" in name or name.isdigit():
                errors.append(
                    invalid_value(
                        f"{item}.name",
                        name,
                        "must be an IANA_SVC_NAME (at most 15 "
                        "characters, lower case alphanumerics and '-', at least one letter)",
                    )
                )
            elif name in names:
                errors.append(duplicate(f"{item}.name", name, "port names must be unique in a container"))
            names.add(name)
    return errors


def _resource_errors(path: str, resources: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    resources = as_mapping(resources)
    for section in ("limits", "requests"):
        for resource, value in as_mapping(resources.get(section)).items():
            if not is_quantity(value):
                errors.append(invalid_value(f"{path}.{section}.{resource}", value, "must be a quantity"))
    limits, requests = as_mapping(resources.get("limits")), as_mapping(resources.get("requests"))
    for resource, request in requests.items():
        limit = limits.get(resource)
        if is_quantity(request) and is_quantity(limit) and parse_quantity(request) > parse_quantity(limit):
            errors.append(
                invalid_value(
                    f"{path}.requests.{resource}",
                    request,
                    f"must be less than or equal to {resource} limit of {limit}",
                )
            )
    return errors
