"""The training-operator features of issue 14 for TFJob, PyTorchJob and MXJob, against the real control
plane: `runPolicy.suspend` (refused as an update by default; with `--allow-suspend-updates`, a job is
suspended and resumed), gang scheduling by Volcano (`--gang-scheduler=volcano` with the PodGroup CRD
installed), PyTorch's elastic env and `init-pytorch` container, TF's `enableDynamicWorker` and
`successPolicy: AllWorkers`.

Volcano's scheduler cannot be built here: as in test_volcano_scheduler.py, the test installs a stand-in
PodGroup CRD (tests/integration/fixtures/podgroup-crd.yaml) on a cluster of its own, for an operator
started with the gang and suspend settings, and plays the scheduler by writing the PodGroup's phase."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from devcluster import cluster as devcluster
from devcluster.operator import LocalOperator
from kubeflow_steps import PYTORCH, TF, Job, KubeflowKind, condition, create, env_of, replica_spec
from kubernetes import client, config

from testlib import ROOT, creatable, load_seed, wait_for

HERE = ROOT / "tests" / "integration"


def seed_body(kind: KubeflowKind, namespace: str, **run_policy: Any) -> dict[str, Any]:
    body = creatable(load_seed(kind.seed), namespace)
    if run_policy:
        body["spec"].setdefault("runPolicy", {}).update(run_policy)
    return body


def refusal(c: devcluster.Cluster, job: Job, patch: dict[str, Any]) -> str:
    """The apiserver's answer to a merge patch the webhook must refuse."""
    out = c.kubectl(
        "patch", job.kind.resource, job.name, "-n", job.namespace, "--type=merge", "-p", json.dumps(patch),
        check=False,
    )  # fmt: skip
    assert out.returncode != 0, f"the patch {patch} was allowed"
    return str(out.stderr)


# ---------------------------------------------------------------------------------------------
# With the session's operator (default settings).


def test_a_job_created_suspended_makes_nothing_and_may_not_be_resumed_by_default(
    cluster: devcluster.Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator: LocalOperator,
    namespace: str,
) -> None:
    job = create(cluster, core, custom, operator.logs, PYTORCH, seed_body(PYTORCH, namespace, suspend=True))
    body = job.wait_condition("Suspended")
    suspended = condition(body, "Suspended") or {}
    assert (suspended["reason"], suspended["message"]) == (
        "PyTorchJobSuspended",
        f"PyTorchJob {job.name} is suspended.",
    )
    assert "startTime" not in body["status"]
    time.sleep(2)  # nothing may be created meanwhile
    assert job.pods() == {} and job.services() == {}
    answer = refusal(cluster, job, {"spec": {"runPolicy": {"suspend": False}}})
    assert "spec.runPolicy.suspend: field is not updatable" in answer
    assert job.body()["spec"]["runPolicy"]["suspend"] is True
    job.wait_events("PyTorchJobSuspended")


def test_pytorch_elastic_env_and_workers_waiting_for_the_master(
    cluster: devcluster.Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator: LocalOperator,
    namespace: str,
) -> None:
    body = seed_body(PYTORCH, namespace)
    replica_spec(body, PYTORCH, "Worker")["replicas"] = 2
    body["spec"]["elasticPolicy"] = {"minReplicas": 1, "maxReplicas": 3, "maxRestarts": 2}
    job = create(cluster, core, custom, operator.logs, PYTORCH, body)
    pods = job.wait_pods_running(["master-0", "worker-0", "worker-1"])
    worker = pods[job.pod_name("worker-1")]
    env = env_of(worker, "pytorch")
    assert {
        k: env[k] for k in ("PET_RDZV_ENDPOINT", "PET_RDZV_BACKEND", "PET_NNODES", "PET_MAX_RESTARTS")
    } == {
        "PET_RDZV_ENDPOINT": f"{job.name}-worker-0:23456",
        "PET_RDZV_BACKEND": "c10d",
        "PET_NNODES": "1:3",
        "PET_MAX_RESTARTS": "2",
    }
    (init,) = worker.spec.init_containers
    assert (init.name, init.image, init.command[:2]) == ("init-pytorch", "alpine:3.10", ["sh", "-c"])
    assert f"nslookup {job.name}-master-0" in init.command[2]
    assert init.resources.requests == {"cpu": "50m", "memory": "10Mi"}
    assert not pods[job.pod_name("master-0")].spec.init_containers
    job.wait_condition("Running")


def test_tf_dynamic_worker_and_all_workers_success_policy(
    cluster: devcluster.Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator: LocalOperator,
    namespace: str,
) -> None:
    body = seed_body(TF, namespace)
    replica_spec(body, TF, "Worker")["replicas"] = 2
    body["spec"] |= {"enableDynamicWorker": True, "successPolicy": "AllWorkers"}
    job = create(cluster, core, custom, operator.logs, TF, body)
    pods = job.wait_pods_running(["ps-0", "worker-0", "worker-1"])
    ps = f"{job.name}-ps-0.{namespace}.svc:2222"
    assert json.loads(env_of(pods[job.pod_name("worker-1")], "tensorflow")["TF_CONFIG"]) == {
        "cluster": {"worker": {"1": f"{job.name}-worker-1.{namespace}.svc:2222"}, "ps": [ps]},
        "task": {"type": "worker", "index": 1},
    }
    job.wait_condition("Running")

    job.finish("worker-0")
    job.wait(lambda: job.pod_phases().get(job.pod_name("worker-0")) == "Succeeded", "worker-0 Succeeded")
    time.sleep(2)  # worker 0 alone does not finish the job under AllWorkers
    assert condition(job.body(), "Succeeded") is None
    job.finish("worker-1")
    done = job.wait_condition("Succeeded")
    assert done["status"]["replicaStatuses"]["Worker"] == {"succeeded": 2}


# ---------------------------------------------------------------------------------------------
# An operator of its own: Volcano's PodGroup CRD installed, gang scheduling and suspend updates on.


class GangCluster:
    def __init__(self, c: devcluster.Cluster, operator: LocalOperator) -> None:
        self.cluster = c
        self.operator = operator
        api = config.new_client_from_config(config_file=str(c.kubeconfig))
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def namespace(self, name: str) -> str:
        self.cluster.kubectl("create", "namespace", name)
        wait_for(lambda: self.core.list_namespaced_service_account(name).items, 30, what=f"SA in {name}")
        return name

    def create(self, kind: KubeflowKind, body: dict[str, Any]) -> Job:
        return create(self.cluster, self.core, self.custom, self.operator.logs, kind, body)

    def podgroup(self, job: Job) -> dict[str, Any] | None:
        out = self.cluster.kubectl(
            "get", "podgroup", job.name, "-n", job.namespace, "-o", "json", check=False
        )
        return dict(json.loads(out.stdout)) if out.returncode == 0 else None

    def admit(self, job: Job) -> None:
        """What Volcano's scheduler does once the gang fits: the PodGroup's phase leaves Pending."""
        self.cluster.kubectl(
            "patch", "podgroup", job.name, "-n", job.namespace, "--subresource=status", "--type=merge",
            "-p", '{"status":{"phase":"Inqueue"}}',
        )  # fmt: skip

    def bind(self, job: Job) -> None:
        """What Volcano's scheduler does with the pods of an admitted gang: bind them to a node (the
        kube-scheduler leaves pods asking for `volcano` alone; kwok runs them once bound)."""

        def every_pod() -> dict[str, Any] | None:
            found = job.pods()
            return found if len(found) == len(job.kind.slots) else None

        pods = job.wait(every_pod, "every pod of the job")
        node: Any = self.core.list_node().items[0]
        node_name = node.metadata.name
        for pod in pods.values():
            if not pod.spec.node_name:
                binding = client.V1Binding(
                    metadata=client.V1ObjectMeta(name=pod.metadata.name),
                    target=client.V1ObjectReference(kind="Node", name=node_name),
                )
                self.core.create_namespaced_pod_binding(
                    pod.metadata.name, job.namespace, binding, _preload_content=False
                )

    def assert_no_tracebacks(self) -> None:
        assert "Traceback" not in self.operator.logs(), f"see {self.operator.log_path}"


@pytest.fixture(scope="module")
def gang(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GangCluster]:
    name = f"{os.environ.get('JOBWARDEN_TEST_CLUSTER', 'test')}-kubeflow-gang"
    c = devcluster.up(name, crds=ROOT / "crds")
    c.kubectl("apply", "--server-side", "-f", str(HERE / "fixtures" / "podgroup-crd.yaml"))
    c.kubectl("wait", "--for=condition=Established", "crd/podgroups.scheduling.volcano.sh", "--timeout=60s")
    operator = LocalOperator(
        c,
        tmp_path_factory.mktemp("kubeflow-gang") / "operator.log",
        extra_args=["--gang-scheduler=volcano", "--allow-suspend-updates"],
    )
    operator.start()
    yield GangCluster(c, operator)
    operator.stop()
    if not os.environ.get("JOBWARDEN_KEEP_CLUSTER"):
        devcluster.down(name)


def test_gang_scheduled_tfjob_waits_for_its_podgroup(gang: GangCluster) -> None:
    assert "gang-scheduler=volcano" in gang.operator.logs()
    ns = gang.namespace("gang-tf")
    body = seed_body(TF, ns, schedulingPolicy={"queue": "research", "priorityClass": "high"})
    job = gang.create(TF, body)
    group = job.wait(lambda: gang.podgroup(job), "the PodGroup")
    uid = job.body()["metadata"]["uid"]
    assert group["metadata"]["ownerReferences"][0]["uid"] == uid
    assert group["spec"]["minMember"] == 2  # PS and Worker
    assert (group["spec"]["queue"], group["spec"]["priorityClassName"]) == ("research", "high")
    time.sleep(2)  # not admitted: no pod, no service
    assert job.pods() == {} and job.services() == {}

    gang.admit(job)
    gang.bind(job)
    pods = job.wait_pods_running()
    for slot, pod in ((s, pods[job.pod_name(s)]) for s in TF.slots):
        assert pod.spec.scheduler_name == "volcano"
        assert pod.metadata.annotations["scheduling.k8s.io/group-name"] == job.name
        assert pod.metadata.annotations["volcano.sh/task-spec"] == slot.split("-")[0]
    job.wait_services()
    job.wait_condition("Running")

    job.finish(TF.decider)
    job.wait_condition("Succeeded")
    job.wait(lambda: gang.podgroup(job) is None, "the PodGroup deleted with the finished job")
    gang.assert_no_tracebacks()


def test_suspend_and_resume_by_update(gang: GangCluster) -> None:
    ns = gang.namespace("gang-suspend")
    job = gang.create(PYTORCH, seed_body(PYTORCH, ns, cleanPodPolicy="None"))
    job.wait(lambda: gang.podgroup(job), "the PodGroup")
    gang.admit(job)
    gang.bind(job)
    job.wait_pods_running()
    started = job.wait_condition("Running")["status"]["startTime"]

    job.merge_patch({"spec": {"runPolicy": {"suspend": True}}})  # allowed by --allow-suspend-updates
    body = job.wait_condition("Suspended")
    running = next(c for c in body["status"]["conditions"] if c["type"] == "Running")
    assert (running["status"], running["reason"]) == ("False", "PyTorchJobSuspended")
    job.wait_children(pods=set(), services=set())  # whatever the cleanPodPolicy
    job.wait(lambda: gang.podgroup(job) is None, "the PodGroup deleted while suspended")
    assert all("active" not in counts for counts in job.status()["replicaStatuses"].values())

    time.sleep(1.1)  # so the reset start time is visibly later (RFC 3339 seconds)
    job.merge_patch({"spec": {"runPolicy": {"suspend": False}}})
    job.wait(lambda: gang.podgroup(job), "the PodGroup made again on resume")
    resumed = job.body()
    suspended = next(c for c in resumed["status"]["conditions"] if c["type"] == "Suspended")
    assert (suspended["status"], suspended["reason"]) == ("False", "PyTorchJobResumed")
    assert resumed["status"]["startTime"] > started
    gang.admit(job)
    gang.bind(job)
    job.wait_pods_running()
    job.wait_condition("Running")
    job.wait_events("PyTorchJobSuspended", "PyTorchJobResumed", "SuccessfulDeletePodGroup")
    gang.assert_no_tracebacks()


def test_gang_scheduled_mpijob(gang: GangCluster) -> None:
    """MPIJob (mpi-operator v0.8): a PodGroup of workers + launcher; the workers and the launcher Job's
    pod ask for Volcano and name the group, and are made at once (Volcano's scheduler holds them, as
    upstream mpi-operator); once bound they run and the job says Running."""
    ns = gang.namespace("gang-mpi")
    container = {"name": "mpi", "image": "mpi-pi"}
    body = {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "metadata": {"name": "pi", "namespace": ns},
        "spec": {
            "runPolicy": {"schedulingPolicy": {"queue": "research"}},
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "template": {"spec": {"containers": [container]}}},
                "Worker": {"replicas": 2, "template": {"spec": {"containers": [container]}}},
            },
        },
    }
    gang.cluster.kubectl("create", "-f", "-", input=json.dumps(body))

    def podgroup() -> dict[str, Any] | None:
        out = gang.cluster.kubectl("get", "podgroup", "pi", "-n", ns, "-o", "json", check=False)
        return dict(json.loads(out.stdout)) if out.returncode == 0 else None

    group = wait_for(podgroup, 30, what="the MPIJob's PodGroup")
    assert (group["spec"]["minMember"], group["spec"]["queue"]) == (3, "research")

    def every_pod() -> list[Any] | None:
        found: Any = gang.core.list_namespaced_pod(ns)
        return list(found.items) if len(found.items) == 3 else None

    pods = wait_for(every_pod, 30, what="2 workers and the launcher's pod")
    for pod in pods:
        assert pod.spec.scheduler_name == "volcano", pod.metadata.name
        assert pod.metadata.annotations["scheduling.k8s.io/group-name"] == "pi", pod.metadata.name
        assert not pod.spec.node_name, "the kube-scheduler leaves Volcano's pods alone"
    node = gang.core.list_node().items[0].metadata.name
    for pod in pods:
        binding = client.V1Binding(
            metadata=client.V1ObjectMeta(name=pod.metadata.name),
            target=client.V1ObjectReference(kind="Node", name=node),
        )
        gang.core.create_namespaced_pod_binding(pod.metadata.name, ns, binding, _preload_content=False)

    def running() -> bool:
        out = gang.cluster.kubectl(
            "get", "mpijob", "pi", "-n", ns, "-o", "jsonpath={.status.conditions[-1:].type}"
        )
        return out.stdout.strip() == "Running"

    wait_for(running, 30, what="the MPIJob Running")
    gang.assert_no_tracebacks()
