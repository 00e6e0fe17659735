"""The lateness benchmark's bookkeeping (benchmarks/lateness.py): what "all N gone" waits for."""

from __future__ import annotations

from typing import Any

from benchmarks.kube import JOB_NAME_LABEL
from benchmarks.lateness import Recorder


def pod(job: str, name: str, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {JOB_NAME_LABEL: job}, **meta}, "status": {}}


def test_pods_gone_are_recorded_but_only_jobs_gone_count_towards_the_step() -> None:
    """Worker pods share their job's name prefix: counting them made "all 200 clean jobs gone" true
    after ~67 jobs, and the next step's burst overlapped the TTLs it should follow."""
    recorder = Recorder()
    for i in range(3):
        recorder.on_pod("DELETED", pod("clean-0", f"clean-0-worker-{i}"))
    assert ("clean-0-worker-2", "gone") in recorder.seen
    assert recorder.counts["clean", "gone"] == 0
    recorder.on_job("MODIFIED", {"metadata": {"name": "clean-0", "deletionTimestamp": "now"}})
    assert recorder.counts["clean", "gone"] == 1
