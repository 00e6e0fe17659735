"""JAXJob (`kubeflow.org/v1`, `jaxjobs`): what is JAX's own, on top of `kind.KubeflowKind`
(training-operator v1.9.4 `pkg/controller.v1/jax`, `jax_defaults.go`, `webhooks/jax`).

- One type, Worker; container `jax`, port `jaxjob-port` 6666; restartPolicy `Never`; cleanPodPolicy
  `None`.
- Env in every container, in upstream's order (`envvar.go` setPodEnv, pinned by its
  `envvar_test.go`): `PYTHONUNBUFFERED=1`, `COORDINATOR_PORT` (Worker-0's port),
  `COORDINATOR_ADDRESS` (`<job>-worker-0`, the host only), `NUM_PROCESSES` (every replica),
  `PROCESS_ID` (the Worker's index): what `jax.distributed.initialize()` needs.
- Admission: as the other Kubeflow kinds (upstream's JAX webhook checks neither runPolicy nor
  updates; here the family's update contract and managedBy values apply, docs/behaviour.md).
- Success when every Worker succeeded; Running while one runs; Worker-0 carries `job-role=master`.
"""

from __future__ import annotations

from typing import Final

from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow.kind import KubeflowKind, PodSlot, Port, led_by
from jobwarden.kinds.kubeflow.validation import KubeflowShape

JAXJOB_SHAPE: Final = KubeflowShape(
    kind="JAXJob",
    replica_specs_field="jaxReplicaSpecs",
    replica_types=("Worker",),
    container_name="jax",
    default_restart_policy="Never",
    single_master_types=(),
)


def jax_env(slot: PodSlot) -> dict[str, str]:
    job = slot.job
    return {
        "PYTHONUNBUFFERED": "1",
        "COORDINATOR_PORT": str(job.port("Worker")),
        "COORDINATOR_ADDRESS": job.pod_name("Worker", 0),
        "NUM_PROCESSES": str(job.total_replicas),
        "PROCESS_ID": str(slot.index),
    }


KIND = KubeflowKind(
    resource=Resource("kubeflow.org", "v1", "jaxjobs", "JAXJob"),
    shape=JAXJOB_SHAPE,
    operator_name="jaxjob-controller",
    default_port=Port("jaxjob-port", 6666),
    status_key="replicaStatuses",
    default_clean_pod_policy="None",
    progress=led_by("Worker"),
    build_env=jax_env,
    env_in_every_container=True,
)
