"""Kubeflow's v1 job family (`kubeflow.org/v1`): one shared engine and one module per framework.

The engine:
- `kind.py`: `KubeflowKind`, the `JobKind` every framework is, with the rules a plan follows;
- `job.py`: the job as the plan reads it (defaulted view, pod slots, counts, progress rules);
- `plan.py`: one reconcile pass (it sees the kind through `plan.PlannedKind`, never `kind.py`);
- `validation.py`: the shared admission rules (create checks, the update contract's table);
- `gang.py`: gang scheduling by Volcano (the PodGroup, the pods' fields).

A framework (`tfjob.py`, `pytorchjob.py`, `mxjob.py`, `xgboostjob.py`, `paddlejob.py`, `jaxjob.py`)
declares its `KubeflowShape`, its own spec checks, env and success rule, and exposes `KIND`. Adding
one is that module plus one line in `FRAMEWORKS` (and its name in pyproject.toml's import contracts,
which a unit test checks). The frameworks never import each other, and the engine imports none of them
(import-linter contracts in pyproject.toml).
"""

from __future__ import annotations

from jobwarden.kinds.kubeflow import jaxjob, mpijob, mxjob, paddlejob, pytorchjob, tfjob, xgboostjob
from jobwarden.kinds.kubeflow.kind import KubeflowKind
from jobwarden.kinds.kubeflow.mpijob import MpiJobKind

FRAMEWORKS: tuple[KubeflowKind, ...] = (
    tfjob.KIND,
    pytorchjob.KIND,
    mxjob.KIND,
    xgboostjob.KIND,
    paddlejob.KIND,
    jaxjob.KIND,
)
# MPIJob (kubeflow.org/v2beta1, mpi-operator v0.8): a family member with a plan of its own (mpijob/).
MPIJOB: MpiJobKind = mpijob.KIND

__all__ = ["FRAMEWORKS", "MPIJOB", "KubeflowKind", "MpiJobKind"]
