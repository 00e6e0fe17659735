"""An unreachable apiserver is a transient fault (shell/outage.py, issue 27): every path backs off
(capped, jittered), logs one WARNING when it starts failing and one INFO when it recovers, never a
traceback; events that cannot be posted within a bound are dropped and counted."""

from __future__ import annotations

import asyncio
import copy
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_child_watch import PODS, ScriptedApi, page, pod
from test_executor import FakeApi, controller_for, running_job

from jobwarden.core.plan import Body, Event
from jobwarden.shell import childwatch, metrics, outage
from jobwarden.shell.childwatch import ChildIndex, ChildWatch
from jobwarden.shell.events import EventSink
from jobwarden.shell.outage import KopfRetries, Outage

REFUSED = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 6443)")


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_a_path_says_warning_once_when_it_starts_failing_and_info_once_when_it_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    path = Outage("posting events")
    for _ in range(50):
        path.failed(REFUSED)
    path.succeeded()
    path.succeeded()
    (warning,) = lines(caplog, logging.WARNING)
    (info,) = lines(caplog, logging.INFO)
    assert warning.startswith("posting events: the apiserver is unreachable (ConnectionRefusedError:")
    assert "after" in info and "50 failed attempts" in info
    assert metrics.APISERVER_UNREACHABLE.labels("posting events")._value.get() == 0
    assert "Traceback" not in caplog.text


def test_a_path_of_several_members_recovers_when_the_last_one_does(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    path = Outage("watching children")
    path.failed(REFUSED, "pods")
    path.failed(REFUSED, "services")
    path.succeeded("pods")
    assert path.failing and lines(caplog, logging.INFO) == []
    path.failed(REFUSED, "pods")
    path.succeeded("services")
    path.succeeded("pods")
    assert len(lines(caplog, logging.WARNING)) == 1 and len(lines(caplog, logging.INFO)) == 1


def test_the_backoff_doubles_to_its_cap_and_is_jittered() -> None:
    delays = [[outage.backoff(n) for _ in range(200)] for n in (1, 2, 3, 4, 10)]
    for bound, drawn in zip((0.5, 1.0, 2.0, 4.0, 4.0), delays, strict=True):
        assert all(bound / 2 <= d <= bound for d in drawn)
        assert len(set(drawn)) > 100, "jittered"


def test_what_counts_as_unreachable() -> None:
    import aiohttp

    from jobwarden.shell.httppool import ConnectionLost
    from jobwarden.shell.kubeclient import ApiError

    for exc in (REFUSED, TimeoutError(), ConnectionLost("x"), OSError("Multiple exceptions: [Errno 111]"),
                aiohttp.ServerDisconnectedError(), aiohttp.ClientPayloadError("cut")):  # fmt: skip
        assert outage.unreachable(exc), exc
    for exc in (ApiError(503, "Service Unavailable"), PermissionError("403"), ValueError("x")):
        assert not outage.unreachable(exc), exc
    # "apiserver is shutting down": the last answers before it stops are 503s, waited out alike
    assert outage.transient(ApiError(503, "Service Unavailable")) and outage.transient(REFUSED)
    for exc in (ApiError(500, "Internal Server Error"), ApiError(409, "Conflict"), PermissionError("403")):
        assert not outage.transient(exc), exc


# -- kopf's retries ---------------------------------------------------------------------------------


def test_kopfs_retry_lines_become_one_warning_and_one_info(caplog: pytest.LogCaptureFixture) -> None:
    retries = KopfRetries(Outage("kopf's watches"))
    kopf_logger = logging.getLogger(KopfRetries.LOGGER)
    kopf_logger.addFilter(retries)  # as on the handlers, for caplog's sake
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger=KopfRetries.LOGGER)
    url = "GET https://127.0.0.1:6443/apis/kubeflow.org/v1/pytorchjobs?watch=true"
    try:
        for i in range(2, 10):
            kopf_logger.error(
                f"Request attempt #{i}/154 failed; will retry: {url} -> ClientConnectorError(x)"
            )
            kopf_logger.debug(f"Request attempt #{i + 1}/154: {url}")
        kopf_logger.debug("Restarting the watch-stream for pytorchjobs.v1.kubeflow.org cluster-wide.")
        kopf_logger.debug(f"Request attempt #11/154 succeeded: {url}")
        kopf_logger.error(f"Request attempt #154/154 failed; escalating: {url} -> ClientConnectorError(x)")
    finally:
        kopf_logger.removeFilter(retries)
    shown = [(r.levelname, r.getMessage()) for r in caplog.records if r.name != KopfRetries.LOGGER]
    assert [level for level, _ in shown] == ["WARNING", "INFO"]
    assert "ClientConnectorError(x)" in shown[0][1]
    kopf_own = [r.getMessage() for r in caplog.records if r.name == KopfRetries.LOGGER]
    assert kopf_own == [f"Request attempt #154/154 failed; escalating: {url} -> ClientConnectorError(x)"]


# -- events -----------------------------------------------------------------------------------------

JOB: Body = {"metadata": {"name": "job", "namespace": "ns"}}


def test_an_event_is_posted_again_once_the_apiserver_is_back_with_one_warning_and_one_info(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(outage, "backoff", lambda failures: 0.01)
    attempts: list[str] = []
    posted: list[str] = []

    async def post(job: Body, event: Event, at: datetime) -> None:
        attempts.append(event.reason)
        if len(attempts) <= 40:
            raise REFUSED
        posted.append(event.reason)

    async def scenario() -> None:
        sink = EventSink(post, senders=4)
        sink.start()
        for i in range(10):
            await sink.post(JOB, Event("Normal", f"R{i}", "m"))
        for _ in range(200):
            if len(posted) == 10:
                break
            await asyncio.sleep(0.01)
        await sink.stop()

    asyncio.run(scenario())
    assert sorted(posted) == sorted(f"R{i}" for i in range(10)), "none lost to a short outage"
    assert len(lines(caplog, logging.WARNING)) == 1 and len(lines(caplog, logging.INFO)) == 1


def test_an_event_not_posted_within_the_bound_is_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outage, "backoff", lambda failures: 0.01)
    attempts = 0

    async def post(job: Body, event: Event, at: datetime) -> None:
        nonlocal attempts
        attempts += 1
        raise REFUSED

    async def scenario() -> None:
        sink = EventSink(post, senders=1)
        sink.unposted_seconds = 0.1
        sink.start()
        for i in range(3):
            await sink.post(JOB, Event("Normal", f"R{i}", "m"))
        await asyncio.sleep(0.5)
        assert sink._queue.qsize() == 0, "given up on, not retried forever"
        await sink.stop()

    before = metrics.EVENTS_UNPOSTED._value.get()
    asyncio.run(scenario())
    assert metrics.EVENTS_UNPOSTED._value.get() - before == 3
    assert attempts < 30, "attempts back off"


def test_an_event_older_than_the_bound_is_dropped_without_an_attempt() -> None:
    attempts = 0

    async def post(job: Body, event: Event, at: datetime) -> None:
        nonlocal attempts
        attempts += 1

    async def scenario() -> None:
        sink = EventSink(post, senders=1)
        old = datetime.now(UTC) - timedelta(seconds=sink.unposted_seconds + 1)
        sink._queue.put_nowait((JOB, Event("Normal", "Old", "m"), old))
        sink.start()
        await asyncio.sleep(0.05)
        await sink.stop()

    asyncio.run(scenario())
    assert attempts == 0


# -- the child watches ------------------------------------------------------------------------------


def test_child_streams_failing_together_log_one_warning_and_one_info(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(childwatch, "BACKOFFS", (0.0,))

    class Away(ScriptedApi):
        def __init__(self, namespaces: tuple[str, ...], failures: int) -> None:
            super().__init__({ns: [page([pod("p", ns)], "10")] for ns in namespaces})
            self.failures = {PODS.path(ns): failures for ns in namespaces}

        def stream(self, path: str, timeout: Any) -> Any:
            base = path.partition("?")[0]
            if self.failures[base] > 0:
                self.failures[base] -= 1
                raise REFUSED
            return super().stream(path, timeout)

    api = Away(("a", "b", "c"), failures=20)
    index = ChildIndex()
    path = Outage("watching children")
    watches = [
        ChildWatch(api, PODS, "x", ns, index, lambda body: None, path)  # type: ignore[arg-type]
        for ns in ("a", "b", "c")
    ]

    async def scenario() -> None:
        tasks = [asyncio.create_task(w.run()) for w in watches]
        for _ in range(2000):
            if all(w.ready.is_set() for w in watches):
                break
            await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
    assert all(w.ready.is_set() for w in watches) and len(index) == 3
    assert len(lines(caplog, logging.WARNING)) == 1 and len(lines(caplog, logging.INFO)) == 1
    assert not path.failing


# -- the controller ---------------------------------------------------------------------------------


def test_an_unreachable_status_write_is_retried_soon_with_one_warning_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        cluster = running_job()
        cluster.set_phase("job-master-0", "Succeeded", exit_code=0)
        api = FakeApi()
        api.status_errors += [REFUSED, REFUSED, REFUSED]
        controller, key = controller_for(cluster, api)
        for _ in range(3):
            await controller.reconcile(key)  # raises nothing: the work queue would log a traceback
            delay = controller._retries[key].when() - asyncio.get_running_loop().time()
            assert delay <= outage.BACKOFF_CAP_SECONDS
            assert api.writes("delete") == [], "nothing else of the plan happens"
        await controller.reconcile(key)
        assert api.writes("status")[-1][2]["conditions"][-1]["type"] == "Succeeded"
        assert api.writes("delete"), "the plan goes on once the apiserver is back"
        await controller.stop()

    asyncio.run(scenario())
    assert [m for m in lines(caplog, logging.WARNING)] == [
        "writing job status: the apiserver is unreachable (ConnectionRefusedError: [Errno 111] "
        "Connect call failed ('127.0.0.1', 6443)); retrying with backoff, quiet until it answers"
    ]
    assert any("writing job status: the apiserver answers again" in m for m in lines(caplog, logging.INFO))
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


def test_unreachable_child_writes_post_no_warning_event_and_are_retried_soon(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        cluster = running_job()
        cluster.set_phase("job-master-0", "Succeeded", exit_code=0)
        api = FakeApi()
        for name in ("job-master-0", "job-worker-0", "job-worker-1"):
            api.delete_errors[name] = [copy.copy(REFUSED)]
        controller, key = controller_for(cluster, api)
        await controller.reconcile(key)
        assert [c for c in api.writes("event") if c[1].startswith("Failed")] == []
        delay = controller._retries[key].when() - asyncio.get_running_loop().time()
        assert delay <= outage.BACKOFF_CAP_SECONDS, "not the fault book's 5 s"
        assert controller.faults.faults(key) == (), "not shown on the job: nothing for a person to fix"
        await controller.stop()

    asyncio.run(scenario())
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 1 and warnings[0].startswith("reading and writing children: the apiserver")


def test_a_later_request_for_the_same_resource_ends_a_failure_kopf_gave_up_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retries = KopfRetries(Outage("kopf's watches"))
    kopf_logger = logging.getLogger(KopfRetries.LOGGER)
    kopf_logger.addFilter(retries)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger=KopfRetries.LOGGER)
    base = "GET https://127.0.0.1:6443/apis/kubeflow.org/v1/tfjobs?watch=true&resourceVersion="
    try:
        kopf_logger.error(f"Request attempt #1 failed; will retry: {base}10 -> ClientConnectorError(x)")
        kopf_logger.error(f"Request attempt #154 failed; escalating: {base}10 -> ClientConnectorError(x)")
        kopf_logger.debug(f"Request attempt #2 succeeded: {base}99")
    finally:
        kopf_logger.removeFilter(retries)
    assert not retries.outage.failing
    assert len(lines(caplog, logging.INFO)) == 1
