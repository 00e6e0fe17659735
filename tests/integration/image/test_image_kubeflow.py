"""The seed lifecycle of TFJob, PyTorchJob and MXJob, reconciled by the operator inside the image: the
test of tests/integration/test_kubeflow_lifecycle.py, imported (the same code, so the two cannot drift),
run here with this package's `operator` (the container) and `cluster` (its own devcluster).

Each kind: created from its seed through the webhook, pods and headless services with Kubeflow's
labels and owner references, the framework env (TF_CONFIG, MASTER_ADDR/RANK, DMLC_*), Running, the
deciding pod finished -> Succeeded with completionTime and per-replica counts, the cleanPodPolicy, then
a TTL set by merge patch deletes the job and the garbage collector its children."""

from __future__ import annotations

import pytest
from test_kubeflow_lifecycle import new_job, test_lifecycle_from_the_seed

# Imported for pytest to collect here (the fixture with them); named so linters see them used.
__all__ = ["new_job", "test_lifecycle_from_the_seed"]

pytestmark = pytest.mark.usefixtures("operator_log_hint")
