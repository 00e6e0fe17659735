"""The operator's own HTTP client (shell/kubeclient.py), against a loopback aiohttp server: errors
keep their status and body, a 401 re-reads the credentials once, and `jobwarden run` keeps kopf from
importing the client libraries the operator does not use."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import kopf
import pytest
from aiohttp import web

from jobwarden.shell.kubeclient import ApiError, KubeClient


async def _serve(handler: Callable[[web.Request], Awaitable[web.Response]]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def _run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


def test_a_refusal_keeps_its_status_reason_and_body() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "reason": "NotFound"}, status=404)

    async def scenario() -> None:
        runner, url = await _serve(handler)
        client = KubeClient(kopf.ConnectionInfo(server=url, token="t"))
        try:
            with pytest.raises(ApiError) as caught:
                await client.get("/api/v1/namespaces/x/pods/y")
            assert caught.value.status == 404 and b"NotFound" in caught.value.body
        finally:
            await client.close()
            await runner.cleanup()

    _run(scenario)


def test_a_401_re_reads_the_credentials_once_and_retries() -> None:
    """A service account's token file is rotated in place: the old token's 401 is not the answer."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != "Bearer new":
            return web.json_response({"kind": "Status"}, status=401)
        return web.json_response({"metadata": {"name": "made"}}, status=201)

    async def scenario() -> dict[str, Any]:
        runner, url = await _serve(handler)
        client = KubeClient(
            kopf.ConnectionInfo(server=url, token="old"),
            relogin=lambda: kopf.ConnectionInfo(server=url, token="new"),
        )
        try:
            return await client.create("/api/v1/namespaces/x/configmaps", {"metadata": {"name": "made"}})
        finally:
            await client.close()
            await runner.cleanup()

    assert _run(scenario)["metadata"]["name"] == "made"
    assert seen == ["Bearer old", "Bearer new"]


def test_every_request_names_jobwarden_and_every_write_its_field_manager() -> None:
    """Issue 25: without a User-Agent and fieldManager the apiserver records jobwarden's writes under
    the manager `unknown`. Reads carry the User-Agent too (the pool's and the watch session's)."""
    seen: list[tuple[str, str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.path_qs, request.headers.get("User-Agent", "")))
        return web.json_response({"metadata": {}}, status=200)

    async def scenario() -> None:
        runner, url = await _serve(handler)
        client = KubeClient(kopf.ConnectionInfo(server=url, token="t"))
        try:
            await client.get("/api/v1/namespaces/x/pods/y")
            await client.create("/api/v1/namespaces/x/pods", {})
            await client.replace("/api/v1/namespaces/x/pods/y?dryRun=All", {})
            await client.request("PATCH", "/api/v1/namespaces/x/pods/y", {}, "application/merge-patch+json")
            await client.delete("/api/v1/namespaces/x/pods/y")
            async with client.stream("/api/v1/pods?watch=1", aiohttp.ClientTimeout(total=5)) as answer:
                await answer.read()
        finally:
            await client.close()
            await runner.cleanup()

    _run(scenario)
    assert seen == [
        ("GET", "/api/v1/namespaces/x/pods/y", "jobwarden/0.1.0"),
        ("POST", "/api/v1/namespaces/x/pods?fieldManager=jobwarden", "jobwarden/0.1.0"),
        ("PUT", "/api/v1/namespaces/x/pods/y?dryRun=All&fieldManager=jobwarden", "jobwarden/0.1.0"),
        ("PATCH", "/api/v1/namespaces/x/pods/y?fieldManager=jobwarden", "jobwarden/0.1.0"),
        ("DELETE", "/api/v1/namespaces/x/pods/y", "jobwarden/0.1.0"),
        ("GET", "/api/v1/pods?watch=1", "jobwarden/0.1.0"),
    ]


def test_a_401_with_unchanged_credentials_is_the_answer() -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response({"kind": "Status"}, status=401)

    async def scenario() -> None:
        runner, url = await _serve(handler)
        info = kopf.ConnectionInfo(server=url, token="same")
        client = KubeClient(info, relogin=lambda: info)
        try:
            with pytest.raises(ApiError) as caught:
                await client.get("/api/v1/namespaces")
            assert caught.value.status == 401
        finally:
            await client.close()
            await runner.cleanup()

    _run(scenario)
    assert calls == 1, "no retry when re-reading gives the same credentials"


def test_run_keeps_kopf_from_importing_the_unused_client_libraries() -> None:
    """In a development venv kubernetes, kubernetes_asyncio and pykube are installed (tests use them);
    kopf would import all three (~50 MiB). The operator process must not carry them."""
    probe = (
        "import sys; from jobwarden import cli; cli.hide_unused_clients(); import jobwarden.shell.run; "
        "print(sorted(n for n in cli.UNUSED_CLIENTS if sys.modules.get(n) is not None))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_kopf_keeps_no_diff_base_because_no_handler_detects_changes() -> None:
    """run.NoDiffBase skips kopf's per-event deep copy of each job; that is only right while every
    kind registers event handlers alone (no on.create/update/resume, which read the diff-base)."""
    from jobwarden import kinds
    from jobwarden.shell import handlers, run
    from jobwarden.shell.controller import Controller

    registry = kopf.OperatorRegistry()
    controller = Controller.__new__(Controller)
    handlers.register(registry, controller, admission=True, job_kinds=kinds.registry())
    for kind in kinds.registry():
        resource = kopf.Resource(kind.resource.group, kind.resource.version, kind.resource.plural)
        assert registry._watching.has_handlers(resource=resource), kind.resource.kind
        assert not registry._changing.has_handlers(resource=resource), kind.resource.kind
        assert not registry._spawning.has_handlers(resource=resource), kind.resource.kind
    options = run.RunOptions()
    settings = run.operator_settings(options, None)
    assert isinstance(settings.persistence.diffbase_storage, run.NoDiffBase)
    assert settings.persistence.diffbase_storage.fetch(body=kopf.Body({})) is None


def test_a_credential_with_a_line_break_is_refused_not_sent() -> None:
    """The pool writes header lines itself: a token holding CR/LF would inject headers."""
    from jobwarden.shell.kubeclient import CredentialsError

    async def scenario() -> None:
        with pytest.raises(CredentialsError):
            KubeClient(kopf.ConnectionInfo(server="https://127.0.0.1:1", token="t\r\nX-Evil: 1"))

    _run(scenario)
