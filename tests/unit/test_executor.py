"""The shell's executor (shell/controller.py) against an API double that fails on purpose: 409s, 500s,
timeouts, AlreadyExists of a foreign object, and a watch that lags the deletes. No cluster: these pin
the order of writes that keeps a finished job finished (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import copy
import inspect
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from kubeflow_helpers import FakeCluster, kubeflow_job, later
from volcano_helpers import running as volcano_running
from volcano_helpers import task as vtask
from volcano_helpers import vcjob

from jobwarden.core import faults
from jobwarden.core.plan import Body, ChildRef, Event, Manifest, Observed, Plan, Settings
from jobwarden.kinds.base import Resource
from jobwarden.kinds.kubeflow import pytorchjob
from jobwarden.kinds.volcano import KIND as VOLCANO
from jobwarden.shell import controller as ctl
from jobwarden.shell import metrics, workqueue
from jobwarden.shell.childwatch import ChildIndex, target_uid
from jobwarden.shell.controller import Controller, job_key
from jobwarden.shell.kubeclient import ApiError

KIND = pytorchjob.KIND


def api_error(status: int, reason: str = "") -> ApiError:
    return ApiError(status, reason or {409: "Conflict", 500: "Internal Server Error"}.get(status, ""))


class FakeApi:
    """Records every write in order; raises what a test queued."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.status_errors: list[BaseException] = []
        self.create_errors: dict[str, list[BaseException]] = {}
        self.delete_errors: dict[str, list[BaseException]] = {}
        self.existing: dict[str, dict[str, Any]] = {}
        self.resource_version = 100

    async def replace_status(self, resource: Resource, job: Body, status: Any) -> dict[str, Any]:
        self.calls.append(("status", job["metadata"].get("resourceVersion"), copy.deepcopy(status)))
        if self.status_errors:
            raise self.status_errors.pop(0)
        self.resource_version += 1
        meta = {**job["metadata"], "resourceVersion": str(self.resource_version)}
        return {**copy.deepcopy(dict(job)), "metadata": meta, "status": copy.deepcopy(dict(status))}

    async def create_child(self, namespace: str, manifest: Manifest) -> None:
        name = manifest["metadata"]["name"]
        self.calls.append(("create", manifest["kind"], name))
        queued = self.create_errors.get(name)
        if queued:
            raise queued.pop(0)

    async def replace_child(self, namespace: str, manifest: Manifest) -> None:
        self.calls.append(("replace", manifest["kind"], manifest["metadata"]["name"]))

    async def delete_child(self, namespace: str, ref: ChildRef, uid: str | None = None) -> None:
        self.calls.append(("delete", ref.kind, ref.name, uid))
        queued = self.delete_errors.get(ref.name)
        if queued:
            raise queued.pop(0)

    async def read_child(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        return self.existing[name]

    async def delete_command(self, namespace: str, name: str, uid: str | None) -> None:
        self.calls.append(("delete_command", name, uid))

    async def delete_job(self, resource: Resource, job: Body) -> None:
        self.calls.append(("delete_job", job["metadata"]["name"]))

    async def post_event(self, job: Body, event: Event, at: object = None) -> None:
        self.calls.append(("event", event.reason, event.message))

    def writes(self, *verbs: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] in verbs]


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def running_job() -> FakeCluster:
    """A PyTorchJob (1 Master, 2 Worker, cleanPodPolicy All) with every pod Running."""
    job = kubeflow_job(KIND, {"Master": 1, "Worker": 2}, runPolicy={"cleanPodPolicy": "All"})
    job["metadata"]["resourceVersion"] = "7"
    cluster = FakeCluster(KIND, job)
    cluster.step()
    cluster.run_all()
    cluster.step(later(5))
    for name, pod in cluster.pods.items():
        pod["metadata"]["uid"] = f"uid-{name}"
    return cluster


def controller_for(cluster: FakeCluster, api: FakeApi) -> tuple[Controller, ctl.JobKey]:
    controller = Controller(api, Settings(), clock=lambda: later(10))  # type: ignore[arg-type]
    job = cluster.job
    uid = job["metadata"]["uid"]
    controller.indices = {
        "Pod": {uid: list(copy.deepcopy(cluster.pods).values())},
        "Service": {uid: list(copy.deepcopy(cluster.services).values())},
    }
    key = job_key(KIND, job)
    controller.jobs[key] = ctl._Entry(KIND, copy.deepcopy(job))
    return controller, key


def master_succeeded(cluster: FakeCluster) -> None:
    cluster.set_phase("job-master-0", "Succeeded", exit_code=0)
    cluster.pods["job-master-0"]["metadata"]["uid"] = "uid-job-master-0"


# -- the order: terminal status first, then deletes ------------------------------------------------


def test_the_terminal_status_is_written_before_any_cleanup_delete() -> None:
    async def scenario() -> None:
        cluster = running_job()
        master_succeeded(cluster)
        api = FakeApi()
        controller, key = controller_for(cluster, api)
        await controller.reconcile(key)
        writes = api.writes("status", "delete")
        assert writes[0][0] == "status"
        assert writes[0][2]["conditions"][-1]["type"] == "Succeeded"
        assert {w[2] for w in writes[1:]} >= {"job-master-0", "job-worker-0", "job-worker-1"}

    run(scenario)


def test_a_refused_terminal_write_deletes_nothing_and_the_success_survives() -> None:
    """The race of issue 10: the user patched a label while the master succeeded (409)."""

    async def scenario() -> None:
        cluster = running_job()
        master_succeeded(cluster)
        api = FakeApi()
        api.status_errors = [api_error(409)]
        controller, key = controller_for(cluster, api)
        await controller.reconcile(key)
        assert api.writes("delete", "create") == []
        assert key in controller._retries  # replanned soon, from the newer version
        # The next pass (newer resourceVersion) still sees the succeeded pod and finishes the job.
        controller.jobs[key].body["metadata"]["resourceVersion"] = "8"
        await controller.reconcile(key)
        assert api.writes("status")[-1][2]["conditions"][-1]["type"] == "Succeeded"
        assert api.writes("create") == []

    run(scenario)


@pytest.mark.parametrize(
    "error", [api_error(500), TimeoutError("timed out"), ConnectionResetError("reset")], ids=str
)
def test_a_failed_terminal_write_of_any_kind_deletes_nothing(error: BaseException) -> None:
    async def scenario() -> None:
        cluster = running_job()
        master_succeeded(cluster)
        api = FakeApi()
        api.status_errors = [error]
        controller, key = controller_for(cluster, api)
        if isinstance(error, ApiError):
            with pytest.raises(type(error)):
                await controller.reconcile(key)  # the worker logs it and retries with backoff
        else:  # no answer: an apiserver outage, retried soon without a traceback (shell/outage.py)
            await controller.reconcile(key)
            assert key in controller._retries
        assert api.writes("delete", "create") == []

    run(scenario)


def test_children_writes_without_a_status_change_are_fenced_by_an_unchanged_status_write() -> None:
    async def scenario() -> None:
        cluster = running_job()
        api = FakeApi()
        controller, key = controller_for(cluster, api)
        entry = controller.jobs[key]
        pod = cluster.pods["job-worker-1"]
        observed = controller.observed(entry, key)
        await controller.execute(key, entry, Plan(delete=[ChildRef("Pod", "job-worker-1")]), observed)
        assert api.calls[0][:2] == ("status", "7")
        assert api.calls[0][2] == cluster.job["status"]  # the status it already had
        assert api.calls[1] == ("delete", "Pod", "job-worker-1", pod["metadata"]["uid"])

    run(scenario)


def test_a_refused_fence_stops_the_plan() -> None:
    async def scenario() -> None:
        cluster = running_job()
        api = FakeApi()
        api.status_errors = [api_error(409)]
        controller, key = controller_for(cluster, api)
        entry = controller.jobs[key]
        manifest = KIND.plan(controller.observed(entry, key))  # nothing to do for a running job
        plan = Plan(create=[{"kind": "Pod", "metadata": {"name": "x"}}], events=[Event("Normal", "R", "m")])
        await controller.execute(key, entry, plan, controller.observed(entry, key))
        assert manifest.create == []
        assert [c[0] for c in api.calls] == ["status"]

    run(scenario)


def test_a_job_finished_in_the_cache_never_gets_a_child_created() -> None:
    async def scenario() -> None:
        cluster = running_job()
        master_succeeded(cluster)
        cluster.step(later(6))  # stores Succeeded
        api = FakeApi()
        controller, key = controller_for(cluster, api)
        entry = controller.jobs[key]
        bogus = Plan(create=[{"kind": "Pod", "metadata": {"name": "job-master-0"}}])
        await controller.execute(key, entry, bogus, controller.observed(entry, key))
        assert api.writes("create") == []

    run(scenario)


# -- children: uid preconditions, AlreadyExists, faults ---------------------------------------------


def test_deletes_carry_the_observed_uid_and_a_precondition_conflict_counts_as_done() -> None:
    async def scenario() -> None:
        cluster = running_job()
        api = FakeApi()
        api.delete_errors = {"job-worker-0": [api_error(409)]}
        controller, key = controller_for(cluster, api)
        entry = controller.jobs[key]
        plan = Plan(delete=[ChildRef("Pod", "job-worker-0")])
        await controller.execute(key, entry, plan, controller.observed(entry, key))
        assert api.writes("delete") == [("delete", "Pod", "job-worker-0", "uid-job-worker-0")]
        assert key not in controller._retries and not controller.faults.faults(key)

    run(scenario)


def test_a_name_taken_by_a_foreign_object_is_a_fault_shown_in_status_and_an_event() -> None:
    async def scenario() -> None:
        job = kubeflow_job(KIND, {"Master": 1})
        job["metadata"]["resourceVersion"] = "1"
        api = FakeApi()
        api.create_errors = {"job-master-0": [api_error(409, "AlreadyExists")]}
        api.existing = {"job-master-0": {"metadata": {"name": "job-master-0", "ownerReferences": []}}}
        controller, key = controller_for(FakeCluster(KIND, job), api)
        await controller.reconcile(key)
        events = [c for c in api.calls if c[0] == "event" and c[1] == "FailedCreatePod"]
        assert events and "not controlled by PyTorchJob job" in events[0][2]
        shown = api.writes("status")[-1][2]["conditions"][0]
        assert shown["type"] == faults.FAILURE_CONDITION and shown["reason"] == "FailedCreatePod"
        assert "job-master-0" in shown["message"] and "not controlled" in shown["message"]
        assert api.writes("status")[-1][2]["conditions"][-1]["type"] == "Created"  # the STATE column
        assert controller.faults.failures(key) == 1 and key in controller._retries

    run(scenario)


def test_our_own_object_already_there_is_harmless() -> None:
    async def scenario() -> None:
        job = kubeflow_job(KIND, {"Master": 1})
        api = FakeApi()
        api.create_errors = {"job-master-0": [api_error(409, "AlreadyExists")]}
        mine = {
            "metadata": {"name": "job-master-0", "ownerReferences": [{"controller": True, "uid": "uid-1"}]}
        }
        api.existing = {"job-master-0": mine}
        controller, key = controller_for(FakeCluster(KIND, job), api)
        await controller.reconcile(key)
        assert not controller.faults.faults(key) and key not in controller._retries

    run(scenario)


def test_a_fault_clears_from_status_once_the_create_succeeds() -> None:
    async def scenario() -> None:
        job = kubeflow_job(KIND, {"Master": 1})
        api = FakeApi()
        api.create_errors = {"job-master-0": [api_error(422, "Unprocessable Entity")]}
        controller, key = controller_for(FakeCluster(KIND, job), api)
        await controller.reconcile(key)
        assert api.writes("status")[-1][2]["conditions"][0]["type"] == faults.FAILURE_CONDITION
        controller._fire(controller._retries, key)  # the retry is due
        await controller.reconcile(key)  # this time the apiserver takes it
        assert not controller.faults.faults(key)
        await controller.reconcile(key)  # the pod's ADDED event
        types = [c["type"] for c in api.writes("status")[-1][2]["conditions"]]
        assert faults.FAILURE_CONDITION not in types

    run(scenario)


def test_failing_creates_back_off_exponentially_however_many_events_arrive() -> None:
    """A refused create is attempted again only when its retry is due: passes that events trigger in
    between leave it alone, so the backoff (5, 10, 20 s …) is per attempt, not per event."""

    async def scenario() -> None:
        job = kubeflow_job(KIND, {"Master": 1})
        api = FakeApi()
        api.create_errors = {"job-master-0": [api_error(422)] * 6}  # its pod and its service
        controller, key = controller_for(FakeCluster(KIND, job), api)
        loop = asyncio.get_running_loop()
        delays = []
        for _ in range(3):
            await controller.reconcile(key)  # the due retry: attempts and fails
            delays.append(round(controller._retries[key].when() - loop.time()))
            attempts = len(api.writes("create"))
            for _event in range(3):  # pod and job events meanwhile
                await controller.reconcile(key)
            assert len(api.writes("create")) == attempts, "no attempt before the retry is due"
            assert round(controller._retries[key].when() - loop.time()) == delays[-1]
            controller._fire(controller._retries, key)  # the retry timer goes off
        assert delays == [5, 10, 20]

    run(scenario)


# -- watch lag, plan errors, leadership ------------------------------------------------------------


def test_a_deleted_pod_still_in_the_cache_is_seen_terminating_not_failed_again() -> None:
    """Restart of a failed pod: the next pass (before the watch saw the delete) neither counts the
    failure again nor creates the name while the old pod may still exist."""

    async def scenario() -> None:
        job = kubeflow_job(KIND, {"Master": 1}, restart_policy="OnFailure")
        cluster = FakeCluster(KIND, job)
        cluster.step()
        cluster.run_all()
        cluster.step(later(5))
        cluster.set_phase("job-master-0", "Failed", exit_code=1)
        cluster.pods["job-master-0"]["metadata"]["uid"] = "uid-m"
        api = FakeApi()
        controller, key = controller_for(cluster, api)
        await controller.reconcile(key)
        assert ("delete", "Pod", "job-master-0", "uid-m") in api.calls
        assert api.writes("status")[-1][2]["restarts"] == 1
        api.calls.clear()
        await controller.reconcile(key)  # the index still holds the failed pod
        assert api.writes("create") == []
        assert all(c[2].get("restarts") == 1 for c in api.writes("status"))
        seen = controller.children_of("uid-1")["Pod"]["job-master-0"]
        assert seen["metadata"]["deletionTimestamp"]

    run(scenario)


def test_an_exception_in_plan_is_a_warning_event_on_the_job_and_a_retry() -> None:
    class Broken:
        resource = KIND.resource
        job_name_label = KIND.job_name_label

        def plan(self, observed: Observed) -> Plan:
            raise KeyError("replicaSpecs")

        def phase(self, status: Any) -> str:
            return ""

        def unwatched_children(self, job: Any) -> list[Any]:
            return []

    async def scenario() -> None:
        api = FakeApi()
        controller, key = controller_for(FakeCluster(KIND, kubeflow_job(KIND, {"Master": 1})), api)
        controller.jobs[key].kind = Broken()  # type: ignore[assignment]
        await controller.reconcile(key)
        assert [c[1] for c in api.calls] == ["ReconcileError"]
        assert "KeyError" in api.calls[0][2]
        assert key in controller._retries

    run(scenario)


def test_only_a_started_controller_works_and_stopping_cancels_at_once() -> None:
    async def scenario() -> None:
        api = FakeApi()
        controller, key = controller_for(FakeCluster(KIND, kubeflow_job(KIND, {"Master": 1})), api)
        controller.enqueue(key)
        await asyncio.sleep(0.05)
        assert api.calls == []  # a follower keeps its caches but writes nothing
        controller.start()
        for _ in range(100):
            if api.writes("create"):
                break
            await asyncio.sleep(0.01)
        assert api.writes("create")
        await controller.stop()
        assert not controller.leading

    run(scenario)


def test_a_403_on_the_podgroup_crd_lookup_is_an_error_that_says_so_not_absent() -> None:
    from jobwarden.shell.api import KubeApi

    class Client:
        def __init__(self, status: int) -> None:
            self.status = status

        async def get(self, path: str) -> None:
            raise api_error(self.status, "Forbidden" if self.status == 403 else "Not Found")

    async def scenario() -> None:
        api = KubeApi.__new__(KubeApi)
        api.client = Client(404)  # type: ignore[assignment]
        assert await api.crd_exists("podgroups.scheduling.volcano.sh") is False
        api.client = Client(403)  # type: ignore[assignment]
        with pytest.raises(
            PermissionError, match=r"grant get on apiextensions\.k8s\.io/customresourcedefinitions"
        ):
            await api.crd_exists("podgroups.scheduling.volcano.sh")

    run(scenario)


def test_a_lagging_watch_event_never_rolls_the_cached_job_back() -> None:
    """Our status write returned version 12; the watch then delivers version 11 (written before it):
    planning from 11 would only earn a 409, so the cache keeps 12."""
    controller, key = controller_for(running_job(), FakeApi())
    newer = controller.jobs[key].body
    newer["metadata"]["resourceVersion"] = "12"
    stale = copy.deepcopy(newer)
    stale["metadata"]["resourceVersion"] = "11"
    controller.observe_job(KIND, stale, "MODIFIED")
    assert controller.jobs[key].body["metadata"]["resourceVersion"] == "12"
    recreated = copy.deepcopy(stale)
    recreated["metadata"]["uid"] = "another-uid"  # deleted and created again under the same name
    controller.observe_job(KIND, recreated, "ADDED")
    assert controller.jobs[key].body["metadata"]["uid"] == "another-uid"


# -- Volcano Commands: deleted only after the status recording the action --------------------------


def volcano_controller(api: FakeApi) -> tuple[Controller, ctl.JobKey, dict[str, Any]]:
    cluster = volcano_running(vcjob(vtask("worker", 2)))
    job = {**cluster.job, "metadata": {**cluster.job["metadata"], "resourceVersion": "7"}}
    uid = job["metadata"]["uid"]
    controller = Controller(api, Settings(), clock=lambda: later(10))  # type: ignore[arg-type]
    controller.indices = {"Pod": {uid: list(copy.deepcopy(cluster.pods).values())}}
    controller.commands = ChildIndex(owner_of=target_uid)
    cluster.command("AbortJob", "job-abortjob-1")
    command = {**cluster.commands[0], "apiVersion": "bus.volcano.sh/v1alpha1", "kind": "Command"}
    command["metadata"] = {
        **command["metadata"],
        "namespace": "ns",
        "creationTimestamp": "2024-05-01T12:00:09Z",
    }
    controller.commands.put(command)
    key = job_key(VOLCANO, job)
    controller.jobs[key] = ctl._Entry(VOLCANO, copy.deepcopy(job))
    return controller, key, command


def test_a_consumed_command_is_deleted_after_the_status_and_never_carried_out_twice() -> None:
    async def scenario() -> None:
        api = FakeApi()
        controller, key, _ = volcano_controller(api)
        await controller.reconcile(key)

        verbs = [c[0] for c in api.calls if c[0] in ("status", "delete_command")]
        assert verbs == ["status", "delete_command"]
        assert api.writes("status")[0][2]["state"]["phase"] == "Aborting"
        assert api.writes("delete_command") == [("delete_command", "job-abortjob-1", "uid-job-abortjob-1")]
        # The watch has not shown the DELETE yet: the Command is still in the index, not carried out again.
        api.calls.clear()
        await controller.reconcile(key)
        assert api.writes("delete_command") == []
        assert not [c for c in api.writes("event") if c[1] == "CommandIssued"]

    run(scenario)


def test_a_refused_status_write_keeps_the_command() -> None:
    async def scenario() -> None:
        api = FakeApi()
        api.status_errors.append(api_error(409))
        controller, key, _ = volcano_controller(api)
        await controller.reconcile(key)

        assert api.writes("delete_command") == []
        assert controller.commands_of(controller.jobs[key].body["metadata"]["uid"])  # still pending

    run(scenario)


def test_the_watch_event_of_an_earlier_write_never_hides_the_answer_of_a_later_one() -> None:
    """The event of our write #1 arrives while write #2 is in flight: the cache must end with #2's
    answer, or the next pass plans from #1 and earns a 409 (seen in the burst benchmark)."""

    async def scenario() -> None:
        cluster = running_job()
        api = FakeApi()
        controller, key = controller_for(cluster, api)
        entry = controller.jobs[key]
        earlier = copy.deepcopy(entry.body)
        earlier["metadata"]["resourceVersion"] = "100"  # our write #1, delivered late by the watch
        original = api.replace_status

        async def slow_write(resource: Resource, job: Body, status: Any) -> dict[str, Any]:
            controller.observe_job(KIND, earlier, "MODIFIED")  # arrives while #2 is in flight
            return await original(resource, job, status)  # answers with resourceVersion 101

        api.replace_status = slow_write  # type: ignore[method-assign]
        await controller._write_status(key, entry, {"startTime": "2024-05-01T12:00:00Z"})
        assert controller.jobs[key].body["metadata"]["resourceVersion"] == "101"

    run(scenario)


def test_a_pass_before_the_watch_shows_the_created_children_creates_nothing_again() -> None:
    """Expectations: the fencing status write's own event queues a second pass that can run before
    the pods' ADDED events arrive. It must not create them again (a 409 and a GET each, measured at
    0.04 per job in a burst before this). The watch's first event of a child ends its expectation."""

    async def scenario() -> None:
        cluster = FakeCluster(KIND, kubeflow_job(KIND, {"Master": 1, "Worker": 2}))
        api = FakeApi()
        controller, key = controller_for(cluster, api)
        await controller.reconcile(key)
        created = api.writes("create")
        assert len(created) == 6  # 3 pods, 3 services
        controller.jobs[key].body["metadata"]["resourceVersion"] = "8"  # our status write's event
        await controller.reconcile(key)
        assert api.writes("create") == created, "nothing created twice"
        uid = cluster.job["metadata"]["uid"]
        pod = {
            "kind": "Pod",
            "metadata": {
                "name": "job-master-0",
                "namespace": "default",
                "uid": "u1",
                "ownerReferences": [
                    {
                        "apiVersion": "kubeflow.org/v1",
                        "kind": "PyTorchJob",
                        "name": "job",
                        "uid": uid,
                        "controller": True,
                    }
                ],
            },
        }
        controller.observe_child(pod)  # the watch showed it (then, say, it was deleted: index empty)
        assert "job-master-0" not in controller.children_of(uid)["Pod"]
        assert "job-worker-0" in controller.children_of(uid)["Pod"], "still expected"

    run(scenario)


def test_urgent_passes_go_before_the_queued_burst_and_a_job_runs_once() -> None:
    """A due run-policy timer or a finished pod is not left behind the jobs of a burst queued before
    it; a job queued ordinarily and then urgently is reconciled once, at the urgent place."""
    order: list[str] = []

    async def scenario() -> None:
        controller = Controller(FakeApi(), Settings(), workers=1)  # type: ignore[arg-type]

        async def record(key: ctl.JobKey) -> None:
            order.append(key[3])

        controller.reconcile = record  # type: ignore[method-assign]
        for name in ("a", "b", "c"):
            controller.enqueue(("kubeflow.org", "pytorchjobs", "ns", name))
        controller.enqueue(("kubeflow.org", "pytorchjobs", "ns", "due"), urgent=True)
        controller.enqueue(("kubeflow.org", "pytorchjobs", "ns", "c"), urgent=True)
        controller.start()
        for _ in range(50):
            await asyncio.sleep(0)
        await controller.stop()

    run(scenario)
    assert order == ["due", "c", "a", "b"]


def test_an_urgent_pass_that_finds_every_worker_busy_runs_at_once_on_a_spare() -> None:
    """Every worker held by a slow pass (a creation burst): a due timer still runs now, on one of at
    most SPARE_WORKERS spares, which end once no urgent pass waits."""
    started: list[str] = []

    async def scenario() -> None:
        release = asyncio.Event()
        controller = Controller(FakeApi(), Settings(), workers=2)  # type: ignore[arg-type]

        async def slow(key: ctl.JobKey) -> None:
            started.append(key[3])
            await release.wait()

        controller.reconcile = slow  # type: ignore[method-assign]
        controller.start()
        for name in ("a", "b", "c"):
            controller.enqueue(("kubeflow.org", "pytorchjobs", "ns", name))
        await asyncio.sleep(0.01)
        assert started == ["a", "b"], "both workers busy"
        for i in range(workqueue.SPARE_WORKERS + 2):
            controller.enqueue(("kubeflow.org", "pytorchjobs", "ns", f"due-{i}"), urgent=True)
        await asyncio.sleep(0.01)
        assert started[2:] == [f"due-{i}" for i in range(workqueue.SPARE_WORKERS)], "spares, bounded"
        release.set()
        await asyncio.sleep(0.01)
        assert started[2 + workqueue.SPARE_WORKERS :] == ["due-4", "due-5", "c"], "urgent ones first"
        assert not controller.queue._spares and controller.queue._urgent_waiting == 0
        await controller.stop()

    run(scenario)


@pytest.mark.parametrize("urgent", [True, False])
def test_an_urgent_pass_deletes_even_while_a_burst_holds_every_write_slot(urgent: bool) -> None:
    async def scenario() -> None:
        cluster = running_job()
        master_succeeded(cluster)
        api = FakeApi()
        controller, key = controller_for(cluster, api)
        controller._inflight = asyncio.Semaphore(0)  # every slot held by other passes' creates
        controller.enqueue(key, urgent=urgent)
        controller.start()
        await asyncio.sleep(0.05)
        deleted = {w[2] for w in api.writes("delete")}
        if urgent:
            assert deleted >= {"job-worker-0", "job-worker-1"}
        else:
            assert deleted == set(), "an ordinary pass waits for a slot"
        await controller.stop()

    run(scenario)


def test_a_deadline_timer_reports_how_late_its_failed_status_was_written() -> None:
    """jobwarden_runpolicy_lateness_seconds: from the due instant (status timestamps) to the answer."""

    async def scenario() -> None:
        job = kubeflow_job(KIND, {"Master": 1, "Worker": 1}, runPolicy={"activeDeadlineSeconds": 30})
        job["metadata"]["resourceVersion"] = "7"
        cluster = FakeCluster(KIND, job)
        cluster.step()
        cluster.run_all()
        cluster.step(later(5))
        api = FakeApi()
        controller, key = controller_for(cluster, api)
        now = [later(10)]
        controller.clock = lambda: now[0]
        await controller.reconcile(key)  # arms the deadline's timer
        due = controller._wake_at[key]
        now[0] = due + (later(0.2) - later(0))
        controller._fire(controller._timers, key)  # the timer goes off, 0.2 s late on this clock
        histogram = metrics.RUNPOLICY_LATENESS.labels("PyTorchJob", "deadline")
        before = histogram._sum.get()
        await controller.reconcile(key)
        failed = api.writes("status")[-1][2]["conditions"][-1]
        assert (failed["type"], failed["status"]) == ("Failed", "True")
        assert abs(histogram._sum.get() - before - 0.2) < 1e-6
        assert key not in controller._fell_due, "one observation per timer"

    run(scenario)


def test_a_write_cancelled_while_waiting_for_a_slot_is_closed_not_left_unawaited() -> None:
    async def scenario() -> None:
        controller = Controller(FakeApi(), Settings())  # type: ignore[arg-type]
        controller._inflight = asyncio.Semaphore(0)
        write = asyncio.sleep(0)
        waiting = asyncio.create_task(controller._bounded(write))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert inspect.getcoroutinestate(write) == inspect.CORO_CLOSED

    run(scenario)


# -- progress-only status writes wait to be merged (issue 13: ≤ 3 status writes per job) -----------


def one_start_not_recorded(window: float) -> tuple[FakeCluster, FakeApi, Controller, ctl.JobKey]:
    """A running job whose cached status counts one Worker fewer than are Running, so that the next
    plan only reports progress, and a controller that merges such writes over `window` seconds."""
    cluster = running_job()
    api = FakeApi()
    controller, key = controller_for(cluster, api)
    controller.coalesce_seconds = window
    controller.jobs[key].body["status"]["replicaStatuses"]["Worker"]["active"] = 1
    return cluster, api, controller, key


def test_a_progress_only_status_write_waits_and_the_pass_after_the_window_writes_it() -> None:
    async def scenario() -> None:
        _, api, controller, key = one_start_not_recorded(0.05)
        await controller.reconcile(key)
        await controller.reconcile(key)  # another pod event inside the window
        assert api.writes("status", "event") == [], "held back, events with it"
        await asyncio.sleep(0.08)
        assert controller.queue.qsize() == 1, "the window's end queues the pass that writes"
        await controller.reconcile(key)
        written = api.writes("status")
        assert [w[2]["replicaStatuses"]["Worker"]["active"] for w in written] == [2]
        assert key not in controller._coalescing and key not in controller._progress_since

    run(scenario)


def test_a_finish_is_written_at_once_even_while_progress_is_held_back() -> None:
    async def scenario() -> None:
        cluster, api, controller, key = one_start_not_recorded(60.0)
        await controller.reconcile(key)
        assert api.writes("status") == [] and key in controller._coalescing
        master_succeeded(cluster)
        uid = cluster.job["metadata"]["uid"]
        controller.indices["Pod"][uid] = list(copy.deepcopy(cluster.pods).values())  # type: ignore[index]
        await controller.reconcile(key)
        written = api.writes("status")
        assert len(written) == 1 and written[0][2]["conditions"][-1]["type"] == "Succeeded"
        assert api.writes("delete"), "and the cleanup it fences"
        assert key not in controller._coalescing, "the pending merge is dropped with the write"

    run(scenario)


def test_with_no_window_every_progress_is_written_at_once() -> None:
    async def scenario() -> None:
        _, api, controller, key = one_start_not_recorded(0.0)
        await controller.reconcile(key)
        assert len(api.writes("status")) == 1

    run(scenario)


def test_stopping_cancels_the_pending_merges_and_batches_so_a_follower_writes_nothing() -> None:
    async def scenario() -> None:
        _, api, controller, key = one_start_not_recorded(0.05)
        controller.batch_seconds = 0.05
        controller.start()
        await controller.reconcile(key)
        controller.observe_child(owned_pod("job-worker-0", "Running"))
        assert controller._coalescing and controller._batching
        await controller.stop()
        assert not controller._coalescing and not controller._batching and not controller._progress_since
        await asyncio.sleep(0.1)
        assert controller.queue.qsize() == 0 and api.writes("status") == [], "nothing fired after stop"

    run(scenario)


def test_only_a_plan_whose_sole_write_is_an_unfinished_status_reports_progress() -> None:
    status = {"conditions": []}
    assert Plan(status=status).only_reports_progress(finished=False)
    assert not Plan(status=status).only_reports_progress(finished=True)
    assert not Plan().only_reports_progress(finished=False), "nothing to write"
    assert not Plan(status=status, delete=[ChildRef("Pod", "p")]).only_reports_progress(finished=False)
    assert not Plan(status=status, create=[{"kind": "Pod"}]).only_reports_progress(finished=False)
    assert not Plan(status=status, consumed_commands=["c"]).only_reports_progress(finished=False)
    assert not Plan(status=status, delete_job=True).only_reports_progress(finished=False)


def owned_pod(name: str, phase: str) -> dict[str, Any]:
    ref = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "job", "uid": "u"}
    ref["controller"] = True
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "ownerReferences": [ref]},
        "status": {"phase": phase},
    }


def test_a_run_of_child_events_brings_one_pass_and_a_finished_pod_goes_at_once() -> None:
    async def scenario() -> None:
        controller = Controller(FakeApi(), Settings())  # type: ignore[arg-type]
        controller.batch_seconds = 0.05
        for name in ("job-master-0", "job-worker-0", "job-worker-1"):
            for phase in ("Pending", "Running"):
                controller.observe_child(owned_pod(name, phase))
        assert controller.queue.qsize() == 0, "waiting for the rest of the run"
        await asyncio.sleep(0.08)
        assert controller.queue.qsize() == 1, "one pass for the six events"
        assert controller.queue._heap.get_nowait()[0] == workqueue.ORDINARY
        controller.observe_child(owned_pod("job-master-0", "Succeeded"))
        assert controller.queue._heap.get_nowait()[0] == workqueue.URGENT, "a finished pod is not delayed"

    run(scenario)


# -- where plans run ------------------------------------------------------------------------------


class _PlanSpy:
    """The PyTorchJob kind, noting on which thread each plan ran; `slow` makes a plan use more CPU
    than INLINE_PLAN_SECONDS."""

    def __init__(self) -> None:
        self.on_loop: list[bool] = []
        self.slow = False

    def plan(self, observed: Observed) -> Plan:
        self.on_loop.append(threading.current_thread() is threading.main_thread())
        if self.slow:
            until = time.thread_time() + 2 * ctl.INLINE_PLAN_SECONDS
            while time.thread_time() < until:
                pass
        return KIND.plan(observed)

    def __getattr__(self, name: str) -> Any:
        return getattr(KIND, name)


def test_a_plan_runs_on_the_loop_only_once_the_same_generation_planned_cheaply() -> None:
    """Handing a small job's plan to a thread costs as much CPU as the plan; a job's first plan, the
    first after a spec change and any plan of a job whose plans are slow still leave the loop."""

    async def scenario() -> None:
        controller, key = controller_for(running_job(), FakeApi())
        spy = _PlanSpy()
        entry = controller.jobs[key]
        entry.kind = spy  # type: ignore[assignment]
        for _ in range(2):
            await controller.reconcile(key)
        entry.body["metadata"]["generation"] = 2  # the spec changed
        for _ in range(2):
            await controller.reconcile(key)
        spy.slow = True
        for _ in range(2):
            await controller.reconcile(key)
        assert spy.on_loop == [False, True, False, True, True, False]

    run(scenario)


def test_urgent_child_writes_wait_for_a_slot_of_their_own_bound() -> None:
    """A group of deadlines is 8 deletes per job: unbounded, the first jobs' deletes slowed the last
    ones' status writes. The status write (the decision) never waits for a slot."""

    async def scenario() -> None:
        cluster = running_job()
        master_succeeded(cluster)
        api = FakeApi()
        controller, key = controller_for(cluster, api)
        controller._urgent_inflight = asyncio.Semaphore(0)  # every urgent slot held by other passes
        controller.enqueue(key, urgent=True)
        controller.start()
        await asyncio.sleep(0.05)
        assert api.writes("status") and not api.writes("delete"), "decided, the cleanup waits"
        for _ in range(8):
            controller._urgent_inflight.release()
        await asyncio.sleep(0.05)
        assert {w[2] for w in api.writes("delete")} >= {"job-worker-0", "job-worker-1"}
        await controller.stop()

    run(scenario)


# -- unwatched children after a restart (issue 27) --------------------------------------------------


def test_after_a_restart_the_ssh_secret_is_looked_up_once_and_a_kill_removes_it() -> None:
    """The issue's timeline: the job restarted (controlledResources cleared), the operator was killed
    before the ssh plugin recorded itself again, and the new process's first pass fails the job
    (MaxRetryReached). The Secret made before the restart still exists: it must go with the kill."""

    async def scenario() -> None:
        job_spec = vcjob(vtask("worker", 2), maxRetry=2, plugins={"ssh": [], "svc": [], "env": []})
        cluster = volcano_running(job_spec)
        secret = cluster.children["Secret"]["job-ssh"]
        # What the job's status held when the new process started: restarted twice (= maxRetry), and
        # the ssh plugin not recorded again before the SIGKILL.
        status = cluster.job["status"]
        status["state"] = {"phase": "Restarting", "reason": "RestartJob"}
        status.update(retryCount=2, version=2, controlledResources={"plugin-env": "env", "plugin-svc": "svc"})
        job = {**cluster.job, "metadata": {**cluster.job["metadata"], "resourceVersion": "7"}}
        uid = job["metadata"]["uid"]
        api = FakeApi()
        api.existing["job-ssh"] = secret
        controller = Controller(api, Settings(), clock=lambda: later(20))  # type: ignore[arg-type]
        controller.indices = {
            kind: {uid: list(copy.deepcopy(cluster.children[kind]).values())}
            for kind in ("Pod", "Service", "ConfigMap", "NetworkPolicy")
        }
        key = job_key(VOLCANO, job)
        controller.jobs[key] = ctl._Entry(VOLCANO, copy.deepcopy(job))

        await controller.reconcile(key)
        (status,) = api.writes("status")
        assert status[2]["state"]["phase"] == "Failed" and status[2]["state"]["reason"] == "MaxRetryReached"
        deleted = {(c[1], c[2]): c[3] for c in api.writes("delete")}
        assert deleted[("Secret", "job-ssh")] == "uid-job-ssh", "deleted, with its uid as precondition"
        assert {("Service", "job"), ("ConfigMap", "job-svc"), ("NetworkPolicy", "job")} <= set(deleted)
        # Looked up once per job and process: the next pass reads nothing again.
        api.existing.clear()
        await controller.reconcile(key)

    run(scenario)


def test_a_secret_of_the_same_name_another_owner_controls_is_neither_shown_nor_removed() -> None:
    async def scenario() -> None:
        job_spec = vcjob(vtask("worker", 1), plugins={"ssh": []})
        cluster = volcano_running(job_spec)
        cluster.job["status"]["state"]["phase"] = "Failed"
        cluster.job["status"].pop("controlledResources", None)
        job = {**cluster.job, "metadata": {**cluster.job["metadata"], "resourceVersion": "7"}}
        foreign = copy.deepcopy(cluster.children["Secret"]["job-ssh"])
        foreign["metadata"]["ownerReferences"] = [{"controller": True, "uid": "someone-else"}]
        api = FakeApi()
        api.existing["job-ssh"] = foreign
        controller = Controller(api, Settings(), clock=lambda: later(20))  # type: ignore[arg-type]
        controller.indices = {"Pod": {job["metadata"]["uid"]: list(copy.deepcopy(cluster.pods).values())}}
        key = job_key(VOLCANO, job)
        controller.jobs[key] = ctl._Entry(VOLCANO, copy.deepcopy(job))
        await controller.reconcile(key)
        assert ("Secret", "job-ssh") not in {(c[1], c[2]) for c in api.writes("delete")}

    run(scenario)


def test_a_finished_launcher_job_goes_at_once() -> None:
    """MPIJob's launcher Job finishing decides the MPIJob (Succeeded/Failed): an urgent pass."""
    ref = {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "name": "pi",
        "uid": "u",
        "controller": True,
    }

    def launcher(conditions: list[dict[str, str]]) -> dict[str, Any]:
        meta = {"name": "pi-launcher", "namespace": "ns", "ownerReferences": [ref]}
        return {"kind": "Job", "metadata": meta, "status": {"conditions": conditions}}

    async def scenario() -> None:
        controller = Controller(FakeApi(), Settings())  # type: ignore[arg-type]
        controller.batch_seconds = 0.05
        controller.observe_child(launcher([{"type": "Complete", "status": "False"}]))
        assert controller.queue.qsize() == 0, "an unfinished Job waits for the rest of the run"
        controller.observe_child(launcher([{"type": "Complete", "status": "True"}]))
        assert controller.queue._heap.get_nowait()[0] == workqueue.URGENT

    run(scenario)
