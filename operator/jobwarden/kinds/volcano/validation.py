"""Create-time admission rules for the Volcano batch Job (`batch.volcano.sh/v1alpha1`, kind `Job`),
also run on the new object of an UPDATE: Volcano's validating webhook and CRD schema (docs:
volcano-job spec §3.1, §3.2), reporting every problem instead of the first, plus names that make valid
pods and Services, and each implemented plugin's own argument parser. The update contract is in
`updates.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from jobwarden.core.admission import (
    as_mapping,
    container_errors,
    dns1035_label_problems,
    dns1123_label_problems,
    duplicate,
    enum_errors,
    int_errors,
    invalid_value,
    is_int,
    job_name,
    required,
    show,
    unsupported,
)
from jobwarden.core.fielderrors import FieldError, invalid
from jobwarden.core.plan import Body
from jobwarden.core.podspec import pod_spec_errors
from jobwarden.core.quantity import parse_quantity
from jobwarden.kinds.volcano import defaults
from jobwarden.plugins.registry import KNOWN_PLUGINS, argument_error, mpi_master

# The events and actions a user may put in a policy (Volcano's `policyEventMap` / `policyActionMap`).
VALID_EVENTS: Final[tuple[str, ...]] = (
    "*",
    "PodFailed",
    "PodEvicted",
    "PodPending",
    "Unknown",
    "TaskCompleted",
    "TaskFailed",
    "JobUpdated",
)
VALID_ACTIONS: Final[tuple[str, ...]] = (
    "AbortJob",
    "RestartJob",
    "RestartTask",
    "RestartPod",
    "RestartPartition",
    "TerminateJob",
    "CompleteJob",
    "ResumeJob",
)
ANY_EVENT: Final = "*"
POD_RESTART_POLICIES: Final = ("Always", "OnFailure", "Never")
TOPOLOGY_POLICIES: Final = ("none", "best-effort", "restricted", "single-numa-node")
NETWORK_TOPOLOGY_MODES: Final = ("hard", "soft")
# Plugins that make Services named after the job (`<job>`, `<job>-head-svc`): the name must then be a
# DNS-1035 label. Volcano's mutating webhook adds `svc` whenever one of the others is present.
_SERVICE_PLUGINS: Final = ("svc", *defaults.PLUGINS_IMPLYING_SVC)


# --------------------------------------------------------------------------------------------------
# CREATE (and the new object on UPDATE)


def validate_volcano(job: Body) -> list[FieldError]:
    """Every problem with a Volcano Job as a whole object, severity INVALID."""
    spec = job.get("spec")
    plugins = as_mapping(as_mapping(spec).get("plugins"))
    # Pods use the job name as their DNS subdomain; Services named after it need a DNS-1035 label.
    uses_services = any(p in plugins for p in _SERVICE_PLUGINS)
    name, errors = job_name(
        as_mapping(job.get("metadata")), dns1035_label_problems if uses_services else dns1123_label_problems
    )
    if not isinstance(spec, Mapping):
        return [*errors, required("spec", "a Volcano Job needs a spec")]
    tasks = spec.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        errors.append(required("spec.tasks", "No task specified in job spec"))
        tasks = []
    errors += _tasks_errors(name, tasks)
    errors += _job_number_errors(spec, tasks)
    errors += network_topology_errors("spec.networkTopology", spec.get("networkTopology"))
    errors += _policies_errors("spec.policies", spec.get("policies"))
    errors += _plugin_errors(spec.get("plugins"), tasks)
    errors += _volume_errors(spec.get("volumes"))
    errors += _dependency_errors(tasks)
    return errors


def task_name(task: Any, index: int) -> str:
    """The task's name; an unnamed task is `default<index>`, as Volcano's mutating webhook names it."""
    name = as_mapping(task).get("name")
    return name if isinstance(name, str) and name else f"default{index}"


def task_replicas(task: Any) -> Any:
    replicas = as_mapping(task).get("replicas")
    return 0 if replicas is None else replicas  # int32 without a default


def total_replicas(tasks: list[Any]) -> int | None:
    """The sum of all tasks' replicas, or None when some count is malformed (reported elsewhere)."""
    counts = [task_replicas(t) for t in tasks]
    return sum(counts) if all(is_int(c) and c >= 0 for c in counts) else None


def _tasks_errors(job: str | None, tasks: list[Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            errors.append(invalid_value(f"spec.tasks[{index}]", task, "must be an object"))
            continue
        errors += _task_errors(job, index, task, seen)
    return errors


def _task_errors(job: str | None, index: int, task: Mapping[str, Any], seen: set[str]) -> list[FieldError]:
    path = f"spec.tasks[{index}]"
    name, errors = _task_name_errors(path, task.get("name"), seen)
    replicas = task_replicas(task)
    errors += int_errors(f"{path}.replicas", replicas, 0)
    errors += task_min_available_errors(index, task.get("minAvailable"), replicas)
    errors += int_errors(f"{path}.maxRetry", task.get("maxRetry"), 0)
    errors += _policies_errors(f"{path}.policies", task.get("policies"))
    errors += _template_errors(f"{path}.template", task.get("template"))
    errors += _topology_errors(path, task)
    errors += _partition_errors(path, task, replicas)
    if job and name and is_int(replicas) and replicas > 0:
        errors += _pod_name_errors(path, f"{job}-{name}-{replicas - 1}")
    return errors


def _task_name_errors(path: str, name: Any, seen: set[str]) -> tuple[str | None, list[FieldError]]:
    """The task's name if it is usable in pod names, and what is wrong with it otherwise."""
    if not isinstance(name, str) or not name:
        return None, [required(f"{path}.name", "every task needs a name")]
    if problems := dns1123_label_problems(name):
        return None, [invalid_value(f"{path}.name", name, ", ".join(problems))]
    if name in seen:
        return name, [duplicate(f"{path}.name", name, "task names must be unique")]
    seen.add(name)
    return name, []


def _topology_errors(path: str, task: Mapping[str, Any]) -> list[FieldError]:
    """A NUMA topology policy pins whole CPUs, so every container must ask for a whole number."""
    policy = task.get("topologyPolicy")
    errors = enum_errors(f"{path}.topologyPolicy", policy, TOPOLOGY_POLICIES)
    if errors or policy in (None, "none"):
        return errors
    pod_spec = as_mapping(as_mapping(task.get("template")).get("spec"))
    for field in ("initContainers", "containers"):
        containers = pod_spec.get(field)
        for index, container in enumerate(containers if isinstance(containers, list) else []):
            resources = as_mapping(as_mapping(container).get("resources"))
            cpu = as_mapping(resources.get("requests")).get(
                "cpu", as_mapping(resources.get("limits")).get("cpu")
            )
            if cpu is not None and not _is_whole_number(cpu):
                detail = f"must be a whole number of CPUs with topologyPolicy {policy}"
                cpu_path = f"{path}.template.spec.{field}[{index}].resources.requests.cpu"
                errors.append(invalid_value(cpu_path, cpu, detail))
    return errors


def _is_whole_number(quantity: Any) -> bool:
    try:
        return parse_quantity(quantity).denominator == 1
    except ValueError:
        return False


def _partition_errors(path: str, task: Mapping[str, Any], replicas: Any) -> list[FieldError]:
    """Partitions split a task into equal groups: the replica and minimum counts must add up."""
    partition = task.get("partitionPolicy")
    if not isinstance(partition, Mapping):
        return []
    prefix = f"{path}.partitionPolicy"
    total, size, minimum = (partition.get(k) for k in ("totalPartitions", "partitionSize", "minPartitions"))
    errors = _required_int(f"{prefix}.totalPartitions", total, 1)
    errors += _required_int(f"{prefix}.partitionSize", size, 1)
    errors += int_errors(f"{prefix}.minPartitions", minimum, 0)
    errors += network_topology_errors(f"{prefix}.networkTopology", partition.get("networkTopology"))
    if errors or not (is_int(replicas) and is_int(total) and is_int(size)):
        return errors
    if replicas != total * size:
        detail = f"must equal totalPartitions * partitionSize ({total} * {size})"
        errors.append(invalid_value(f"{path}.replicas", replicas, detail))
    min_available = task.get("minAvailable")
    if is_int(minimum) and minimum > 0 and is_int(min_available) and min_available != minimum * size:
        detail = f"must equal minPartitions * partitionSize ({minimum} * {size})"
        errors.append(invalid_value(f"{path}.minAvailable", min_available, detail))
    return errors


def _required_int(path: str, value: Any, minimum: int) -> list[FieldError]:
    return [required(path, "must be set")] if value is None else int_errors(path, value, minimum)


def network_topology_errors(path: str, topology: Any) -> list[FieldError]:
    if topology is None:
        return []
    if not isinstance(topology, Mapping):
        return [invalid_value(path, topology, "must be an object")]
    errors = enum_errors(f"{path}.mode", topology.get("mode"), NETWORK_TOPOLOGY_MODES)
    errors += int_errors(f"{path}.highestTierAllowed", topology.get("highestTierAllowed"), 0)
    if topology.get("highestTierAllowed") is not None and topology.get("highestTierName") is not None:
        detail = (
            "must not specify 'highestTierAllowed' and 'highestTierName' in networkTopology simultaneously"
        )
        errors.append(invalid(path, detail))
    return errors


def task_min_available_errors(
    index: int, min_available: Any, replicas: Any, why: str = ""
) -> list[FieldError]:
    path = f"spec.tasks[{index}].minAvailable"
    errors = int_errors(path, min_available, 0)
    if not errors and is_int(min_available) and is_int(replicas) and min_available > replicas:
        detail = f"must not be greater than spec.tasks[{index}].replicas ({replicas})"
        errors.append(invalid_value(path, min_available, detail + why))
    return errors


def _template_errors(path: str, template: Any) -> list[FieldError]:
    pod_spec = as_mapping(as_mapping(template).get("spec"))
    errors = enum_errors(f"{path}.spec.restartPolicy", pod_spec.get("restartPolicy"), POD_RESTART_POLICIES)
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [*errors, required(f"{path}.spec.containers", "must specify at least one container")]
    errors += container_errors(f"{path}.spec.containers", containers)
    return errors + pod_spec_errors(f"{path}.spec", pod_spec)


def _pod_name_errors(path: str, pod_name: str) -> list[FieldError]:
    """The task's last pod is `<job>-<task>-<replicas-1>`, also its host name: a DNS-1123 label."""
    problems = dns1123_label_problems(pod_name)
    if not problems:
        return []
    detail = "the name of this task's last pod must be a DNS-1123 label: "
    return [invalid_value(path, pod_name, detail + ", ".join(problems))]


def _job_number_errors(spec: Mapping[str, Any], tasks: list[Any]) -> list[FieldError]:
    min_available = spec.get("minAvailable")
    errors = int_errors("spec.minAvailable", min_available, 0)
    total = total_replicas(tasks)
    if not errors and tasks and is_int(min_available) and total is not None and min_available > total:
        errors.append(job_min_available_error(min_available, total))
    errors += int_errors("spec.maxRetry", spec.get("maxRetry"), 0)
    errors += int_errors("spec.ttlSecondsAfterFinished", spec.get("ttlSecondsAfterFinished"), 0)
    errors += int_errors("spec.minSuccess", spec.get("minSuccess"), 1)
    return errors


def job_min_available_error(min_available: int, total: int) -> FieldError:
    detail = f"must not be greater than the total replicas of all tasks ({total})"
    return invalid_value("spec.minAvailable", min_available, detail)


def _policies_errors(path: str, policies: Any) -> list[FieldError]:
    """Volcano's `validatePolicies`, reporting every problem rather than the first."""
    if policies is None:
        return []
    if not isinstance(policies, list):
        return [invalid_value(path, policies, "must be a list")]
    errors: list[FieldError] = []
    first_use: dict[Any, str] = {}  # event or exit code -> the policy that handles it first
    for index, policy in enumerate(policies):
        item = f"{path}[{index}]"
        if isinstance(policy, Mapping):
            errors += _policy_errors(item, policy, first_use)
        else:
            errors.append(invalid_value(item, policy, "must be an object"))
    events = [key for key in first_use if isinstance(key, str)]
    if ANY_EVENT in events and len(events) > 1:
        detail = '"*" already matches every event, so no other event policy may be listed with it'
        errors.append(invalid_value(path, events, detail))
    return errors


def _policy_events(item: str, policy: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(path, event) for `event` and each of `events`, without repeats within the policy."""
    found: list[tuple[str, Any]] = []
    if policy.get("event") not in (None, ""):
        found.append((f"{item}.event", policy["event"]))
    events = policy.get("events")
    for index, event in enumerate(events if isinstance(events, list) else []):
        if all(event != seen for _, seen in found):
            found.append((f"{item}.events[{index}]", event))
    return found


def _policy_errors(item: str, policy: Mapping[str, Any], first_use: dict[Any, str]) -> list[FieldError]:
    events, exit_code = _policy_events(item, policy), policy.get("exitCode")
    errors: list[FieldError] = []
    if events and exit_code is not None:
        errors.append(invalid(item, "must not specify event and exitCode simultaneously"))
    elif not events and exit_code is None:
        errors.append(required(item, "either event or exitCode should be specified"))
    for path, event in events:
        if not isinstance(event, str) or event not in VALID_EVENTS:
            errors.append(unsupported(path, event, VALID_EVENTS))
        elif event in first_use:
            errors.append(duplicate(path, event, f"this event is already handled by {first_use[event]}"))
        else:
            first_use[event] = item
    if exit_code is not None:
        errors += _exit_code_errors(f"{item}.exitCode", exit_code, first_use, item)
    action = policy.get("action")
    if action is None:
        errors.append(required(f"{item}.action", "every policy needs an action"))
    else:
        errors += enum_errors(f"{item}.action", action, VALID_ACTIONS)
    return errors


def _exit_code_errors(path: str, exit_code: Any, first_use: dict[Any, str], item: str) -> list[FieldError]:
    if not is_int(exit_code):
        return [invalid_value(path, exit_code, "must be an integer")]
    if exit_code == 0:
        return [invalid_value(path, 0, "0 is not a valid error code")]
    key = ("exitCode", exit_code)
    if key in first_use:
        return [duplicate(path, exit_code, f"this exit code is already handled by {first_use[key]}")]
    first_use[key] = item
    return []


def _plugin_errors(plugins: Any, tasks: list[Any]) -> list[FieldError]:
    if plugins is None:
        return []
    if not isinstance(plugins, Mapping):
        return [invalid_value("spec.plugins", plugins, "must map plugin names to argument lists")]
    errors: list[FieldError] = []
    for name, args in plugins.items():
        path = f"spec.plugins.{name}"
        if name not in KNOWN_PLUGINS:
            errors.append(unsupported(path, name, KNOWN_PLUGINS))
        if args is not None and not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
            errors.append(invalid_value(path, args, "must be a list of argument strings"))
        elif (problem := argument_error(name, args or [])) is not None:
            errors.append(invalid_value(path, args, problem))
    if "mpi" in plugins:
        master = mpi_master(_plugin_args(plugins, "mpi"))
        if master not in {task_name(t, i) for i, t in enumerate(tasks)}:
            detail = f"The specified mpi master task was not found: no task is named {show(master)}"
            errors.append(invalid_value("spec.plugins.mpi", plugins["mpi"], detail))
    return errors


def _plugin_args(plugins: Mapping[str, Any], name: str) -> list[str]:
    args = plugins.get(name)
    return [a for a in args if isinstance(a, str)] if isinstance(args, list) else []


def _volume_errors(volumes: Any) -> list[FieldError]:
    if volumes is None:
        return []
    if not isinstance(volumes, list):
        return [invalid_value("spec.volumes", volumes, "must be a list")]
    errors: list[FieldError] = []
    mount_paths: set[str] = set()
    for index, volume in enumerate(volumes):
        path, volume = f"spec.volumes[{index}]", as_mapping(volume)
        mount_path = volume.get("mountPath")
        if not isinstance(mount_path, str) or not mount_path:
            errors.append(required(f"{path}.mountPath", "every volume needs a mountPath"))
        elif mount_path in mount_paths:
            errors.append(duplicate(f"{path}.mountPath", mount_path))
        else:
            mount_paths.add(mount_path)
        # Both may be set: the controller fills in volumeClaimName for a volumeClaim it created.
        if volume.get("volumeClaim") is None and not volume.get("volumeClaimName"):
            errors.append(required(path, "either volumeClaim or volumeClaimName must be specified"))
    return errors


def _dependency_errors(tasks: list[Any]) -> list[FieldError]:
    """`dependsOn` must name existing tasks and, like upstream, form no cycle."""
    names = [task_name(t, i) for i, t in enumerate(tasks)]
    edges: dict[str, set[str]] = {name: set() for name in names}
    errors: list[FieldError] = []
    for index, task in enumerate(tasks):
        depends_on = as_mapping(as_mapping(task).get("dependsOn")).get("name")
        for position, dependency in enumerate(depends_on if isinstance(depends_on, list) else []):
            if isinstance(dependency, str) and dependency in edges:
                edges[names[index]].add(dependency)
            else:
                path = f"spec.tasks[{index}].dependsOn.name[{position}]"
                errors.append(invalid_value(path, dependency, "no task has this name"))
    cycle = _tasks_in_cycles(edges)
    if cycle:
        errors.append(
            invalid_value("spec.tasks", cycle, "dependsOn must not form a cycle between these tasks")
        )
    return errors


def _tasks_in_cycles(edges: Mapping[str, set[str]]) -> list[str]:
    """Tasks that can never start because they (transitively) wait on themselves (Kahn's algorithm)."""
    waiting = {task: set(deps) for task, deps in edges.items()}
    ready = [task for task, deps in waiting.items() if not deps]
    while ready:
        done = ready.pop()
        for task, deps in waiting.items():
            if done in deps:
                deps.discard(done)
                if not deps:
                    ready.append(task)
    return [task for task, deps in waiting.items() if deps]
