"""shell/leader.LeaderElector.release: a stop that cancelled a renewal the apiserver had already
applied leaves a stale resourceVersion; the release then earns a 409 and must still hand over."""

from __future__ import annotations

import asyncio
from typing import Any

from jobwarden.shell.kubeclient import ApiError
from jobwarden.shell.leader import LeaderElector, LeaseOptions


class FakeLeaseClient:
    def __init__(self, holder: str) -> None:
        self.holder = holder
        self.version = "9"  # the renewal we never heard back from
        self.writes: list[dict[str, Any]] = []

    async def get(self, path: str) -> dict[str, Any]:
        spec = {"holderIdentity": self.holder, "leaseDurationSeconds": 15}
        return {"metadata": {"resourceVersion": self.version}, "spec": spec}

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if body["metadata"]["resourceVersion"] != self.version:
            raise ApiError(409, "Conflict")
        self.writes.append(body)
        self.version = str(int(self.version) + 1)
        return {"metadata": {"resourceVersion": self.version}}


def _elector(client: FakeLeaseClient) -> LeaderElector:
    async def nothing() -> None:
        pass

    elector = LeaderElector(client, LeaseOptions(identity="me"), on_lead=nothing, on_follow=nothing)  # type: ignore[arg-type]
    elector.leading = True
    elector._resource_version = "8"  # stale
    return elector


def test_a_release_after_a_lost_renewal_answer_still_hands_the_lease_over() -> None:
    client = FakeLeaseClient(holder="me")
    asyncio.run(_elector(client).release())
    assert len(client.writes) == 1
    assert not client.writes[0]["spec"].get("holderIdentity"), "released: no holder"


def test_a_release_leaves_a_lease_another_replica_took_alone() -> None:
    client = FakeLeaseClient(holder="other")
    asyncio.run(_elector(client).release())
    assert client.writes == []
