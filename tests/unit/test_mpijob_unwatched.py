"""MPIJob's ssh Secret is an unwatched child (Secrets are never watched or listed): like Volcano's
(issue 27), it is looked up by name once per job and process, so one made before an operator restart
is seen as the job's own and not asked for again; one of the same name another owner controls is not
taken for it."""

from __future__ import annotations

import copy
from typing import Any

from mpijob_helpers import mpijob
from test_executor import FakeApi, run

from jobwarden.core.plan import ChildRef, Settings
from jobwarden.kinds.kubeflow.mpijob import KIND as MPIJOB
from jobwarden.shell import controller as ctl
from jobwarden.shell.controller import Controller, job_key


def test_the_ssh_secret_is_the_unwatched_child() -> None:
    assert MPIJOB.unwatched_children(mpijob("pi", 2)) == [ChildRef("Secret", "pi-ssh")]


def secret(owner_uid: str) -> dict[str, Any]:
    owner = {"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "name": "pi", "uid": owner_uid}
    meta = {"name": "pi-ssh", "namespace": "default", "uid": "uid-pi-ssh", "ownerReferences": [owner]}
    owner["controller"] = True
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/ssh-auth", "metadata": meta}


def first_pass_creates(existing: dict[str, Any]) -> set[tuple[str, str]]:
    """The children a new operator process creates on its first pass over a new MPIJob, with the
    Secrets `existing` already in the cluster."""
    created: set[tuple[str, str]] = set()

    async def scenario() -> None:
        job = copy.deepcopy(mpijob("pi", 1))
        job["metadata"]["resourceVersion"] = "7"
        api = FakeApi()
        api.existing.update(existing)
        controller = Controller(api, Settings())  # type: ignore[arg-type]
        key = job_key(MPIJOB, job)
        controller.jobs[key] = ctl._Entry(MPIJOB, job)
        await controller.reconcile(key)
        created.update((c[1], c[2]) for c in api.writes("create"))

    run(scenario)
    return created


def test_a_secret_made_before_a_restart_is_not_asked_for_again() -> None:
    made = first_pass_creates({"pi-ssh": secret("uid-1")})  # mpijob()'s uid
    assert ("Secret", "pi-ssh") not in made
    assert ("Service", "pi") in made and ("ConfigMap", "pi-config") in made, made


def test_a_secret_of_the_same_name_another_owner_controls_is_not_the_jobs() -> None:
    made = first_pass_creates({"pi-ssh": secret("someone-else")})
    assert ("Secret", "pi-ssh") in made  # asked for: its create meets the other's name (a 409 shown)
