"""The seed Volcano job (003, MPI) end to end and the webhook refusing fixed fields, reconciled and
validated by the operator inside the image: the tests of tests/integration/test_volcano_lifecycle.py,
imported (the same code), run with this package's `operator` (the container) and `cluster`.

End to end: the env/svc/ssh plugins' children, the default-scheduler fallback (Warning event), a
scale-up by PUT of the seed body, the hostfile, TaskCompleted -> CompleteJob -> Completed, the TTL and
the garbage collector. Refused: adding a task, changing schedulerName or ttlSecondsAfterFinished (403,
each path named, nothing stored)."""

from __future__ import annotations

import pytest
from test_volcano_lifecycle import test_refused_updates_name_the_path, test_seed_job_end_to_end

# Imported for pytest to collect here (their fixture new_vcjob is in tests/integration/conftest.py);
# named so linters see them used.
__all__ = ["test_refused_updates_name_the_path", "test_seed_job_end_to_end"]

pytestmark = pytest.mark.usefixtures("operator_log_hint")
