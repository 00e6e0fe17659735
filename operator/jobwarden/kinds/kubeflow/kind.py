"""The decision core shared by the Kubeflow v1 kinds (`kubeflow.org/v1`): TFJob, PyTorchJob, MXJob,
XGBoostJob, PaddleJob, JAXJob.

`KubeflowKind` implements the `JobKind` protocol once. Each framework module (`tfjob`, `pytorchjob`,
`mxjob`, `xgboostjob`, `paddlejob`, `jaxjob`) builds one from what differs between them: the API
resource, the spec shape, the env its framework reads, the rule saying when the job runs and
succeeds, which pods carry the master role, the default cleanPodPolicy and the status key of the
replica counts.

A plan, like upstream's reconcile (training-operator `ReconcileJobs`, spec §5.3):
1. marks the job Created and sets `status.startTime` on the first pass;
2. a finished job (Succeeded or Failed) only gets its cleanPodPolicy applied and its TTL timed;
3. otherwise it counts the pods, then decides, first match wins: the kind's success rule says
   Succeeded; a pod failed for good (restartPolicy Never, or ExitCode with an exit code below 128);
   `activeDeadlineSeconds` passed; `backoffLimit` reached. Any of these finishes the job
   (completionTime, cleanPodPolicy). If none, failed pods that may retry are deleted (recreated
   under the same name on the next pass), missing pods and services are created, pods and services
   above `replicas` are deleted, and Running is set when the kind's rule says so;
4. `wake_at` is the deadline while running, the TTL expiry once finished.

Every decision reads only the observation and the timestamps in `status`, so planning the same
observation twice changes nothing the second time.

Choices where upstream differs between versions, or is wrong (spec §8), made on purpose:
- Default cleanPodPolicy: the 2019 operators' defaults the seeds come from, TFJob `Running`,
  PyTorchJob `None`, MXJob `All` (current upstream: `None` for all three).
- cleanPodPolicy is honoured on every way a job finishes, the backoff limit included (upstream
  v1.7+ deletes everything there, §8 item 3). A passed deadline also stops the Running and Pending
  pods whatever the policy: nothing of the job may run past its deadline.
- backoffLimit counts kubelet's in-place restarts of Running pods of restartable replicas (as
  upstream) plus the failed pods the operator deleted to recreate them, kept in `status.restarts`
  (omitted while 0). Upstream ignores re-creations, so retryable ExitCode failures looped forever
  (§8 item 4). The job fails on the failure that makes the total reach the limit (limit 0: the
  first), the same count of failures upstream tolerates from in-place restarts. If the pod cache
  lags the job's, a deleted pod may be seen failed once more and counted twice: the error is on
  the side of stopping early.
- Retryable exit codes: 128 and above (current upstream), including the sentinel 0xbeef used when
  the framework container never terminated (evicted pod).
- MXJob: a failed pod under OnFailure/Always is recreated like in the other kinds (upstream R17
  fails the job, §8 item 7); the master role goes to the Scheduler pod, not to every Server pod;
  without a Scheduler, the Workers (else the Tuners) decide success, so MXTune jobs can succeed.
- The success rule is checked before failures: a job whose deciding replicas finished is Succeeded
  even if, in the same pass, a pod being shut down around them failed.
- A terminating pod (with `metadata.deletionTimestamp`) counts neither active nor failed, and its
  name is not reused until it is gone.
- When the job finishes, `active` counts are retired: added to `succeeded` on success (upstream),
  dropped on failure.
- The replica-failure message is `<Kind> <name> has failed because <k> <Type> replica(s) failed.`
  for every kind; Running is `<Kind> <name> is running.` as in the seeds.
- `runPolicy.suspend` (training-operator v1.7+): a suspended job has no pods, services or PodGroup
  (whatever the cleanPodPolicy), its `active` counts are dropped, Running (or Restarting) stops
  holding and `Suspended` holds; resuming sets `Suspended` False and resets `startTime`, so the active
  deadline counts from the resume. The seeds' update contract does not let `suspend` change unless the
  operator runs with `--allow-suspend-updates` (validation.py).
- Gang scheduling by Volcano with `--gang-scheduler=volcano`: see `gang.py`.
- `runPolicy.managedBy` naming another controller (Kueue's MultiKueue, v1.9): the job gets no plan at
  all, not even a status, as upstream.
- Env: a variable the user set on a container keeps the user's value and the framework's is not added
  (upstream appends its own after the user's, so the list holds both and the later one wins).
- The framework's default port goes to the container named after the framework, else the first, and
  the env that names a port (MASTER_PORT, COORDINATOR_PORT, PADDLE_MASTER, ...) reads it from that
  same container, so the two always agree.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobwarden.core.admission import UpdateContract
from jobwarden.core.children import child_metadata, manifest
from jobwarden.core.fielderrors import FieldError
from jobwarden.core.plan import Body, ChildRef, Manifest, Observed, Plan
from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow.gang import decorate_pod, gang_scheduled
from jobwarden.kinds.kubeflow.job import (
    JOB_NAME_LABEL,
    JOB_ROLE_LABEL,
    OPERATOR_NAME_LABEL,
    REPLICA_INDEX_LABEL,
    REPLICA_TYPE_LABEL,
    EnvBuilder,
    EnvValue,
    InitContainers,
    KubeflowJob,
    PodSlot,
    Port,
    Progress,
    ProgressRule,
    Replica,
    Tally,
    compact_json,
    framework_container,
    leading_type,
    led_by,
    managed_elsewhere,
    no_init_containers,
    replica_progress,
)
from jobwarden.kinds.kubeflow.plan import plan_job
from jobwarden.kinds.kubeflow.validation import (
    KUBEFLOW_UPDATABLE,
    KUBEFLOW_UPDATABLE_WITH_SUSPEND,
    KubeflowShape,
    canonical_replica_type,
    check_kubeflow_update,
    kubeflow_contract,
    validate_kubeflow,
)

# ---------------------------------------------------------------------------------------------
# The kind.


@dataclass(eq=False)
class KubeflowKind:
    """A Kubeflow job kind; see the module docstring for what it decides and how."""

    resource: Resource
    shape: KubeflowShape
    operator_name: str  # value of training.kubeflow.org/operator-name, e.g. `tfjob-controller`
    default_port: Port
    status_key: str  # where replica counts go: `replicaStatuses`, or the old MXJob `mxReplicaStatuses`
    default_clean_pod_policy: str
    progress: ProgressRule
    build_env: EnvBuilder
    env_in_every_container: bool  # else only into the first container named after the framework
    job_name_label: str = JOB_NAME_LABEL
    child_events: bool = True  # the training-operator's pod and service control post them
    # Init containers the framework adds after the template's own (PyTorch's init-pytorch).
    init_containers: InitContainers = no_init_containers
    # The types whose pods carry `job-role=master` when the job has one of them (else Worker-0);
    # None: the shape's single-master types. Paddle's Masters are its parameter servers, any number.
    master_types: tuple[str, ...] | None = None
    # The update contract's table: the seeds' (KUBEFLOW_UPDATABLE) unless the operator allows suspend
    # updates (`allowing_suspend_updates`).
    updatable: tuple[str, ...] = KUBEFLOW_UPDATABLE

    def validate(self, job: Body) -> list[FieldError]:
        return validate_kubeflow(self.shape, job)

    def check_update(self, old: Body, new: Body) -> list[FieldError]:
        return check_kubeflow_update(self.shape, old, new, self.updatable)

    def updatable_fields(self) -> list[str]:
        return list(self.updatable)

    def update_contract(self) -> UpdateContract:
        return kubeflow_contract(self.shape, self.updatable)

    def allowing_suspend_updates(self) -> KubeflowKind:
        """This kind with `spec.runPolicy.suspend` added to its update contract."""
        return dataclasses.replace(self, updatable=KUBEFLOW_UPDATABLE_WITH_SUSPEND)

    def phase(self, status: Mapping[str, Any] | None) -> str:
        """The STATE printer column: the type of the last condition, if it holds."""
        conditions = (status or {}).get("conditions") or []
        last = conditions[-1] if conditions else {}
        return str(last.get("type", "")) if last.get("status") == "True" else ""

    def plan(self, observed: Observed) -> Plan:
        if managed_elsewhere(observed.job):
            return Plan()
        return plan_job(self, observed)

    def materialize(self, manifest: Manifest) -> Manifest:
        return manifest  # every child is complete in the plan

    def unwatched_children(self, job: Body) -> list[ChildRef]:
        return []  # pods, services and PodGroups: all watched

    # -- reading ------------------------------------------------------------------------------

    def read_job(self, body: Body) -> KubeflowJob:
        specs = (body.get("spec") or {}).get(self.shape.replica_specs_field) or {}
        found: dict[str, Replica] = {}
        for key, replica_spec in specs.items():
            rtype = canonical_replica_type(self.shape, key)
            if rtype is not None and rtype not in found:
                found[rtype] = self._replica(rtype, replica_spec)
        ordered = {rtype: found[rtype] for rtype in self.shape.replica_types if rtype in found}
        return KubeflowJob(body, self.shape, self.default_port, ordered)

    def _replica(self, rtype: str, spec: Mapping[str, Any]) -> Replica:
        template = spec.get("template") or {}
        count = spec.get("replicas")
        policy = (
            spec.get("restartPolicy")
            or (template.get("spec") or {}).get("restartPolicy")
            or self.shape.default_restart_policy
        )
        return Replica(rtype, 1 if count is None else int(count), template, str(policy), spec)

    # -- children -----------------------------------------------------------------------------

    def replica_labels(self, slot: PodSlot) -> dict[str, str]:
        """The labels a service selects its pod by (the pod's operator labels minus the role)."""
        return {
            OPERATOR_NAME_LABEL: self.operator_name,
            JOB_NAME_LABEL: slot.job.name,
            REPLICA_TYPE_LABEL: slot.replica.slug,
            REPLICA_INDEX_LABEL: str(slot.index),
        }

    def is_master(self, slot: PodSlot) -> bool:
        """The pods of the job's master types (TF Chief/Master, PyTorch/XGBoost/Paddle Master, MX
        Scheduler), else Worker-0."""
        types = self.shape.single_master_types if self.master_types is None else self.master_types
        if leading_type(slot.job, types) is not None:
            return slot.replica.type in types
        return slot.replica.type == "Worker" and slot.index == 0

    def pod_labels(self, slot: PodSlot) -> dict[str, str]:
        role = {JOB_ROLE_LABEL: "master"} if self.is_master(slot) else {}
        return {**self.replica_labels(slot), **role}

    def pod_manifest(self, slot: PodSlot) -> Manifest:
        template = copy.deepcopy(dict(slot.replica.template))
        template_meta = template.get("metadata") or {}
        spec = template.get("spec") or {}
        container = framework_container(template, self.shape.container_name)
        if container is not None:
            container["ports"] = slot.job.ports(slot.replica.type)
        self._inject_env(slot, spec.get("containers") or [])
        added = self.init_containers(slot)
        if added:
            spec["initContainers"] = [*(spec.get("initContainers") or []), *added]
        spec["restartPolicy"] = slot.replica.pod_restart_policy
        labels = {**(template_meta.get("labels") or {}), **self.pod_labels(slot)}
        metadata = child_metadata(slot.job.body, slot.name, labels, template_meta.get("annotations"))
        if template_meta.get("finalizers"):
            metadata["finalizers"] = template_meta["finalizers"]
        pod = manifest("v1", "Pod", metadata, spec=spec)
        if gang_scheduled(slot.settings):
            decorate_pod(pod, slot.replica.type, slot.job)
        return pod

    def service_manifest(self, slot: PodSlot) -> Manifest:
        labels = self.replica_labels(slot)
        ports = [
            {"name": p.get("name") or f"port-{p['containerPort']}", "port": p["containerPort"]}
            for p in slot.job.ports(slot.replica.type)
        ]
        spec = {"clusterIP": "None", "selector": labels, "ports": ports}
        return manifest("v1", "Service", child_metadata(slot.job.body, slot.name, labels), spec=spec)

    def _inject_env(self, slot: PodSlot, containers: list[dict[str, Any]]) -> None:
        env = self.build_env(slot)
        if not env:
            return
        targets = containers
        if not self.env_in_every_container:
            targets = [c for c in containers if c.get("name") == self.shape.container_name][:1]
        for container in targets:
            own = container.get("env") or []
            # The user's own value of a variable wins over ours.
            taken = {e.get("name") for e in own}
            container["env"] = [*own, *(_env_var(k, v) for k, v in env.items() if k not in taken)]


def _env_var(name: str, value: EnvValue) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": name, "value": value}
    return {"name": name, **copy.deepcopy(dict(value))}  # every pod's manifest owns its valueFrom


__all__ = [
    "JOB_ROLE_LABEL",
    "KubeflowJob",
    "KubeflowKind",
    "PodSlot",
    "Port",
    "Progress",
    "Replica",
    "Tally",
    "compact_json",
    "leading_type",
    "led_by",
    "replica_progress",
]
