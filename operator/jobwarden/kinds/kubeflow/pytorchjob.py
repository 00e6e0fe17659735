"""PyTorchJob (`kubeflow.org/v1`, `pytorchjobs`): what is PyTorch's own, on top of `kubeflow.KubeflowKind`.

- Env for `torch.distributed` in every container (spec §4.2, v1.7+ values): `PYTHONUNBUFFERED=1`;
  with a Master, `MASTER_ADDR` (`<job>-master-0`, the Service of the master pod), `MASTER_PORT`,
  `WORLD_SIZE` (all replicas times processes per node), `RANK` (master 0, worker i → i+1) and their
  `PET_*` twins for torchrun; `PET_NPROC_PER_NODE` from `spec.nprocPerNode`, `auto` when unset
  (upstream's default since v1.7), elastic jobs included; `PET_NNODES`.
- With `elasticPolicy` (upstream `elastic.go`): `PET_RDZV_ENDPOINT` (`rdzvHost`, else `<job>-worker-0`;
  `rdzvPort`, else the Worker's port), `PET_RDZV_BACKEND` (default `c10d`), `PET_NNODES` as `min:max`
  (a missing bound takes the other's value, both missing the Worker count, as upstream's defaulting),
  and when set `PET_MAX_RESTARTS`, `PET_NPROC_PER_NODE` (`nProcPerNode`), `PET_RDZV_ID`,
  `PET_RDZV_CONF` (`k=v,k=v`), `PET_STANDALONE`. No HorizontalPodAutoscaler is made for
  `elasticPolicy.metrics`: it would scale through a `scale` subresource the seeds' CRD and update
  contract do not have (replicas are immutable), and there is no metrics pipeline here to test it.
- Workers of a job with a Master get the `init-pytorch` init container (upstream `initcontainer.go`):
  `nslookup <job>-master-0` every 2 s until it resolves, at most `--pytorch-init-container-max-tries`
  times; image and resources are operator settings (defaults `alpine:3.10`, upstream's resources).
- Success and Running follow the Master, else all the Workers.
- Default cleanPodPolicy `None` (every version).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from jobwarden.core.admission import as_mapping, int_errors, invalid_value, is_int, required
from jobwarden.core.fielderrors import FieldError
from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow.kind import KubeflowJob, KubeflowKind, PodSlot, Port, led_by
from jobwarden.kinds.kubeflow.validation import KubeflowShape, canonical_replica_type

PYTORCH_NPROC_WORDS: Final = ("auto", "cpu", "gpu")
DEFAULT_NPROC_PER_NODE: Final = "auto"


def pytorch_spec_errors(spec: Mapping[str, Any]) -> list[FieldError]:
    """`nprocPerNode`, and an elastic policy's Worker and replica bounds."""
    shape = PYTORCHJOB_SHAPE
    errors: list[FieldError] = []
    nproc = spec.get("nprocPerNode")
    if nproc is not None and not (
        isinstance(nproc, str) and (nproc in PYTORCH_NPROC_WORDS or nproc.isdigit())
    ):
        errors.append(invalid_value("spec.nprocPerNode", nproc, "must be auto, cpu, gpu or a whole number"))
    elastic = spec.get("elasticPolicy")
    if not isinstance(elastic, Mapping):
        return errors
    replica_keys = as_mapping(spec.get(shape.replica_specs_field))
    if not any(canonical_replica_type(shape, str(k)) == "Worker" for k in replica_keys):
        errors.append(
            required(
                f"spec.{shape.replica_specs_field}.Worker", "must be configured if elastic policy is used"
            )
        )
    if elastic.get("nProcPerNode") is not None and nproc is not None:
        errors.append(
            invalid_value(
                "spec.elasticPolicy.nProcPerNode",
                elastic["nProcPerNode"],
                "must not be used with spec.nprocPerNode",
            )
        )
    low, high = elastic.get("minReplicas"), elastic.get("maxReplicas")
    errors += int_errors("spec.elasticPolicy.minReplicas", low, 1)
    errors += int_errors("spec.elasticPolicy.maxReplicas", high, 1)
    if is_int(low) and is_int(high) and low > high:
        errors.append(
            invalid_value("spec.elasticPolicy.minReplicas", low, f"must not exceed maxReplicas ({high})")
        )
    return errors


PYTORCHJOB_SHAPE: Final = KubeflowShape(
    kind="PyTorchJob",
    replica_specs_field="pytorchReplicaSpecs",
    replica_types=("Master", "Worker"),
    container_name="pytorch",
    default_restart_policy="OnFailure",
    single_master_types=("Master",),
    # PyTorch's rendezvous needs exactly one Master (upstream: `Master.replicas` "must be 1").
    exactly_one_types=("Master",),
    spec_errors=pytorch_spec_errors,
)


def torch_env(slot: PodSlot) -> dict[str, str]:
    job = slot.job
    env = {"PYTHONUNBUFFERED": "1"}
    if job.has("Master"):
        env |= _rendezvous_env(slot)
    nproc = nproc_per_node(job)
    if nproc is not None:
        env["PET_NPROC_PER_NODE"] = nproc
    elastic = job.spec.get("elasticPolicy")
    if isinstance(elastic, Mapping):
        env |= elastic_env(job, elastic)
    else:
        env["PET_NNODES"] = str(job.total_replicas)
    return env


def nproc_per_node(job: KubeflowJob) -> str | None:
    """`spec.nprocPerNode` as upstream v1.7+ defaults it: `auto` unless set, or unless the deprecated
    `elasticPolicy.nProcPerNode` is set (which then reaches the pods as PET_NPROC_PER_NODE itself)."""
    nproc = job.spec.get("nprocPerNode")
    if nproc is not None:
        return str(nproc)
    elastic = job.spec.get("elasticPolicy")
    if isinstance(elastic, Mapping) and elastic.get("nProcPerNode") is not None:
        return None
    return DEFAULT_NPROC_PER_NODE


def elastic_env(job: KubeflowJob, elastic: Mapping[str, Any]) -> dict[str, str]:
    """torchrun's elastic settings (upstream `elastic.go`, on the defaulted elastic policy)."""
    host = elastic.get("rdzvHost") or job.pod_name("Worker", 0)
    port = elastic.get("rdzvPort")
    port = job.port("Worker") if port is None else port
    low, high = _elastic_bounds(job, elastic)
    env = {
        "PET_RDZV_ENDPOINT": f"{host}:{port}",
        "PET_RDZV_BACKEND": str(elastic.get("rdzvBackend") or "c10d"),
        "PET_NNODES": f"{low}:{high}",
    }
    if elastic.get("maxRestarts") is not None:
        env["PET_MAX_RESTARTS"] = str(elastic["maxRestarts"])
    if elastic.get("nProcPerNode") is not None:
        env["PET_NPROC_PER_NODE"] = str(elastic["nProcPerNode"])
    if elastic.get("rdzvId") is not None:
        env["PET_RDZV_ID"] = str(elastic["rdzvId"])
    if elastic.get("rdzvConf"):
        env["PET_RDZV_CONF"] = ",".join(f"{c.get('key')}={c.get('value')}" for c in elastic["rdzvConf"])
    if elastic.get("standalone"):
        env["PET_STANDALONE"] = ""
    return env


def _elastic_bounds(job: KubeflowJob, elastic: Mapping[str, Any]) -> tuple[int, int]:
    """Upstream's defaulting: a missing bound takes the other's value, both missing the Worker count."""
    low, high = elastic.get("minReplicas"), elastic.get("maxReplicas")
    workers = job.count("Worker")
    low = low if low is not None else high if high is not None else workers
    high = high if high is not None else low
    return int(low), int(high)


def init_pytorch(slot: PodSlot) -> list[dict[str, Any]]:
    """A Worker of a job with a Master waits in `init-pytorch` until the master's Service name
    resolves (upstream `initcontainer.go`; image, tries and resources are operator settings)."""
    if slot.replica.type != "Worker" or not slot.job.has("Master"):
        return []
    settings = slot.settings
    master = slot.job.pod_name("Master", 0)
    script = (
        f"err=1;for i in $(seq {settings.pytorch_init_max_tries}); do if nslookup {master}; "
        "then err=0 && break; fi;echo waiting for master; sleep 2; done; exit $err"
    )
    resources: dict[str, dict[str, str]] = {}
    for key, value in settings.pytorch_init_resources:
        section, _, name = key.partition(".")
        resources.setdefault(section, {})[name] = value
    return [
        {
            "name": "init-pytorch",
            "image": settings.pytorch_init_image,
            "imagePullPolicy": "IfNotPresent",
            "resources": resources,
            "command": ["sh", "-c", script],
        }
    ]


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
    init_containers=init_pytorch,
)
