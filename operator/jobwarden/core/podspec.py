"""Pod-spec checks beyond the containers' own (core/admission.py `container_errors`): what the apiserver
refuses when the controller creates the pods, and a pure function can see in the job's pod template.
Without them the job is admitted and its pods never come (a `FailedCreatePod` event, retried forever).

- every volumeMount / volumeDevice names a volume the pod declares; volume names are unique; a
  container mounts one path once;
- init containers pass the same container checks, and container names are unique across both lists;
- pod-level `resources` (Kubernetes 1.34+): only cpu, memory and hugepages-*, quantities, and no
  request above its limit (Volcano's own webhook refuses this too).

What stays the apiserver's (it needs cluster state or the defaulted pod): the ServiceAccount,
ConfigMaps, Secrets and PVCs named by the pod exist; the PriorityClass exists; quota and LimitRange;
admission plugins (PodSecurity, ...); image pull. docs/admission.md has the list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from jobwarden.core.admission import as_mapping, container_errors, duplicate, invalid_value
from jobwarden.core.fielderrors import FieldError, invalid
from jobwarden.core.quantity import is_quantity, parse_quantity

POD_LEVEL_RESOURCES: Final = ("cpu", "memory")
HUGEPAGES_PREFIX: Final = "hugepages-"


def not_found(path: str, value: Any) -> FieldError:
    return invalid(path, f'Not found: "{value}"')


def pod_spec_errors(path: str, pod_spec: Mapping[str, Any]) -> list[FieldError]:
    """`path` is the pod spec's (`spec.tasks[0].template.spec`). Container-level checks of
    `containers` stay with the caller; init containers are checked here."""
    volumes, errors = _volume_names(f"{path}.volumes", pod_spec.get("volumes"))
    init = pod_spec.get("initContainers")
    if isinstance(init, list):
        errors += container_errors(f"{path}.initContainers", init)
    errors += _shared_name_errors(path, pod_spec)
    for field in ("initContainers", "containers"):
        items = pod_spec.get(field)
        for index, container in enumerate(items if isinstance(items, list) else []):
            errors += _mount_errors(f"{path}.{field}[{index}]", as_mapping(container), volumes)
    return errors + _pod_resource_errors(f"{path}.resources", pod_spec.get("resources"))


def _volume_names(path: str, volumes: Any) -> tuple[set[str], list[FieldError]]:
    names: set[str] = set()
    errors: list[FieldError] = []
    for index, volume in enumerate(volumes if isinstance(volumes, list) else []):
        name = as_mapping(volume).get("name")
        if not isinstance(name, str):
            continue
        if name in names:
            errors.append(duplicate(f"{path}[{index}].name", name))
        names.add(name)
    return names, errors


def _shared_name_errors(path: str, pod_spec: Mapping[str, Any]) -> list[FieldError]:
    """An init container may not share a name with a container (each list is checked on its own)."""
    init = pod_spec.get("initContainers")
    containers = pod_spec.get("containers")
    names = {_name(c) for c in (containers if isinstance(containers, list) else [])} - {None}
    return [
        duplicate(f"{path}.initContainers[{index}].name", _name(c))
        for index, c in enumerate(init if isinstance(init, list) else [])
        if _name(c) in names
    ]


def _name(container: Any) -> str | None:
    name = as_mapping(container).get("name")
    return name if isinstance(name, str) else None


def _mount_errors(path: str, container: Mapping[str, Any], volumes: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    mount_paths: set[str] = set()
    for field in ("volumeMounts", "volumeDevices"):
        items = container.get(field)
        for index, item in enumerate(items if isinstance(items, list) else []):
            item = as_mapping(item)
            name = item.get("name")
            if isinstance(name, str) and name not in volumes:
                errors.append(not_found(f"{path}.{field}[{index}].name", name))
            mount_path = item.get("mountPath")
            if field == "volumeMounts" and isinstance(mount_path, str):
                if mount_path in mount_paths:
                    errors.append(
                        invalid_value(f"{path}.{field}[{index}].mountPath", mount_path, "must be unique")
                    )
                mount_paths.add(mount_path)
    return errors


def _pod_resource_errors(path: str, resources: Any) -> list[FieldError]:
    resources = as_mapping(resources)
    errors: list[FieldError] = []
    for section in ("limits", "requests"):
        for name, value in as_mapping(resources.get(section)).items():
            item = f"{path}.{section}.{name}"
            if not (name in POD_LEVEL_RESOURCES or str(name).startswith(HUGEPAGES_PREFIX)):
                supported = ", ".join(f'"{r}"' for r in POD_LEVEL_RESOURCES)
                errors.append(invalid(item, f'Unsupported value: "{name}": supported values: {supported}'))
            elif not is_quantity(value):
                errors.append(invalid_value(item, value, "must be a quantity"))
    limits = as_mapping(resources.get("limits"))
    for name, request in as_mapping(resources.get("requests")).items():
        limit = limits.get(name)
        if is_quantity(request) and is_quantity(limit) and parse_quantity(request) > parse_quantity(limit):
            detail = f"must be less than or equal to {name} limit of {limit}"
            errors.append(invalid_value(f"{path}.requests.{name}", request, detail))
    return errors
