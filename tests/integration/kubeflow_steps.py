"""Step helpers for the Kubeflow lifecycle tests: what differs between TFJob, PyTorchJob and MXJob
(`KubeflowKind`), editing seed bodies (`replica_spec`, `with_run_policy`), and a handle on one job in
the real cluster (`Job`) that reads it, its pods, services and events, and waits on them.

Every read goes to the kube-apiserver (the `kubernetes` sync client, or `kubectl`); nothing is cached.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devcluster import pods as devpods
from devcluster.cluster import Cluster
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from testlib import wait_for

GROUP, VERSION = "kubeflow.org", "v1"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"
OPERATOR_NAME_LABEL = "training.kubeflow.org/operator-name"
JOB_ROLE_LABEL = "training.kubeflow.org/job-role"
RUN_POLICY_FIELDS = ("cleanPodPolicy", "ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit")
# Where the run-policy fields go: the seeds' top level of `spec`, or current Kubeflow's `spec.runPolicy`.
LAYOUTS = ("top", "runPolicy")
TIMEOUT = 30.0
# The controller-manager's garbage collector finds resources by discovery every 30 s. The `cluster`
# fixture installs the CRDs after it started, so on a fresh cluster the children of a job deleted in
# its first ~30 s go only after the next discovery (measured: 40 s).
GC_TIMEOUT = 90.0


@dataclass(frozen=True)
class KubeflowKind:
    """One Kubeflow kind as its seed shows it. `replicas` are (status key, pod-name slug) pairs, one
    replica of each in the seeds; `decider` is the pod whose success finishes the job and `master` the
    one labelled job-role=master."""

    kind: str
    plural: str
    seed: str
    specs_field: str
    status_key: str
    container: str
    operator_name: str
    port_name: str
    port: int
    replicas: tuple[tuple[str, str], ...]
    decider: str
    master: str
    # The pods when the body has more than one replica of a type (the examples' Paddle and JAX Workers).
    pod_slots: tuple[str, ...] = ()

    @property
    def slots(self) -> list[str]:
        """The pod-name suffixes of the seed's pods, e.g. `ps-0`, `worker-0`."""
        return list(self.pod_slots) or [f"{slug}-0" for _, slug in self.replicas]

    @property
    def resource(self) -> str:
        return f"{self.plural}.{GROUP}"

    def __str__(self) -> str:
        return self.kind


TF = KubeflowKind(
    kind="TFJob",
    plural="tfjobs",
    seed="tfjob-put.request.json",
    specs_field="tfReplicaSpecs",
    status_key="replicaStatuses",
    container="tensorflow",
    operator_name="tfjob-controller",
    port_name="tfjob-port",
    port=2222,
    replicas=(("PS", "ps"), ("Worker", "worker")),
    decider="worker-0",  # no Chief/Master: Worker-0 decides and carries the master role
    master="worker-0",
)
PYTORCH = KubeflowKind(
    kind="PyTorchJob",
    plural="pytorchjobs",
    seed="pytorchjob-put.request.json",
    specs_field="pytorchReplicaSpecs",
    status_key="replicaStatuses",
    container="pytorch",
    operator_name="pytorchjob-controller",
    port_name="pytorchjob-port",
    port=23456,
    replicas=(("Master", "master"), ("Worker", "worker")),
    decider="master-0",
    master="master-0",
)
MX = KubeflowKind(
    kind="MXJob",
    plural="mxjobs",
    seed="mxjob-put.request.json",
    specs_field="mxReplicaSpecs",
    status_key="mxReplicaStatuses",
    container="mxnet",
    operator_name="mxjob-controller",
    port_name="mxjob-port",
    port=9091,
    replicas=(("Scheduler", "scheduler"), ("Server", "server"), ("Worker", "worker")),
    decider="scheduler-0",
    master="scheduler-0",
)
KINDS = (TF, PYTORCH, MX)
# The kinds training-operator v1.9.4 added; no seed shows them, so their bodies are the demo's
# (`devcluster/examples/`, read by `example_body`).
XGBOOST = KubeflowKind(
    kind="XGBoostJob",
    plural="xgboostjobs",
    seed="xgboostjob.json",
    specs_field="xgbReplicaSpecs",
    status_key="replicaStatuses",
    container="xgboost",
    operator_name="xgboostjob-controller",
    port_name="xgboostjob-port",
    port=9991,  # the example's own port
    replicas=(("Master", "master"), ("Worker", "worker")),
    decider="master-0",
    master="master-0",
)
PADDLE = KubeflowKind(
    kind="PaddleJob",
    plural="paddlejobs",
    seed="paddlejob.json",
    specs_field="paddleReplicaSpecs",
    status_key="replicaStatuses",
    container="paddle",
    operator_name="paddlejob-controller",
    port_name="master",
    port=37777,
    replicas=(("Worker", "worker"),),
    decider="worker-0",  # with worker-1: collective mode needs every Worker
    master="worker-0",
    pod_slots=("worker-0", "worker-1"),
)
JAX = KubeflowKind(
    kind="JAXJob",
    plural="jaxjobs",
    seed="jaxjob.json",
    specs_field="jaxReplicaSpecs",
    status_key="replicaStatuses",
    container="jax",
    operator_name="jaxjob-controller",
    port_name="jaxjob-port",
    port=6666,
    replicas=(("Worker", "worker"),),
    decider="worker-0",
    master="worker-0",
    pod_slots=("worker-0", "worker-1"),
)
V194_KINDS = (XGBOOST, PADDLE, JAX)
EXAMPLES = Path(__file__).resolve().parents[2] / "devcluster" / "examples"


def example_body(kind: KubeflowKind, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / kind.seed).read_text())
    body["metadata"]["namespace"] = namespace
    return body


# ---------------------------------------------------------------------------------------------
# Editing seed bodies.


def replica_spec(body: dict[str, Any], kind: KubeflowKind, replica_type: str) -> dict[str, Any]:
    """The replica spec of `replica_type` whatever its key's case (the TF seed says `Ps`)."""
    specs: dict[str, Any] = body["spec"][kind.specs_field]
    key = next(k for k in specs if k.lower() == replica_type.lower())
    found: dict[str, Any] = specs[key]
    return found


def with_run_policy(body: dict[str, Any], layout: str, fields: dict[str, Any]) -> dict[str, Any]:
    """`body` (changed in place and returned) with `fields` set in `layout`. For the `runPolicy`
    layout the seed's own top-level run-policy fields move there too, so only one layout is used."""
    spec = body["spec"]
    if layout == "top":
        spec.update(fields)
        return body
    assert layout == "runPolicy", layout
    nested = spec.setdefault("runPolicy", {})
    for key in RUN_POLICY_FIELDS:
        if key in spec:
            nested[key] = spec.pop(key)
    nested.update(fields)
    return body


# ---------------------------------------------------------------------------------------------
# Reading conditions.


def condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The condition of `type_` if it holds (status True)."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def env_of(pod: Any, container: str) -> dict[str, str]:
    found = next(c for c in pod.spec.containers if c.name == container)
    return {e.name: e.value for e in found.env or []}


# ---------------------------------------------------------------------------------------------
# One job in the cluster.


@dataclass
class Job:
    kind: KubeflowKind
    name: str
    namespace: str
    cluster: Cluster
    core: client.CoreV1Api
    custom: client.CustomObjectsApi
    operator_log: Callable[[], str]

    # -- the job ---------------------------------------------------------------------------------

    def get(self) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, self.namespace, self.kind.plural, self.name
            )
            return found
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def body(self) -> dict[str, Any]:
        job = self.get()
        assert job is not None, f"{self.kind} {self.namespace}/{self.name} is gone"
        return job

    def status(self) -> dict[str, Any]:
        return dict(self.body().get("status") or {})

    def pod_name(self, slot: str) -> str:
        return f"{self.name}-{slot}"

    def wait(self, check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
        """`wait_for`, with the operator's log lines about this namespace added when it times out."""
        try:
            return wait_for(check, timeout, what=f"{what} ({self.kind} {self.namespace}/{self.name})")
        except AssertionError as exc:
            lines = [line for line in self.operator_log().splitlines() if self.namespace in line]
            log = "\n".join(lines[-30:])
            raise AssertionError(f"{exc}\n-- operator log about {self.namespace}:\n{log}") from exc

    def wait_condition(self, type_: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Wait until condition `type_` holds; returns the job body."""

        def holds() -> dict[str, Any] | None:
            job = self.body()
            return job if condition(job, type_) else None

        return dict(self.wait(holds, f"condition {type_}", timeout))

    def wait_deleted(self, timeout: float = TIMEOUT) -> None:
        self.wait(lambda: self.get() is None, "the job to be deleted", timeout)

    def merge_patch(self, patch: dict[str, Any]) -> None:
        self.cluster.kubectl(
            "patch",
            self.kind.resource,
            self.name,
            "-n",
            self.namespace,
            "--type=merge",
            "-p",
            json.dumps(patch),
        )

    def replace(self, body: dict[str, Any]) -> None:
        """`kubectl replace` with `body` (e.g. a seed request body, status and all), pointed at this
        job: its namespace, and the current resourceVersion and uid."""
        current = self.body()["metadata"]
        new = copy.deepcopy(body)
        new["metadata"].update(
            namespace=self.namespace, resourceVersion=current["resourceVersion"], uid=current["uid"]
        )
        self.cluster.kubectl("replace", "-f", "-", input=json.dumps(new))

    def history(self, since_resource_version: str, seconds: int = 2) -> list[dict[str, Any]]:
        """Every version of the job written after `since_resource_version`, from a watch: shows
        transient states (e.g. a Restarting condition) that polling could miss."""
        stream = watch_events(
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            self.kind.plural,
            field_selector=f"metadata.name={self.name}",
            resource_version=since_resource_version,
            timeout_seconds=seconds,
        )
        return [dict(event["object"]) for event in stream if event["type"] in ("ADDED", "MODIFIED")]

    # -- children --------------------------------------------------------------------------------

    def pods(self) -> dict[str, Any]:
        """The job's pods by name (V1Pod), terminating ones included."""
        found: Any = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{JOB_NAME_LABEL}={self.name}"
        )
        return {p.metadata.name: p for p in found.items}

    def services(self) -> dict[str, Any]:
        found: Any = self.core.list_namespaced_service(
            self.namespace, label_selector=f"{JOB_NAME_LABEL}={self.name}"
        )
        return {s.metadata.name: s for s in found.items}

    def child_history(self, since_resource_version: str, seconds: int = 2) -> list[tuple[str, str, str]]:
        """(watch event type, kind, name) for every Pod and Service of the job added or deleted since
        `since_resource_version`: proves a child was made once and never replaced."""
        seen: list[tuple[str, str, str]] = []
        for child_kind, lister in (
            ("Pod", self.core.list_namespaced_pod),
            ("Service", self.core.list_namespaced_service),
        ):
            stream = watch_events(
                lister,
                self.namespace,
                label_selector=f"{JOB_NAME_LABEL}={self.name}",
                resource_version=since_resource_version,
                timeout_seconds=seconds,
            )
            seen += [
                (event["type"], child_kind, event["object"].metadata.name)
                for event in stream
                if event["type"] in ("ADDED", "DELETED")
            ]
        return seen

    def pod_phases(self) -> dict[str, str]:
        return {name: pod.status.phase for name, pod in self.pods().items()}

    def wait_pods_running(self, slots: list[str] | None = None) -> dict[str, Any]:
        """Wait until exactly the pods of `slots` (default: all of the seed's) exist and run."""
        wanted = {self.pod_name(s) for s in slots or self.kind.slots}

        def running() -> dict[str, Any] | None:
            found = self.pods()
            ok = set(found) == wanted and all(
                p.status.phase == "Running" and not p.metadata.deletion_timestamp for p in found.values()
            )
            return found if ok else None

        return dict(self.wait(running, f"pods {sorted(wanted)} Running"))

    def wait_services(self) -> dict[str, Any]:
        """Wait until exactly the services of the seed's pods exist."""
        wanted = {self.pod_name(s) for s in self.kind.slots}

        def made() -> dict[str, Any] | None:
            found = self.services()
            return found if set(found) == wanted else None

        return dict(self.wait(made, f"services {sorted(wanted)}"))

    def wait_children(self, pods: set[str], services: set[str]) -> None:
        """Wait until exactly these pods and services (by slot) are left."""
        want_pods = {self.pod_name(s) for s in pods}
        want_services = {self.pod_name(s) for s in services}
        self.wait(
            lambda: set(self.pods()) == want_pods and set(self.services()) == want_services,
            f"pods {sorted(want_pods)} and services {sorted(want_services)} left",
        )

    def wait_garbage_collected(self) -> None:
        """Wait until the garbage collector removed every pod and service of the (deleted) job."""
        self.wait(
            lambda: not self.pods() and not self.services(),
            "the garbage collector to remove the pods and services",
            GC_TIMEOUT,
        )

    def finish(self, slot: str, exit_code: int = 0) -> None:
        devpods.finish(self.cluster, self.namespace, self.pod_name(slot), exit_code)

    def restart_container(self, slot: str, exit_code: int = 1) -> int:
        return devpods.restart_container(self.cluster, self.namespace, self.pod_name(slot), exit_code)

    # -- events ----------------------------------------------------------------------------------

    def events(self) -> list[Any]:
        """core/v1 Events about the job (V1Event)."""
        found = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={self.name}"
        )
        return [e for e in found.items if e.involved_object.kind == self.kind.kind]

    def wait_events(self, *reasons: str) -> list[Any]:

        def posted() -> list[Any] | None:
            events = self.events()
            return events if set(reasons) <= {e.reason for e in events} else None

        return list(self.wait(posted, f"events {reasons}"))


def watch_events(lister: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """The events of a watch on `lister` until its `timeout_seconds` run out."""
    watcher: Any = watch.Watch  # the client's watch module is untyped
    return list(watcher().stream(lister, *args, **kwargs))


def resource_version(core: client.CoreV1Api, namespace: str) -> str:
    """The cluster's resourceVersion now (of a pod list): where `Job.child_history` starts."""
    found: Any = core.list_namespaced_pod(namespace, limit=1)
    return str(found.metadata.resource_version)


def create(
    cluster: Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator_log: Callable[[], str],
    kind: KubeflowKind,
    body: dict[str, Any],
) -> Job:
    """`kubectl create` the body (through the admission webhook) and return a handle on the job."""
    cluster.kubectl("create", "-f", "-", input=json.dumps(body))
    meta = body["metadata"]
    return Job(kind, meta["name"], meta["namespace"], cluster, core, custom, operator_log)


def sleep_until(moment: float) -> None:
    """Sleep until the `time.monotonic()` instant `moment`: only to prove something does NOT happen."""
    time.sleep(max(0.0, moment - time.monotonic()))
