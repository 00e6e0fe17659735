"""jobwarden beside parts of a real Volcano (issue 14, item 4), with stand-ins for Volcano's PodGroup
and Queue CRDs (tests/integration/fixtures/): the test plays Volcano's scheduler (it writes the
PodGroup's status phase) and its queue controller (it writes a Queue's `status.state`).

- a job whose PodGroup waits on a Closed or missing queue says so in `status.state` and an event;
- after a scale, the PodGroup gets a merge patch of the spec fields jobwarden owns: what the
  scheduler wrote (status, its own annotations) stays, and `minTaskMember` keeps its creation value.

A cluster of its own: the operator decides at start which Volcano CRDs exist."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from clusters import local_cluster
from devcluster import cluster as devcluster
from devcluster import pods
from devcluster.operator import LocalOperator

from testlib import ROOT, creatable, load_seed, wait_for

FIXTURES = ROOT / "tests" / "integration" / "fixtures"
VOLCANO_POLICY = "jobwarden-updates.batch.volcano.sh"
Cluster = devcluster.Cluster


@pytest.fixture(scope="module")
def volcano(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, LocalOperator]]:
    with local_cluster("volcano-beside") as c:
        for crd, fixture in (("podgroups", "podgroup-crd.yaml"), ("queues", "queue-crd.yaml")):
            c.kubectl("apply", "--server-side", "-f", str(FIXTURES / fixture))
            c.kubectl(
                "wait", "--for=condition=Established", f"crd/{crd}.scheduling.volcano.sh", "--timeout=60s"
            )
        queue(c, "default", "Open")
        operator = LocalOperator(c, tmp_path_factory.mktemp("volcano-beside") / "operator.log")
        operator.start()
        yield c, operator
        operator.stop()


@pytest.fixture(autouse=True)
def clean_operator_log(volcano: tuple[Cluster, LocalOperator]) -> Iterator[None]:
    yield
    assert "Traceback" not in volcano[1].logs(), "the operator logged a traceback"


def queue(c: Cluster, name: str, state: str | None) -> None:
    body = {"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "Queue", "metadata": {"name": name}}
    c.kubectl("apply", "-f", "-", input=json.dumps({**body, "spec": {}}))
    if state:
        c.kubectl("patch", "queue", name, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": {"state": state}}))  # fmt: skip


def get(c: Cluster, *args: str) -> dict[str, Any] | None:
    out = c.kubectl("get", *args, "-o", "json", check=False)
    return dict(json.loads(out.stdout)) if out.returncode == 0 else None


def new_namespace(c: Cluster, name: str) -> str:
    c.kubectl("create", "namespace", name)
    wait_for(lambda: c.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0, 30)
    return name


def one_task_job(namespace: str, name: str, queue_name: str = "", replicas: int = 1) -> dict[str, Any]:
    """The seed's worker task alone, no job-level minAvailable (Volcano's default: the tasks' sum)."""
    body = creatable(load_seed("volcanojob-put.request.json"), namespace)
    worker = next(t for t in body["spec"]["tasks"] if t["name"] == "mpiworker")
    worker.update(name="worker", replicas=replicas)
    worker.pop("policies", None)
    body["metadata"]["name"] = name
    body["spec"].update(tasks=[worker], plugins={"env": []})
    body["spec"].pop("minAvailable", None)
    if queue_name:
        body["spec"]["queue"] = queue_name
    return body


def state_of(c: Cluster, namespace: str, name: str) -> dict[str, Any]:
    job = get(c, "vcjob", name, "-n", namespace) or {}
    return dict((job.get("status") or {}).get("state") or {})


def warnings(c: Cluster, namespace: str) -> list[tuple[str, str]]:
    found = get(c, "events", "-n", namespace) or {}
    return [(e["reason"], e["message"]) for e in found.get("items") or [] if e.get("type") == "Warning"]


def test_a_job_waiting_on_a_closed_or_missing_queue_names_it(volcano: tuple[Cluster, LocalOperator]) -> None:
    c, operator = volcano
    assert "volcano-scheduler=True" in operator.logs()
    ns = new_namespace(c, "vq")
    queue(c, "closed-q", "Closed")
    c.kubectl("apply", "-f", "-", input=json.dumps(one_task_job(ns, "waits", "closed-q")))
    c.kubectl("apply", "-f", "-", input=json.dumps(one_task_job(ns, "lost", "no-such-q")))

    closed = "Queue closed-q is Closed: PodGroup waits-"
    state = wait_for(lambda: (s := state_of(c, ns, "waits")).get("reason") == "QueueNotOpen" and s, 30,
                     what="the job naming its closed queue")  # fmt: skip
    assert state["phase"] == "Pending" and state["message"].startswith(closed)
    assert wait_for(
        lambda: [m for r, m in warnings(c, ns) if r == "QueueNotOpen" and m.startswith(closed)], 30
    )
    lost = wait_for(lambda: (s := state_of(c, ns, "lost")).get("reason") == "QueueNotFound" and s, 30)
    assert lost["message"].startswith("Queue no-such-q does not exist")
    assert c.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.strip() == ""

    # Volcano's queue controller opens it; the job waits for the scheduler alone, then runs.
    queue(c, "closed-q", "Open")
    wait_for(lambda: state_of(c, ns, "waits").get("reason", "") == "", 30, what="the queue reason gone")
    job = get(c, "vcjob", "waits", "-n", ns) or {}
    group = f"waits-{job['metadata']['uid']}"
    c.kubectl("patch", "podgroup", group, "-n", ns, "--subresource=status", "--type=merge",
              "-p", '{"status":{"phase":"Inqueue"}}')  # fmt: skip
    wait_for(lambda: get(c, "pod", "waits-worker-0", "-n", ns), 30, what="the pod once admitted")


def test_a_scale_patches_only_the_podgroup_fields_jobwarden_owns(
    volcano: tuple[Cluster, LocalOperator],
) -> None:
    c, _ = volcano
    ns = new_namespace(c, "vp")
    c.kubectl("apply", "-f", "-", input=json.dumps(one_task_job(ns, "grows")))
    job = wait_for(lambda: get(c, "vcjob", "grows", "-n", ns), 30)
    name = f"grows-{job['metadata']['uid']}"
    group = wait_for(lambda: get(c, "podgroup", name, "-n", ns), 30, what="the PodGroup")
    assert (group["spec"]["minMember"], group["spec"]["minTaskMember"]) == (1, {"worker": 1})
    # The scheduler admits it and writes what is its own.
    c.kubectl("patch", "podgroup", name, "-n", ns, "--subresource=status", "--type=merge",
              "-p", '{"status":{"phase":"Running","running":1}}')  # fmt: skip
    c.kubectl("annotate", "podgroup", name, "-n", ns, "scheduling.volcano.sh/by-scheduler=kept")
    wait_for(lambda: get(c, "pod", "grows-worker-0", "-n", ns), 30)

    c.kubectl("patch", "vcjob", "grows", "-n", ns, "--type=json",
              "-p", '[{"op":"replace","path":"/spec/tasks/0/replicas","value":2}]')  # fmt: skip

    def grown() -> dict[str, Any] | None:
        found = get(c, "podgroup", name, "-n", ns)
        return found if found and found["spec"]["minMember"] == 2 else None

    patched = wait_for(grown, 30, what="the PodGroup patched after the scale")
    assert patched["spec"]["minTaskMember"] == {"worker": 1}  # Volcano's default, fixed at creation
    assert patched["status"] == {"phase": "Running", "running": 1}
    assert patched["metadata"]["annotations"]["scheduling.volcano.sh/by-scheduler"] == "kept"
    assert not [w for w in warnings(c, ns) if "PodGroup" in w[0] or "podgroup" in w[1]]


def managers(obj: dict[str, Any]) -> set[tuple[str, str]]:
    """(manager, subresource) of every entry in the object's managedFields."""
    entries = obj["metadata"].get("managedFields") or []
    return {(e["manager"], e.get("subresource", "")) for e in entries}


def test_every_write_of_a_lifecycle_is_recorded_under_jobwarden(
    volcano: tuple[Cluster, LocalOperator],
) -> None:
    """Issue 25: jobwarden's writes carry `fieldManager=jobwarden` (and a `jobwarden/<version>`
    User-Agent), so `kubectl get --show-managed-fields` tells them from anyone's; before, the apiserver
    recorded them under `unknown`. Also: the phase log names the job, and no per-child event is posted
    on a Volcano Job (Volcano posts none)."""
    c, operator = volcano
    ns = new_namespace(c, "vm")
    body = one_task_job(ns, "tracked")
    body["spec"]["tasks"][0]["policies"] = [{"event": "TaskCompleted", "action": "CompleteJob"}]
    body["spec"]["schedulerName"] = "default-scheduler"  # no Volcano scheduler runs here to place it
    c.kubectl("apply", "-f", "-", input=json.dumps(body))
    job = wait_for(lambda: get(c, "vcjob", "tracked", "-n", ns), 30)
    group = f"tracked-{job['metadata']['uid']}"
    wait_for(lambda: get(c, "podgroup", group, "-n", ns), 30, what="the PodGroup")
    c.kubectl("patch", "podgroup", group, "-n", ns, "--subresource=status", "--type=merge",
              "-p", '{"status":{"phase":"Inqueue"}}')  # fmt: skip
    pod = pods.wait_running(c, ns, "tracked-worker-0")
    pods.finish(c, ns, "tracked-worker-0", 0)
    wait_for(lambda: state_of(c, ns, "tracked").get("phase") == "Completed", 30, what="Completed")

    job = get(c, "vcjob", "tracked", "-n", ns, "--show-managed-fields") or {}
    assert ("jobwarden", "status") in managers(job), managers(job)
    pod = get(c, "pod", "tracked-worker-0", "-n", ns, "--show-managed-fields") or {}
    assert ("jobwarden", "") in managers(pod), managers(pod)
    group_body = get(c, "podgroup", group, "-n", ns, "--show-managed-fields")
    assert group_body is None or ("jobwarden", "") in managers(group_body)  # deleted once finished
    events = (get(c, "events", "-n", ns, "--show-managed-fields") or {}).get("items") or []
    ours = [e for e in events if (e.get("source") or {}).get("component") == "jobwarden"]
    assert "ExecuteAction" in {e["reason"] for e in ours}
    assert all(managers(e) == {("jobwarden", "")} for e in ours), [managers(e) for e in ours]
    lease = get(c, "lease", operator.lease, "-n", operator.lease_namespace or "", "--show-managed-fields")
    assert lease and ("jobwarden", "") in managers(lease)
    everything = [job, pod, lease, *events, *([group_body] if group_body else [])]
    assert not [m for o in everything for m in managers(o) if m[0] == "unknown"]

    reasons = {e["reason"] for e in events}
    assert not {r for r in reasons if r.startswith(("SuccessfulCreate", "SuccessfulDelete"))}, reasons
    assert f"Job {ns}/tracked phase (new) -> Pending" in operator.logs()


@pytest.fixture(scope="module")
def volcano_serves_jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, LocalOperator]]:
    """A cluster where Volcano's installation replaced the jobs CRD (here: ours, relabelled as Volcano's
    would carry no jobwarden label) before the operator starts."""
    with local_cluster("volcano-aside") as c:
        c.kubectl("label", "--overwrite", "crd", "jobs.batch.volcano.sh", "app.kubernetes.io/name=volcano")
        # What a run of jobwarden that served Volcano Jobs left (local mode installs the policies).
        shipped = yaml.safe_load_all(
            (ROOT / "manifests" / "policy" / "validatingadmissionpolicies.yaml").read_text()
        )
        volcano_policy = [o for o in shipped if o["metadata"]["name"] == VOLCANO_POLICY]
        c.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(volcano_policy))
        operator = LocalOperator(c, tmp_path_factory.mktemp("volcano-aside") / "operator.log")
        operator.start()
        yield c, operator
        operator.stop()


def test_jobwarden_stands_aside_when_volcano_serves_its_jobs(
    volcano_serves_jobs: tuple[Cluster, LocalOperator],
) -> None:
    """Issue 14, 4(a): `--volcano-jobs=auto` (the default) sees the jobs CRD is not jobwarden's: one log
    line and one event say why, Volcano jobs are neither reconciled nor refused."""
    c, operator = volcano_serves_jobs
    why = "the CRD jobs.batch.volcano.sh is not jobwarden's"
    wait_for(lambda: why in operator.logs(), 30, what="the log line")
    lines = operator.logs().splitlines()
    assert sum("not reconciling or admitting batch.volcano.sh Jobs" in line for line in lines) == 1
    ns = new_namespace(c, "va")
    body = one_task_job(ns, "theirs")
    body["spec"]["minAvailable"] = 5  # more than the replicas: jobwarden's webhook would refuse it (400)
    c.kubectl("apply", "-f", "-", input=json.dumps(body))
    time.sleep(3)  # nothing may happen: Volcano's controller (absent here) owns the job

    job = get(c, "vcjob", "theirs", "-n", ns) or {}
    assert "status" not in job
    assert c.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.strip() == ""
    events = get(c, "events", "-A", "--field-selector", "reason=VolcanoJobsServedByVolcano") or {}
    (message,) = [e["message"] for e in events.get("items") or []]
    assert message.startswith(f"jobwarden stands aside for Volcano Jobs: --volcano-jobs=auto: {why}")

    # Issue 25: no admission of jobwarden's touches them. The webhook it registered has no rule for
    # them, and the policy a serving run left behind is gone: an update Volcano allows (minAvailable)
    # goes through.
    webhook = get(c, "validatingwebhookconfiguration", "jobwarden") or {}
    # kubeflow.org v1 (six kinds) and v2beta1 (MPIJob); no batch.volcano.sh rule
    assert [r["apiGroups"] for r in webhook["webhooks"][0]["rules"]] == [["kubeflow.org"], ["kubeflow.org"]]
    assert get(c, "validatingadmissionpolicybinding", VOLCANO_POLICY) is None
    assert get(c, "validatingadmissionpolicy", VOLCANO_POLICY) is None
    scale = ["patch", "vcjob", "theirs", "-n", ns, "--type=merge", "-p", '{"spec":{"minAvailable":1}}']
    wait_for(lambda: c.kubectl(*scale, check=False).returncode == 0, 10, what="minAvailable changed")
