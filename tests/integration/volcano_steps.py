"""Step helpers for the Volcano Job lifecycle tests: building bodies from the seed-003 request
(`seed_job`, `small_job`, `task`, `container`), and a handle on one job in the real cluster
(`VolcanoJob`) that reads it, its pods, plugin children and events, replaces it, and waits on them.

Every read goes to the kube-apiserver (the `kubernetes` sync client, or `kubectl`); nothing is cached.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from devcluster import pods as devpods
from devcluster.cluster import Cluster
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from testlib import creatable, load_seed, wait_for

GROUP, VERSION, PLURAL = "batch.volcano.sh", "v1alpha1", "jobs"
API_VERSION = f"{GROUP}/{VERSION}"
SEED = "volcanojob-put.request.json"
SEED_NAME = "openmpi-hello-2-com"
JOB_NAME_LABEL = "volcano.sh/job-name"
JOB_NAMESPACE_LABEL = "volcano.sh/job-namespace"
TASK_SPEC_KEY = "volcano.sh/task-spec"
TASK_INDEX_KEY = "volcano.sh/task-index"
QUEUE_NAME_KEY = "volcano.sh/queue-name"
JOB_VERSION_KEY = "volcano.sh/job-version"
TEMPLATE_UID_KEY = "volcano.sh/template-uid"
RETRY_COUNT_KEY = "volcano.sh/job-retry-count"
GROUP_NAME_KEY = "scheduling.k8s.io/group-name"
MANAGED_BY = ("app.kubernetes.io/managed-by", "jobwarden")
DEFAULT_SCHEDULER = "default-scheduler"
TIMEOUT = 60.0
CONFLICT_ATTEMPTS = 20

Body = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Bodies.


def seed_request() -> Body:
    """The seed's PUT request body as it is (metadata.namespace `cci-gpu`, a 2019 resourceVersion,
    `status` and all)."""
    return load_seed(SEED)


def task(body: Body, name: str) -> Body:
    found: Body = next(t for t in body["spec"]["tasks"] if t["name"] == name)
    return found


def container(body: Body, task_name: str) -> Body:
    found: Body = task(body, task_name)["template"]["spec"]["containers"][0]
    return found


def seed_job(namespace: str, workers: int = 1, ttl: int | None = None) -> Body:
    """The seed body as a user creates it: server fields stripped, `mpiworker` replicas `workers`,
    and `ttlSecondsAfterFinished` when given (the seed has none; it may be set only at creation)."""
    body = creatable(seed_request(), namespace)
    task(body, "mpiworker")["replicas"] = workers
    if ttl is not None:
        body["spec"]["ttlSecondsAfterFinished"] = ttl
    return body


def small_job(
    namespace: str,
    name: str,
    replicas: int,
    *,
    min_available: int | None = None,
    policies: list[Body] | None = None,
    max_retry: int | None = None,
    plugins: bool = True,
    ttl: int | None = None,
) -> Body:
    """A one-task job built from the seed: the `mpiworker` task renamed `worker`, with `replicas`;
    job-level `policies` (the seed's own task policy is on `mpimaster`, which is dropped)."""
    body = creatable(seed_request(), namespace)
    body["metadata"]["name"] = name
    worker = copy.deepcopy(task(body, "mpiworker"))
    worker.update(name="worker", replicas=replicas)
    spec = body["spec"]
    spec["tasks"] = [worker]
    spec["minAvailable"] = replicas if min_available is None else min_available
    if not plugins:
        spec.pop("plugins")
    for key, value in (("policies", policies), ("maxRetry", max_retry), ("ttlSecondsAfterFinished", ttl)):
        if value is not None:
            spec[key] = value
    return body


# ---------------------------------------------------------------------------------------------
# Reading.


def as_body(obj: object) -> Body:
    """A custom object as the client returns it (a dict)."""
    assert isinstance(obj, dict), type(obj)
    return dict(obj)


def phase_of(job: Body | None) -> str | None:
    if job is None:
        return None
    return ((job.get("status") or {}).get("state") or {}).get("phase")


def condition_phases(job: Body) -> list[str]:
    return [c["status"] for c in (job.get("status") or {}).get("conditions") or []]


def env_of(pod: Any) -> list[tuple[str, Any]]:
    """(name, value or configMapKeyRef (name, key)) of the first container's env, in order."""
    entries = []
    for env in pod.spec.containers[0].env or []:
        ref = env.value_from.config_map_key_ref if env.value_from else None
        entries.append((env.name, (ref.name, ref.key) if ref else env.value))
    return entries


def parse_time(text: str) -> float:
    """An RFC 3339 timestamp as a `time.time()` value."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def sleep_until_wall(moment: float) -> None:
    """Sleep until the `time.time()` instant `moment`: only to prove something does NOT happen."""
    time.sleep(max(0.0, moment - time.time()))


# ---------------------------------------------------------------------------------------------
# One job in the cluster.


@dataclass
class VolcanoJob:
    name: str
    namespace: str
    cluster: Cluster
    core: client.CoreV1Api
    custom: client.CustomObjectsApi
    operator_log: Callable[[], str]

    # -- the job ---------------------------------------------------------------------------------

    def get(self) -> Body | None:
        try:
            return as_body(
                self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def body(self) -> Body:
        job = self.get()
        assert job is not None, f"Volcano Job {self.namespace}/{self.name} is gone"
        return job

    def status(self) -> Body:
        return dict(self.body().get("status") or {})

    def wait(self, check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
        """`wait_for`, with the operator's log lines about this namespace added when it times out."""
        try:
            return wait_for(check, timeout, what=f"{what} (Volcano Job {self.namespace}/{self.name})")
        except AssertionError as exc:
            lines = [line for line in self.operator_log().splitlines() if self.namespace in line]
            raise AssertionError(
                f"{exc}\n-- operator log about {self.namespace}:\n" + "\n".join(lines[-30:])
            ) from None

    def wait_phase(self, *phases: str, timeout: float = TIMEOUT) -> Body:
        """Wait until `status.state.phase` is one of `phases`; returns the job body."""

        def reached() -> Body | None:
            job = self.body()
            return job if phase_of(job) in phases else None

        return dict(self.wait(reached, f"phase in {phases}", timeout))

    def wait_status(self, check: Callable[[Body], bool], what: str, timeout: float = TIMEOUT) -> Body:
        def holds() -> Body | None:
            job = self.body()
            return job if check(dict(job.get("status") or {})) else None

        return dict(self.wait(holds, what, timeout))

    def wait_deleted(self, timeout: float = TIMEOUT) -> None:
        self.wait(lambda: self.get() is None, "the job to be deleted", timeout)

    def history(self, since_resource_version: str, seconds: int = 2) -> list[Body]:
        """Every version of the job written after `since_resource_version`, from a watch: shows
        transient phases (Inqueue, Restarting, Completing) that polling could miss."""
        stream = (
            cast(Any, watch)
            .Watch()
            .stream(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                field_selector=f"metadata.name={self.name}",
                resource_version=since_resource_version,
                timeout_seconds=seconds,
            )
        )
        return [dict(event["object"]) for event in stream if event["type"] in ("ADDED", "MODIFIED")]

    def phases_since(self, since_resource_version: str) -> list[str]:
        """The phases the job went through after `since_resource_version`, repeats collapsed."""
        phases: list[str] = []
        for version in self.history(since_resource_version):
            phase = phase_of(version)
            if phase and (not phases or phases[-1] != phase):
                phases.append(phase)
        return phases

    def replace(self, body: Body) -> Body:
        """PUT `body` (e.g. the seed request body, status and all) to the job's URL, pointed at this
        job: its namespace and the current resourceVersion. The operator writes `/status`, which moves
        the resourceVersion, so an optimistic-lock 409 from the apiserver is retried with a fresh one."""
        for _ in range(CONFLICT_ATTEMPTS):
            try:
                return self.try_replace(body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
        raise AssertionError(f"PUT of {self.name} kept conflicting")

    def try_replace(self, body: Body) -> Body:
        new = copy.deepcopy(body)
        new["metadata"].update(
            namespace=self.namespace, resourceVersion=self.body()["metadata"]["resourceVersion"]
        )
        return as_body(
            self.custom.replace_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name, new
            )
        )

    def refused(self, change: Callable[[Body], object]) -> ApiException:
        """Apply `change` to the current body and PUT it; returns the refusal (ApiException).
        Only a conflict from the apiserver's optimistic lock is retried, never a webhook answer."""
        for _ in range(CONFLICT_ATTEMPTS):
            new = self.body()
            change(new)
            try:
                self.custom.replace_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, self.name, new
                )
            except ApiException as exc:
                if exc.status == 409 and "the object has been modified" in str(exc.body):
                    continue
                return exc
            raise AssertionError("the update was accepted")
        raise AssertionError(f"PUT of {self.name} kept conflicting")

    # -- children --------------------------------------------------------------------------------

    def pod_name(self, task_name: str, index: int) -> str:
        return f"{self.name}-{task_name}-{index}"

    def pods(self) -> dict[str, Any]:
        """The job's pods by name (V1Pod), terminating ones included."""
        found = self.core.list_namespaced_pod(self.namespace, label_selector=f"{JOB_NAME_LABEL}={self.name}")
        items: list[Any] = found.items
        return {p.metadata.name: p for p in items}

    def wait_pods_running(self, *names: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Wait until exactly the pods `names` exist and run (none terminating); returns them."""
        wanted = set(names)

        def running() -> dict[str, Any] | None:
            found = self.pods()
            ok = set(found) == wanted and all(
                p.status.phase == "Running" and not p.metadata.deletion_timestamp for p in found.values()
            )
            return found if ok else None

        return dict(self.wait(running, f"exactly pods {sorted(wanted)} Running", timeout))

    def finish(self, task_name: str, index: int, exit_code: int = 0) -> None:
        devpods.finish(self.cluster, self.namespace, self.pod_name(task_name, index), exit_code)

    def _read(self, reader: Callable[..., Any], name: str) -> Any:
        try:
            return reader(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def service(self) -> Any:
        return self._read(self.core.read_namespaced_service, self.name)

    def configmap(self) -> Any:
        return self._read(self.core.read_namespaced_config_map, f"{self.name}-svc")

    def secret(self) -> Any:
        return self._read(self.core.read_namespaced_secret, f"{self.name}-ssh")

    def hostfile(self, task_name: str = "mpiworker") -> list[str]:
        cm = self.configmap()
        return str((cm.data or {}).get(f"{task_name}.host", "")).split("\n") if cm else []

    def secrets(self) -> list[str]:
        items: list[Any] = self.core.list_namespaced_secret(self.namespace).items
        return [s.metadata.name for s in items]

    # -- events ----------------------------------------------------------------------------------

    def events(self) -> list[Any]:
        """core/v1 Events about the job (V1Event), oldest first."""
        found = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={self.name}"
        )
        return [e for e in found.items if e.involved_object.kind == "Job"]

    def wait_event(self, reason: str) -> Any:
        return self.wait(
            lambda: next((e for e in self.events() if e.reason == reason), None), f"event {reason}"
        )


def create(
    cluster: Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator_log: Callable[[], str],
    body: Body,
) -> VolcanoJob:
    """`kubectl create` the body (through the admission webhook) and return a handle on the job."""
    cluster.kubectl("create", "-f", "-", input=json.dumps(body))
    meta = body["metadata"]
    return VolcanoJob(meta["name"], meta["namespace"], cluster, core, custom, operator_log)


def message_of(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


NewJob = Callable[[Body], "VolcanoJob"]
