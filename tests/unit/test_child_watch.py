"""The lean list+watch loop (shell/childwatch.py) against a scripted apiserver: pages, watch events,
bookmarks, 410 relists, ERROR events, removals announced, and several namespaces on one index."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from jobwarden.shell import childwatch
from jobwarden.shell.childwatch import ChildIndex, ChildResource, ChildWatch

PODS = ChildResource("Pod", "v1", "pods")


def pod(name: str, namespace: str = "a", owner: str = "job-1", version: str = "1") -> dict[str, Any]:
    refs = [{"controller": True, "uid": owner, "name": "job", "kind": "PyTorchJob"}]
    meta = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "ownerReferences": refs,
        "resourceVersion": version,
    }
    return {"metadata": meta, "status": {"phase": "Running"}}


def page(items: list[dict[str, Any]], version: str, token: str = "") -> tuple[int, bytes]:
    return 200, orjson.dumps({"items": items, "metadata": {"resourceVersion": version, "continue": token}})


def events(*pairs: tuple[str, dict[str, Any]]) -> tuple[int, list[bytes]]:
    return 200, [orjson.dumps({"type": kind, "object": body}) + b"\n" for kind, body in pairs]


def bookmark(version: str) -> tuple[str, dict[str, Any]]:
    return "BOOKMARK", {"metadata": {"resourceVersion": version}}


def error(code: int, message: str = "") -> tuple[str, dict[str, Any]]:
    return "ERROR", {"kind": "Status", "code": code, "message": message}


class _Response:
    def __init__(self, status: int, payload: bytes | list[bytes]) -> None:
        self.status = status
        self._payload = payload

    async def read(self) -> bytes:
        return self._payload if isinstance(self._payload, bytes) else b"".join(self._payload)

    @property
    def content(self) -> AsyncIterator[bytes]:
        async def lines() -> AsyncIterator[bytes]:
            for line in self._payload if isinstance(self._payload, list) else [self._payload]:
                yield line

        return lines()


class ScriptedApi:
    """Answers each GET with the next scripted answer of its namespace's path; once a script is
    used up, the request hangs (an idle watch) until the test ends."""

    def __init__(self, scripts: dict[str | None, list[tuple[int, bytes | list[bytes]]]]) -> None:
        self.scripts = {PODS.path(ns): list(answers) for ns, answers in scripts.items()}
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.refreshed = 0

    @asynccontextmanager
    async def _answer(self, path: str) -> AsyncIterator[_Response]:
        parts = urlsplit(path)
        self.requests.append((parts.path, parse_qs(parts.query)))
        script = self.scripts[parts.path]
        if not script:
            await asyncio.Event().wait()
        status, payload = script.pop(0)
        yield _Response(status, payload)

    def stream(self, path: str, timeout: Any) -> Any:
        return self._answer(path)

    def refresh(self) -> bool:
        self.refreshed += 1
        return True

    def used_up(self) -> bool:
        return not any(self.scripts.values())


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(childwatch, "BACKOFFS", (0.0,))


async def _run(api: ScriptedApi, watches: list[ChildWatch], until: Callable[[], bool]) -> None:
    tasks = [asyncio.create_task(w.run()) for w in watches]
    try:
        for _ in range(1000):
            if api.used_up() and until():
                break
            await asyncio.sleep(0)
        else:
            raise AssertionError(f"the script was not used up: {api.scripts}")
        for _ in range(20):  # let the last answer be consumed
            await asyncio.sleep(0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _watch(
    api: ScriptedApi, index: ChildIndex, seen: list[dict[str, Any]], namespace: str | None = "a"
) -> ChildWatch:
    return ChildWatch(api, PODS, "app=x", namespace, index, seen.append)  # type: ignore[arg-type]


def _names(index: ChildIndex, owner: str = "job-1") -> set[str]:
    return {c["metadata"]["name"] for c in index.get(owner, [])}


def test_pages_are_joined_then_the_watch_resumes_from_the_lists_version_and_from_bookmarks() -> None:
    api = ScriptedApi(
        {
            "a": [
                page([pod("p0")], "", token="next"),
                page([pod("p1")], "10"),
                events(("ADDED", pod("p2", version="11")), bookmark("15")),
                events(("MODIFIED", pod("p2", version="16")), ("DELETED", pod("p0", version="17"))),
            ]
        }
    )
    index, seen = ChildIndex(), []
    asyncio.run(_run(api, [_watch(api, index, seen)], lambda: len(seen) == 5))
    assert _names(index) == {"p1", "p2"}
    assert [s["metadata"]["name"] for s in seen] == ["p0", "p1", "p2", "p2", "p0"]  # a bookmark is no event
    assert seen[0]["kind"] == "Pod" and seen[0]["apiVersion"] == "v1"
    queries = [q for _, q in api.requests]
    assert queries[1]["continue"] == ["next"]
    assert queries[2]["resourceVersion"] == ["10"] and queries[2]["allowWatchBookmarks"] == ["true"]
    assert queries[3]["resourceVersion"] == ["15"], "resumed from the bookmark"
    assert queries[4]["resourceVersion"] == ["17"]


def test_a_410_relists_and_a_child_gone_meanwhile_is_removed_and_announced() -> None:
    api = ScriptedApi(
        {
            "a": [
                page([pod("p0"), pod("p1")], "10"),
                events(error(410, "too old resource version")),
                page([pod("p1", version="20")], "20"),
            ]
        }
    )
    index, seen = ChildIndex(), []
    asyncio.run(_run(api, [_watch(api, index, seen)], lambda: len(seen) >= 4))
    assert _names(index) == {"p1"}
    announced = [s["metadata"]["name"] for s in seen[2:]]
    assert sorted(announced) == ["p0", "p1"], "the removal of p0 is announced, so its job is enqueued"
    assert api.requests[-1][1]["resourceVersion"] == ["20"]


def test_a_410_answer_to_the_watch_request_relists_too() -> None:
    api = ScriptedApi(
        {"a": [page([pod("p0")], "10"), (410, b'{"kind":"Status","code":410}'), page([], "30")]}
    )
    index, seen = ChildIndex(), []
    asyncio.run(_run(api, [_watch(api, index, seen)], lambda: len(seen) == 2))
    assert _names(index) == set() and [s["metadata"]["name"] for s in seen] == ["p0", "p0"]


def test_an_error_event_ends_the_watch_and_the_stream_starts_again_from_a_list() -> None:
    api = ScriptedApi(
        {
            "a": [
                page([pod("p0")], "10"),
                events(("ADDED", pod("p1", version="11")), error(500, "internal error")),
                page([pod("p0"), pod("p1"), pod("p2")], "40"),
            ]
        }
    )
    index, seen = ChildIndex(), []
    asyncio.run(_run(api, [_watch(api, index, seen)], lambda: len(seen) == 5))
    assert _names(index) == {"p0", "p1", "p2"}
    assert [path for path, q in api.requests if "watch" not in q] == [PODS.path("a")] * 2


def test_a_401_reads_the_credentials_again_before_the_next_attempt() -> None:
    api = ScriptedApi({"a": [(401, b"Unauthorized"), page([pod("p0")], "10")]})
    index, seen = ChildIndex(), []
    asyncio.run(_run(api, [_watch(api, index, seen)], lambda: len(seen) == 1))
    assert api.refreshed == 1 and _names(index) == {"p0"}


def test_namespaces_sharing_an_index_never_remove_each_others_children() -> None:
    """Issue 27: one index per child kind, one stream per namespace; a list or 410 relist of one
    namespace must leave the other namespaces' children where they are."""
    api = ScriptedApi(
        {
            "a": [page([pod("a0", "a", owner="job-a")], "10")],
            "b": [
                page([pod("b0", "b", owner="job-b"), pod("b1", "b", owner="job-b")], "12"),
                events(error(410)),
                page([pod("b0", "b", owner="job-b")], "30"),
            ],
        }
    )
    index, seen = ChildIndex(), []
    watches = [_watch(api, index, seen, "a"), _watch(api, index, seen, "b")]
    asyncio.run(_run(api, watches, lambda: len(seen) >= 5))
    assert _names(index, "job-a") == {"a0"}, "b's list and relist kept a's child"
    assert _names(index, "job-b") == {"b0"}
    # and the other way round: a relist of `a` keeps b's children
    api.scripts[PODS.path("a")] = [events(error(410)), page([], "50")]
    seen.clear()
    asyncio.run(_run(api, [watches[0]], lambda: len(seen) >= 1))
    assert _names(index, "job-a") == set() and _names(index, "job-b") == {"b0"}
    assert [s["metadata"]["name"] for s in seen] == ["a0"]


def test_a_cluster_wide_relist_removes_children_of_every_namespace() -> None:
    scripts: dict[str | None, list[tuple[int, bytes | list[bytes]]]] = {
        None: [
            page([pod("a0", "a"), pod("b0", "b", owner="job-b")], "10"),
            events(error(410)),
            page([pod("a0", "a")], "20"),
        ]
    }
    api = ScriptedApi(scripts)
    index, seen = ChildIndex(), []
    asyncio.run(_run(api, [_watch(api, index, seen, None)], lambda: len(seen) >= 4))
    assert _names(index, "job-1") == {"a0"} and _names(index, "job-b") == set()
