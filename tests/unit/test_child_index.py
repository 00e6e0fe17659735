"""The lean child index (shell/childwatch.py): children by controller owner uid, slim bodies."""

from __future__ import annotations

from typing import Any

from jobwarden.shell.childwatch import ChildIndex, ChildResource, slim


def pod(name: str, owner: str | None, **extra: Any) -> dict[str, Any]:
    refs = [{"controller": True, "uid": owner, "name": "job"}] if owner else []
    meta = {"name": name, "uid": f"uid-{name}", "ownerReferences": refs, "managedFields": [{"x": 1}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {}, **extra}


def test_children_are_listed_by_owner_without_managed_fields() -> None:
    index = ChildIndex()
    index.put(pod("a", "job-1", status={"phase": "Running"}))
    index.put(pod("b", "job-1"))
    index.put(pod("c", "job-2"))
    listed = {p["metadata"]["name"]: p for p in index.get("job-1")}
    assert set(listed) == {"a", "b"} and len(index) == 3
    assert "managedFields" not in listed["a"]["metadata"] and listed["a"]["status"]["phase"] == "Running"
    assert index.get("job-3") is None


def test_an_update_replaces_and_a_changed_owner_moves_the_child() -> None:
    index = ChildIndex()
    index.put(pod("a", "job-1"))
    index.put(pod("a", "job-1", status={"phase": "Failed"}))
    assert [p["status"]["phase"] for p in index.get("job-1")] == ["Failed"]
    index.put(pod("a", None))  # ownerReference removed: no longer the job's
    assert index.get("job-1") is None and len(index) == 0
    index.put(pod("a", "job-2"))
    assert [p["metadata"]["name"] for p in index.get("job-2")] == ["a"]


def test_a_removed_child_leaves_and_its_owner_entry_goes_with_the_last_one() -> None:
    index = ChildIndex()
    index.put(pod("a", "job-1"))
    index.put(pod("b", "job-1"))
    index.remove("uid-a")
    assert [p["metadata"]["name"] for p in index.get("job-1")] == ["b"]
    index.remove("uid-b")
    index.remove("uid-unknown")
    assert index.get("job-1") is None and list(index.uids()) == []


def test_paths_cover_core_and_group_resources_cluster_wide_and_namespaced() -> None:
    pods = ChildResource("Pod", "v1", "pods")
    groups = ChildResource("PodGroup", "scheduling.volcano.sh/v1beta1", "podgroups")
    assert pods.path(None) == "/api/v1/pods"
    assert pods.path("ns") == "/api/v1/namespaces/ns/pods"
    assert groups.path("ns") == "/apis/scheduling.volcano.sh/v1beta1/namespaces/ns/podgroups"
    assert slim({"metadata": {"name": "x"}, "data": {"k": "v"}, "extra": 1}) == {
        "metadata": {"name": "x"},
        "data": {"k": "v"},
    }


def test_a_cached_pod_keeps_its_status_and_metadata_but_not_its_containers() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}, "managedFields": [{"manager": "x"}]},
        "spec": {
            "containers": [{"name": "c", "env": [{"name": "TF_CONFIG", "value": "{}"}]}],
            "nodeName": "n",
        },
        "status": {"phase": "Running"},
    }
    assert slim(pod) == {
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {"nodeName": "n"},
        "status": {"phase": "Running"},
    }
    service = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "None", "ports": []}}
    assert slim(service)["spec"] == service["spec"], "a Service is replaced from its cached body"


def test_a_cached_job_has_no_managed_fields() -> None:
    from jobwarden.shell.bodies import plain_body

    body = {"metadata": {"name": "j", "managedFields": [{"manager": "kubectl"}]}, "spec": {"a": [1]}}
    assert plain_body(body) == {"metadata": {"name": "j"}, "spec": {"a": [1]}}
    assert body["metadata"]["managedFields"], "the original is untouched"


def test_a_cached_launcher_job_keeps_its_spec_but_not_its_template() -> None:
    """MPIJob's launcher Job is patched (suspend, deadline, TTL), never replaced: the plan reads those
    fields and the status, never the pod template."""
    job = {
        "kind": "Job",
        "metadata": {"name": "pi-launcher"},
        "spec": {"suspend": True, "backoffLimit": 6, "template": {"spec": {}}, "selector": {}},
        "status": {"ready": 1},
    }
    assert slim(job) == {
        "kind": "Job",
        "metadata": {"name": "pi-launcher"},
        "spec": {"suspend": True, "backoffLimit": 6},
        "status": {"ready": 1},
    }
