"""PaddleJob (`kubeflow.org/v1`, `paddlejobs`): what is PaddlePaddle's own, on top of
`kind.KubeflowKind` (training-operator v1.9.4 `pkg/controller.v1/paddlepaddle`,
`paddlepaddle_defaults.go`, `webhooks/paddlepaddle`).

- Types Master and Worker; container `paddle`, port `master` 36543; restartPolicy `OnFailure`;
  cleanPodPolicy `None`. `elasticPolicy` is stored and, as upstream, not acted on.
- Env in every container, in upstream's order (`envvar.go` setPodEnv): `PYTHONUNBUFFERED=1`,
  `PADDLE_JOB_ID` (the job's name), `PADDLE_NNODES` (every replica), then
  - collective mode (no Master): Worker-0 gets `POD_IP_DUMMY` (its own pod IP, a fieldRef) and
    `PADDLE_MASTER=$(POD_IP_DUMMY):<port>`, the other Workers `PADDLE_MASTER=<job>-worker-0:<port>`,
    with the Workers' port;
  - parameter-server mode (a Master): the same with Master-0 and the Master's port in every pod, plus
    `PADDLE_SERVER_NUM=1` in Master pods and `PADDLE_TRAINER_NUM=1` in Worker pods.
- Admission: no replica limits (several Masters are several parameter servers).
- Success and Running follow the Masters, else all the Workers. Every Master pod carries
  `job-role=master`; without a Master, Worker-0 does (upstream: no pod, so the SDK's default
  `is_master` log lookup found nothing; docs/behaviour.md).
"""

from __future__ import annotations

from typing import Final

from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow.job import EnvValue
from jobwarden.kinds.kubeflow.kind import KubeflowKind, PodSlot, Port, led_by
from jobwarden.kinds.kubeflow.validation import KubeflowShape

PADDLEJOB_SHAPE: Final = KubeflowShape(
    kind="PaddleJob",
    replica_specs_field="paddleReplicaSpecs",
    replica_types=("Master", "Worker"),
    container_name="paddle",
    default_restart_policy="OnFailure",
    single_master_types=(),
)

# The pod's own IP, which kubelet expands in `$(POD_IP_DUMMY)` (defined before PADDLE_MASTER).
POD_IP: Final = {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def paddle_env(slot: PodSlot) -> dict[str, EnvValue]:
    job = slot.job
    env: dict[str, EnvValue] = {
        "PYTHONUNBUFFERED": "1",
        "PADDLE_JOB_ID": job.name,
        "PADDLE_NNODES": str(job.total_replicas),
    }
    # The endpoint pod (Master-0, else Worker-0) announces its own IP; the others reach it by name.
    leader = "Master" if job.has("Master") else "Worker"
    port = job.port_or_default(leader)
    if slot.replica.type == leader and slot.index == 0:
        env["POD_IP_DUMMY"] = POD_IP
        env["PADDLE_MASTER"] = f"$(POD_IP_DUMMY):{port}"
    else:
        env["PADDLE_MASTER"] = f"{job.pod_name(leader, 0)}:{port}"
    if leader == "Master":
        env["PADDLE_SERVER_NUM" if slot.replica.type == "Master" else "PADDLE_TRAINER_NUM"] = "1"
    return env


KIND = KubeflowKind(
    resource=Resource("kubeflow.org", "v1", "paddlejobs", "PaddleJob"),
    shape=PADDLEJOB_SHAPE,
    operator_name="paddlejob-controller",
    default_port=Port("master", 36543),
    status_key="replicaStatuses",
    default_clean_pod_policy="None",
    progress=led_by("Master", "Worker"),
    build_env=paddle_env,
    env_in_every_container=True,
    master_types=("Master",),
)
