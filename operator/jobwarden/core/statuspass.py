"""What a kind's planning pass over one job starts from and ends with (pure): the job's status as
observed (`before`) and as the pass rewrites it (`status`), the plan it fills, refused child writes
surfaced as a condition, and the status written only when the pass changed it."""

from __future__ import annotations

import copy
from typing import Any

from jobwarden.core import faults
from jobwarden.core.plan import Observed, Plan


class StatusPass:
    def __init__(self, observed: Observed) -> None:
        self.observed = observed
        self.before: dict[str, Any] = copy.deepcopy(dict(observed.job.get("status") or {}))
        self.status: dict[str, Any] = copy.deepcopy(self.before)
        self.plan = Plan()

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return list(self.status.get("conditions") or [])

    def surface_faults(self, idle: bool) -> None:
        """Refused child writes as a `ReplicaFailure` condition while the job runs (core/faults.py).
        An idle job (finished, or suspended: it writes no children) drops an old refusal."""
        refused = () if idle else self.observed.faults
        updated = faults.with_failure_condition(self.conditions, refused, self.observed.now)
        if updated != self.conditions:
            self.status["conditions"] = updated

    def finished_plan(self) -> Plan:
        """The plan, carrying the status only when this pass changed it."""
        self.plan.status = self.status if self.status != self.before else None
        return self.plan
