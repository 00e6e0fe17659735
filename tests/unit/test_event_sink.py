"""shell/events.EventSink: events leave the reconcile path, keep the instant they happened, go out in
order, are drained on stop, and a full queue drops (and counts) instead of blocking a pass."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from jobwarden.core.plan import Body, Event
from jobwarden.shell import events, metrics
from jobwarden.shell.events import EventSink

JOB: Body = {"metadata": {"name": "job", "namespace": "ns"}}


def test_a_queued_event_keeps_its_instant_and_order_and_never_waits_for_the_post() -> None:
    posted: list[tuple[str, datetime]] = []
    gate = asyncio.Event()

    async def slow_post(job: Body, event: Event, at: datetime) -> None:
        await gate.wait()
        posted.append((event.reason, at))

    async def scenario() -> None:
        sink = EventSink(slow_post, senders=1)
        sink.start()
        before = datetime.now().astimezone()
        for i in range(3):
            await asyncio.wait_for(sink.post(JOB, Event("Normal", f"R{i}", "m")), 0.5)  # never blocks
        assert posted == []
        gate.set()
        await sink.stop()
        assert [reason for reason, _ in posted] == ["R0", "R1", "R2"]
        assert all(at >= before for _, at in posted)

    asyncio.run(scenario())


def test_without_running_senders_an_event_is_posted_at_once() -> None:
    posted: list[str] = []

    async def post(job: Body, event: Event, at: datetime) -> None:
        posted.append(event.reason)

    asyncio.run(EventSink(post).post(JOB, Event("Normal", "Now", "m")))
    assert posted == ["Now"]


def test_a_full_queue_drops_and_counts_and_a_failing_post_is_only_logged() -> None:
    async def failing(job: Body, event: Event, at: datetime) -> None:
        await asyncio.sleep(0.01)
        raise OSError("apiserver gone")

    async def scenario() -> None:
        sink = EventSink(failing, senders=1, capacity=2)
        sink.start()
        dropped = metrics.EVENTS_DROPPED._value.get()
        for i in range(5):
            await sink.post(JOB, Event("Normal", f"R{i}", "m"))
        assert metrics.EVENTS_DROPPED._value.get() - dropped >= 2
        await sink.stop(drain=1.0)
        assert not sink.running

    asyncio.run(scenario())


class _Work:
    """The controller's work queue as the senders see it: busy until `done()`."""

    def __init__(self) -> None:
        self._idle = asyncio.Event()

    def busy(self) -> bool:
        return not self._idle.is_set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def done(self) -> None:
        self._idle.set()


def test_while_the_controller_is_busy_events_trickle_and_all_senders_post_once_it_is_idle() -> None:
    in_flight: list[int] = [0, 0]  # now, most at once
    posted: list[str] = []
    work = _Work()

    async def post(job: Body, event: Event, at: datetime) -> None:
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        await asyncio.sleep(0.01)
        posted.append(event.reason)
        in_flight[0] -= 1

    async def scenario() -> None:
        sink = EventSink(post, senders=4, work=work)
        sink.start()
        for i in range(20):
            await sink.post(JOB, Event("Normal", f"R{i}", "m"))
        await asyncio.sleep(0.25)
        assert in_flight[1] == 1, "one at a time while the controller works"
        assert 1 <= len(posted) <= 4, f"at most {events.BUSY_EVENTS_PER_SECOND}/s: {len(posted)} in 0.25 s"
        work.done()
        await asyncio.sleep(0.05)
        assert in_flight[1] > 1, "the waiting senders woke when the work was done"
        await sink.stop()
        assert len(posted) == 20

    asyncio.run(scenario())


def test_a_queued_event_holds_only_the_reference_to_its_job() -> None:
    seen: list[Body] = []
    job: Body = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "job", "namespace": "ns", "uid": "u", "resourceVersion": "7", "labels": {}},
        "spec": {"big": "x" * 10_000},
    }

    async def post(job: Body, event: Event, at: datetime) -> None:
        seen.append(job)

    async def scenario() -> None:
        sink = EventSink(post, senders=1)
        sink.start()
        await sink.post(job, Event("Normal", "R", "m"))
        await sink.stop()

    asyncio.run(scenario())
    assert seen == [
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "metadata": {"name": "job", "namespace": "ns", "uid": "u", "resourceVersion": "7"},
        }
    ]


def test_events_are_named_by_the_client_so_a_repeat_is_a_409_that_counts_as_posted() -> None:
    """As client-go's recorder names them (`<object>.<hex ns>`): the POST of a named event may be sent
    again after a stale connection (issue 27), where a `generateName` one would make a duplicate."""
    from jobwarden.shell.api import KubeApi
    from jobwarden.shell.kubeclient import ApiError

    sent: list[dict[str, Any]] = []

    class Client:
        async def request(self, method: str, path: str, body: Any = None, content_type: str = "") -> bytes:
            sent.append(body)
            if len(sent) == 3:
                raise ApiError(409, "Conflict", b'{"reason":"AlreadyExists"}')
            return b"{}"

    job = {"apiVersion": "v1", "kind": "X", "metadata": {"name": "job", "namespace": "ns", "uid": "u"}}

    async def scenario() -> None:
        api = KubeApi(Client())  # type: ignore[arg-type]
        for _ in range(3):
            await api.post_event(job, Event("Normal", "R", "m"))

    asyncio.run(scenario())
    names = [body["metadata"]["name"] for body in sent]
    assert all(
        n.startswith("job.") and "generateName" not in b["metadata"] for n, b in zip(names, sent, strict=True)
    )
    assert len(set(names)) == 3, "unique even within one clock tick"
