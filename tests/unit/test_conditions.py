from __future__ import annotations

import copy
from datetime import UTC, datetime

from jobwarden.core import conditions as cond

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2024, 5, 1, 12, 5, 0, tzinfo=UTC)


def running_since_t0() -> list[cond.Condition]:
    created = cond.set_condition([], cond.CREATED, "TFJobCreated", "TFJob j is created.", T0)
    return cond.set_condition(created, cond.RUNNING, "TFJobRunning", "TFJob j is running.", T0)


def test_new_condition_has_every_field_stamped_now() -> None:
    assert cond.set_condition([], cond.CREATED, "TFJobCreated", "TFJob j is created.", T0) == [
        {
            "type": "Created",
            "status": "True",
            "reason": "TFJobCreated",
            "message": "TFJob j is created.",
            "lastUpdateTime": "2024-05-01T12:00:00Z",
            "lastTransitionTime": "2024-05-01T12:00:00Z",
        }
    ]


def test_same_status_and_reason_changes_nothing_not_even_the_message() -> None:
    before = running_since_t0()
    after = cond.set_condition(before, cond.RUNNING, "TFJobRunning", "other words", T1)
    assert after == before


def test_same_status_new_reason_keeps_transition_time() -> None:
    after = cond.set_condition(running_since_t0(), cond.RUNNING, "JobRunning", "TFJob j runs.", T1)
    running = cond.find(after, cond.RUNNING)
    assert running is not None
    assert running["reason"] == "JobRunning"
    assert running["message"] == "TFJob j runs."
    assert running["lastUpdateTime"] == "2024-05-01T12:05:00Z"
    assert running["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    assert [c["type"] for c in after] == ["Created", "Running"]


def test_status_change_moves_both_timestamps() -> None:
    after = cond.set_condition(running_since_t0(), cond.RUNNING, "TFJobRunning", "m", T1, status=cond.FALSE)
    running = cond.find(after, cond.RUNNING)
    assert running is not None
    assert (running["status"], running["lastTransitionTime"]) == ("False", "2024-05-01T12:05:00Z")


def test_restarting_replaces_running_and_running_replaces_restarting() -> None:
    restarting = cond.set_condition(running_since_t0(), cond.RESTARTING, "TFJobRestarting", "r", T1)
    assert [c["type"] for c in restarting] == ["Created", "Restarting"]
    running = cond.set_condition(restarting, cond.RUNNING, "TFJobRunning", "TFJob j is running.", T1)
    assert [c["type"] for c in running] == ["Created", "Running"]
    assert running[-1]["lastTransitionTime"] == "2024-05-01T12:05:00Z"


def test_finishing_flips_running_to_false_and_keeps_its_other_fields() -> None:
    before = running_since_t0()
    after = cond.set_condition(before, cond.SUCCEEDED, "TFJobSucceeded", "done", T1)
    assert [c["type"] for c in after] == ["Created", "Running", "Succeeded"]
    assert after[1] == {**before[1], "status": "False"}
    assert cond.is_finished(after)
    assert not cond.holds(after, cond.RUNNING)


def test_failing_also_ends_restarting() -> None:
    restarting = cond.set_condition(running_since_t0(), cond.RESTARTING, "TFJobRestarting", "r", T0)
    failed = cond.set_condition(restarting, cond.FAILED, "TFJobFailed", "f", T1)
    assert [(c["type"], c["status"]) for c in failed] == [
        ("Created", "True"),
        ("Restarting", "False"),
        ("Failed", "True"),
    ]


def test_a_finished_job_never_changes() -> None:
    for outcome in (cond.SUCCEEDED, cond.FAILED):
        finished = cond.set_condition(running_since_t0(), outcome, f"TFJob{outcome}", "x", T1)
        for other in (cond.RUNNING, cond.RESTARTING, cond.FAILED, cond.SUCCEEDED):
            assert cond.set_condition(finished, other, "Other", "y", T1) == finished


def test_input_is_never_mutated() -> None:
    before = running_since_t0()
    snapshot = copy.deepcopy(before)
    cond.set_condition(before, cond.FAILED, "TFJobFailed", "f", T1)
    cond.set_condition(before, cond.RESTARTING, "TFJobRestarting", "r", T1)
    assert before == snapshot


def test_holds_needs_status_true() -> None:
    flipped = cond.set_condition(running_since_t0(), cond.RUNNING, "TFJobRunning", "m", T1, status=cond.FALSE)
    assert cond.find(flipped, cond.RUNNING) is not None
    assert not cond.holds(flipped, cond.RUNNING)
    assert cond.holds(flipped, cond.CREATED)
    assert cond.find(flipped, cond.FAILED) is None
    assert not cond.is_finished(flipped)
