"""PyTorchJob (`kubeflow.org/v1`, `pytorchjobs`): what is PyTorch's own, on top of `kubeflow.KubeflowKind`.

- Env for `torch.distributed` in every container (spec §4.2, v1.7+ values): `PYTHONUNBUFFERED=1`;
  with a Master, `MASTER_ADDR` (`<job>-master-0`, the Service of the master pod), `MASTER_PORT`,
  `WORLD_SIZE` (all replicas times processes per node), `RANK` (master 0, worker i → i+1) and their
  `PET_*` twins for torchrun; `PET_NNODES`; `PET_NPROC_PER_NODE` when `spec.nprocPerNode` is set.
- Success and Running follow the Master, else all the Workers.
- Default cleanPodPolicy `None` (every version).
"""

from __future__ import annotations

from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow import KubeflowJob, KubeflowKind, PodSlot, Port, led_by
from jobwarden.kinds.kubeflow_validation import PYTORCHJOB_SHAPE


def torch_env(slot: PodSlot) -> dict[str, str]:
    job = slot.job
    env = {"PYTHONUNBUFFERED": "1"}
    if job.has("Master"):
        env |= _rendezvous_env(slot)
    if job.spec.get("nprocPerNode") is not None:
        env["PET_NPROC_PER_NODE"] = str(job.spec["nprocPerNode"])
    env["PET_NNODES"] = str(job.total_replicas)
    return env


def _rendezvous_env(slot: PodSlot) -> dict[str, str]:
    job = slot.job
    port = str(job.port("Master"))
    address = job.pod_name("Master", 0)
    rank = str(slot.index if slot.replica.type == "Master" else job.count("Master") + slot.index)
    return {
        "MASTER_PORT": port,
        "PET_MASTER_PORT": port,
        "MASTER_ADDR": address,
        "PET_MASTER_ADDR": address,
        "WORLD_SIZE": str(job.total_replicas * _processes_per_node(job)),
        "RANK": rank,
        "PET_NODE_RANK": rank,
    }


def _processes_per_node(job: KubeflowJob) -> int:
    # `auto`, `cpu` and `gpu` are resolved by torchrun on the node; the world size then counts nodes.
    nproc = job.spec.get("nprocPerNode")
    return int(nproc) if isinstance(nproc, int) or (isinstance(nproc, str) and nproc.isdigit()) else 1


KIND = KubeflowKind(
    resource=Resource("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"),
    shape=PYTORCHJOB_SHAPE,
    operator_name="pytorchjob-controller",
    default_port=Port("pytorchjob-port", 23456),
    status_key="replicaStatuses",
    default_clean_pod_policy="None",
    progress=led_by("Master", "Worker"),
    build_env=torch_env,
    env_in_every_container=True,
)
