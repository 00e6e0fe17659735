"""Gang scheduling of the Kubeflow kinds by Volcano, against training-operator release-1.9 with
`--gang-scheduler-name=volcano`: `pkg/controller.v1/common/job.go` (ReconcileJobs: minMember defaults
to all replicas, queue to `default`, priorityClass and minResources from `runPolicy.schedulingPolicy`,
minResources computed when not given; no pods or services while the PodGroup is not admitted; the
PodGroup deleted when the job finishes or is suspended), `common/scheduling.go` (SyncPodGroup: named
after the job, owned by it, with the job's annotations), `common/util.go` (CalcPGMinResources,
AddResourceList: requests, else limits), `control/podgroup_control.go` (VolcanoControl:
`schedulerName: volcano` unless set, annotations `scheduling.k8s.io/group-name` and
`volcano.sh/task-spec`, pods delayed while the phase is "" or Pending) and `common/pod.go` (the
`SetPodTemplateSchedulerName` warning)."""

from __future__ import annotations

import copy
from typing import Any

from kubeflow_helpers import FakeCluster, created, deleted, fresh, kubeflow_job, later, seed

from jobwarden.core.plan import Event, Settings
from jobwarden.kinds.kubeflow import gang as kubeflow_gang
from jobwarden.kinds.kubeflow import pytorchjob, tfjob

TORCH = pytorchjob.KIND
TF = tfjob.KIND
GANG = Settings(gang_scheduler="volcano", volcano_scheduler_installed=True)


def admit(cluster: FakeCluster, phase: str = "Inqueue") -> None:
    """Volcano's scheduler writes the PodGroup's phase."""
    for group in cluster.podgroups.values():
        group["status"] = {"phase": phase}


def test_off_by_default_and_without_the_crd() -> None:
    for settings in (Settings(volcano_scheduler_installed=True), Settings(gang_scheduler="volcano")):
        plan = FakeCluster(TORCH, fresh(seed("pytorchjob-put")), settings).step()
        assert created(plan, "PodGroup") == {}
        pod = created(plan, "Pod")["pytorch-test-master-0"]
        assert "schedulerName" not in pod["spec"]
        assert kubeflow_gang.GROUP_NAME_ANNOTATION not in (pod["metadata"].get("annotations") or {})


def test_the_podgroup_comes_first_with_upstream_defaults_and_pods_wait_for_admission() -> None:
    job = fresh(seed("pytorchjob-put"))
    job["metadata"]["annotations"] = {"team": "vision"}
    cluster = FakeCluster(TORCH, job, GANG)
    plan = cluster.step()
    assert [m["kind"] for m in plan.create] == ["PodGroup"]
    group = created(plan, "PodGroup")["pytorch-test"]
    assert group["apiVersion"] == "scheduling.volcano.sh/v1beta1"
    assert group["metadata"]["annotations"] == {"team": "vision"}
    assert group["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    # Master and Worker each ask for cpu 2 and 4Gi (requests): minMember 2 counts both.
    assert group["spec"] == {
        "minMember": 2,
        "queue": "default",
        "minResources": {"cpu": "4", "memory": "8Gi"},
    }
    assert cluster.step(later(1)).create == []  # phase "" : not admitted yet
    admit(cluster, "Pending")
    assert cluster.step(later(2)).create == []
    admit(cluster)
    plan = cluster.step(later(3))
    assert (
        set(created(plan, "Pod"))
        == set(created(plan, "Service"))
        == {
            "pytorch-test-master-0",
            "pytorch-test-worker-0",
        }
    )
    worker = created(plan, "Pod")["pytorch-test-worker-0"]
    assert worker["spec"]["schedulerName"] == "volcano"
    assert worker["metadata"]["annotations"] == {
        "scheduling.k8s.io/group-name": "pytorch-test",
        "volcano.sh/task-spec": "worker",
    }


def test_scheduling_policy_sets_min_member_queue_priority_and_resources() -> None:
    policy = {
        "minAvailable": 1,
        "queue": "research",
        "priorityClass": "high",
        "minResources": {"cpu": "3", "nvidia.com/gpu": 1},
        "scheduleTimeoutSeconds": 60,  # scheduler-plugins only: not in Volcano's PodGroup
    }
    job = kubeflow_job(TF, {"Worker": 3}, runPolicy={"schedulingPolicy": policy})
    group = created(FakeCluster(TF, job, GANG).step(), "PodGroup")["job"]
    assert group["spec"] == {
        "minMember": 1,
        "queue": "research",
        "priorityClassName": "high",
        "minResources": {"cpu": "3", "nvidia.com/gpu": 1},
    }


def test_computed_min_resources_count_the_first_min_member_pods_requests_else_limits() -> None:
    job = kubeflow_job(TF, {"PS": 1, "Worker": 3}, runPolicy={"schedulingPolicy": {"minAvailable": 3}})
    specs = job["spec"]["tfReplicaSpecs"]
    specs["PS"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"cpu": "500m", "memory": "1Gi"}
    }
    worker = specs["Worker"]["template"]["spec"]["containers"][0]
    # Requests present: the limits are not counted, even for a resource only limited.
    worker["resources"] = {"requests": {"cpu": "250m"}, "limits": {"cpu": 1, "nvidia.com/gpu": 1}}
    group = created(FakeCluster(TF, job, GANG).step(), "PodGroup")["job"]
    # PS-0 (limits), Worker-0, Worker-1 (requests); Worker-2 is beyond minMember.
    assert group["spec"]["minResources"] == {"cpu": "1", "memory": "1Gi"}


def test_a_scheduler_named_in_the_template_is_kept_with_a_warning() -> None:
    job = kubeflow_job(TF, {"Worker": 1})
    job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["schedulerName"] = "my-scheduler"
    cluster = FakeCluster(TF, job, GANG)
    cluster.step()
    admit(cluster)
    plan = cluster.step(later(1))
    assert created(plan, "Pod")["job-worker-0"]["spec"]["schedulerName"] == "my-scheduler"
    warning = Event("Warning", "SetPodTemplateSchedulerName", kubeflow_gang.CUSTOM_SCHEDULER_MESSAGE)
    assert warning in plan.events


def running_gang(job: dict[str, Any]) -> FakeCluster:
    cluster = FakeCluster(TORCH, job, GANG)
    cluster.step()
    admit(cluster)
    cluster.step(later(1))
    cluster.run_all()
    cluster.step(later(2))
    return cluster


def test_the_podgroup_goes_when_the_job_finishes() -> None:
    cluster = running_gang(fresh(seed("pytorchjob-put")))
    cluster.set_phase("pytorch-test-master-0", "Succeeded")
    plan = cluster.step(later(10))
    assert deleted(plan, "PodGroup") == {"pytorch-test"}
    assert cluster.podgroups == {}
    assert cluster.step(later(11)).create == []  # never made again for a finished job


def test_suspend_deletes_the_podgroup_and_resume_makes_it_again_before_any_pod() -> None:
    cluster = running_gang(fresh(seed("pytorchjob-put")))
    job = copy.deepcopy(cluster.job)
    job["spec"]["runPolicy"] = {"suspend": True}
    cluster.job = job
    plan = cluster.step(later(10))
    assert deleted(plan, "PodGroup") == {"pytorch-test"}
    assert cluster.pods == {}
    cluster.job["spec"]["runPolicy"]["suspend"] = False
    plan = cluster.step(later(20))
    assert [m["kind"] for m in plan.create] == ["PodGroup"]
    admit(cluster)
    assert len(created(cluster.step(later(21)), "Pod")) == 2
