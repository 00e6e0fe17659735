"""shell/childview.py on its own: the indices, corrected for what the watch has not caught up with."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobwarden.shell import childview
from jobwarden.shell.childview import ChildView

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
JOB = {"metadata": {"name": "job", "namespace": "ns", "uid": "job-uid"}}


def pod(name: str, uid: str) -> dict[str, object]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "ns", "uid": uid}}


def test_a_created_child_is_shown_as_sent_until_the_watch_shows_it() -> None:
    view = ChildView(lambda: NOW)
    index: dict[str, list[dict[str, object]]] = {}
    view.indices = {"Pod": index}
    manifest = {"kind": "Pod", "metadata": {"name": "job-worker-0"}}
    assert not view.created(JOB, manifest), "a watched kind: its watch event will queue the next pass"
    shown = view.children_of("job-uid")["Pod"]["job-worker-0"]
    assert shown["metadata"]["namespace"] == "ns"
    index["job-uid"] = [pod("job-worker-0", "p1")]
    view.seen("job-uid", "Pod", "job-worker-0")
    assert view.children_of("job-uid")["Pod"]["job-worker-0"]["metadata"]["uid"] == "p1", "the index wins"


def test_a_child_we_deleted_is_terminating_until_the_watch_catches_up() -> None:
    view = ChildView(lambda: NOW)
    view.indices = {"Pod": {"job-uid": [pod("job-master-0", "p0")]}}
    view.deleted(JOB, "Pod", "job-master-0", "p0")
    seen = view.children_of("job-uid")["Pod"]["job-master-0"]
    assert seen["metadata"]["deletionTimestamp"] == "2026-12-01T12:00:00Z"
    assert view.tombstoned("p0") and not view.tombstoned("other")


def test_an_unwatched_child_is_remembered_until_deleted_or_its_job_is_forgotten() -> None:
    view = ChildView(lambda: NOW)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "job-ssh"}, "data": {"k": "v"}}
    assert view.created(JOB, secret), "no watch will show it: the caller queues the next pass"
    assert view.children_of("job-uid")["Secret"]["job-ssh"] == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "job-ssh", "namespace": "ns"},
    }, "a minimal body: the key material is not kept"
    view.deleted(JOB, "Secret", "job-ssh", None)
    assert view.children_of("job-uid") == {"Secret": {}}
    view.created(JOB, secret)
    view.forget("job-uid")
    assert view.children_of("job-uid") == {}


def test_tombstones_expire_in_order_and_one_renewed_lives_its_full_time_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(childview.time, "monotonic", lambda: clock[0])
    view = ChildView(lambda: NOW)
    view.indices = {"Pod": {"job-uid": []}}
    view.tombstone("a")
    clock[0] += 10
    view.tombstone("b")
    clock[0] += 10
    view.tombstone("a")  # tombstoned again: now the younger of the two
    clock[0] += childview.TOMBSTONE_SECONDS - 5  # b (and a's first tombstone) expired, a's second not
    view.children_of("job-uid")
    assert (view.tombstoned("a"), view.tombstoned("b")) == (True, False)
    clock[0] += 10
    view.children_of("job-uid")
    assert not view.tombstoned("a")


def test_the_pods_of_a_child_job_are_shown_with_the_jobs_pods() -> None:
    """MPIJob's launcher pods are the launcher Job's (made by the Job controller): indexed under the
    Job's uid, shown among the MPIJob's pods."""
    view = ChildView(lambda: NOW)
    launcher = {"kind": "Job", "metadata": {"name": "job-launcher", "namespace": "ns", "uid": "launcher-uid"}}
    view.indices = {
        "Pod": {"job-uid": [pod("job-worker-0", "w0")], "launcher-uid": [pod("job-launcher-x1", "l1")]},
        "Job": {"job-uid": [launcher]},
    }
    assert set(view.children_of("job-uid")["Pod"]) == {"job-worker-0", "job-launcher-x1"}
    view.indices = {
        "Pod": {"job-uid": [pod("job-worker-0", "w0")], "launcher-uid": [pod("x", "l1")]},
        "Job": {},
    }
    assert set(view.children_of("job-uid")["Pod"]) == {"job-worker-0"}, "no child Job, no grandchildren"
