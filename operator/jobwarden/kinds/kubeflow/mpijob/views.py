"""The MPIJob as the family's gang scheduling reads a job (`gang.py` takes a `KubeflowJob`): the
Launcher's one pod first, then the Workers, so the PodGroup's `minMember` defaults to workers + 1 and
`minResources` counts the launcher, as upstream's calculateMinAvailable and calPGMinResource do."""

from __future__ import annotations

from typing import Final

from jobwarden.kinds.kubeflow.job import KubeflowJob, Port, Replica
from jobwarden.kinds.kubeflow.mpijob.spec import MpiJob, MpiReplica
from jobwarden.kinds.kubeflow.mpijob.validation import MPIJOB_SHAPE

# MPI's processes talk over ssh; the family's view wants a default port, which gang scheduling never reads.
SSH_PORT: Final = Port("ssh", 22)


def gang_view(job: MpiJob) -> KubeflowJob:
    replicas = {
        replica.type: _replica(replica) for replica in (job.launcher, job.worker) if replica is not None
    }
    return KubeflowJob(job.body, MPIJOB_SHAPE, SSH_PORT, replicas)


def _replica(replica: MpiReplica) -> Replica:
    return Replica(replica.type, replica.count, replica.template, replica.restart_policy, {})
