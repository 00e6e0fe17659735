"""The operator's HTTP client for the Kubernetes API: one aiohttp session on kopf's own credentials.

Why not kubernetes_asyncio (the operator's client until issue 13): the operator had stopped using its
models (writes are raw JSON, child watches read raw JSON), but importing its client package still
loads ~860 modules of generated models, and kopf imports it too whenever it is installed. Without it
the operator's imports take 55 MiB of RSS instead of 107 MiB (docs/benchmarks.md). Credentials come
from kopf's login functions (kubeconfig or service account), the same ones kopf's watches use, so the
operator's writes and kopf's reads always act as the same identity. Asynchronous for the same reason
as before: a synchronous client would stall the event loop kopf's watches and the webhook share."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, cast

import aiohttp
import kopf
import orjson

from jobwarden import __version__
from jobwarden.shell.httppool import HttpPool

logger = logging.getLogger(__name__)

JSON = "application/json"
REQUEST_TIMEOUT_SECONDS = 60.0
# Connections of the request pool, and apart from them of the watch session: the pool's bound is above
# the executor's 64 + 16 child writes in flight, so a lease renewal or a status write never queues.
CONNECTIONS = 100

Login = Callable[[], kopf.ConnectionInfo]

# Who is writing, as the apiserver records it: `fieldManager` names jobwarden in every object's
# managedFields (without it, a client that sends no User-Agent is recorded as `unknown`), and the
# User-Agent names it in audit logs and the apiserver's metrics.
FIELD_MANAGER = "jobwarden"
USER_AGENT = f"jobwarden/{__version__}"
WRITES = frozenset({"POST", "PUT", "PATCH"})  # the verbs that take a fieldManager


class ApiError(Exception):
    """A non-2xx answer: its HTTP status, reason phrase and body (a `Status` object, as bytes)."""

    def __init__(self, status: int, reason: str, body: bytes = b"") -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body

    def text(self, limit: int = 500) -> str:
        return self.body[:limit].decode(errors="replace")


class CredentialsError(RuntimeError):
    pass


def login(kubeconfig: str | None = None) -> kopf.ConnectionInfo:
    """kopf's own discovery: the service account inside a pod, else $KUBECONFIG or ~/.kube/config.
    (kopf's kubeconfig reader has no exec plugins; kopf's watches have never had them either.)"""
    settings = kopf.OperatorSettings()
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        info = kopf.login_with_service_account(settings=settings)
    else:
        info = kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise CredentialsError(
            "no Kubernetes credentials: no service account in this pod and no kubeconfig "
            "($KUBECONFIG, ~/.kube/config or --kubeconfig)"
        )
    return info


class KubeClient:
    """Raw-JSON requests on a keep-alive connection pool of its own (shell/httppool.py says why);
    list pages and watch streams on an aiohttp session. Neither consults proxy variables or ~/.netrc
    (aiohttp's trust_env does that in a thread per call; kopf's session does not either); the API
    server is reached directly. A kubeconfig `proxy-url` is refused at start: kopf's session would
    honour it and these would not."""

    def __init__(self, info: kopf.ConnectionInfo, relogin: Login | None = None) -> None:
        if info.proxy_url:
            raise CredentialsError(
                f"the kubeconfig's cluster sets proxy-url {info.proxy_url!r}: jobwarden does not support a "
                "proxy to the apiserver (its request pool and watch streams connect directly, and one "
                "client path going through the proxy while another does not would split the operator). "
                "Remove proxy-url and reach the apiserver directly"
            )
        self.server = info.server.rstrip("/")
        self._relogin = relogin
        self._headers = info.as_http_headers()
        self._header_lines = _header_lines(self._headers)
        tls = info.as_ssl_context()
        self.pool = HttpPool(self.server, tls, limit=CONNECTIONS)
        connector = aiohttp.TCPConnector(limit=CONNECTIONS, ssl=tls)
        self.session = aiohttp.ClientSession(connector=connector, trust_env=False)

    @classmethod
    def connect(cls, kubeconfig: str | None = None) -> KubeClient:
        return cls(login(kubeconfig), relogin=lambda: login())

    async def close(self) -> None:
        await self.pool.close()
        await self.session.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = JSON,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> bytes:
        """One request; the answer's bytes (parsed only by callers that read it), or ApiError.
        A 401 re-reads the credentials once: a service account's token file is rotated in place."""
        data = None if body is None else orjson.dumps(body)
        repeatable = repeatable_request(method, body)
        if method in WRITES:
            path = with_field_manager(path)
        for attempt in (1, 2):
            headers = self._header_lines + b"Content-Type: %s\r\n" % content_type.encode()
            answer = await self.pool.request(method, path, headers, data, timeout, repeatable)
            if 200 <= answer.status <= 299:
                return answer.body
            if answer.status == 401 and attempt == 1 and self.refresh():
                continue
            raise ApiError(answer.status, answer.reason, answer.body)
        raise AssertionError("unreachable")

    async def get(self, path: str) -> dict[str, Any]:
        return cast(dict[str, Any], orjson.loads(await self.request("GET", path)))

    async def create(self, path: str, body: Any) -> dict[str, Any]:
        return cast(dict[str, Any], orjson.loads(await self.request("POST", path, body)))

    async def replace(self, path: str, body: Any) -> dict[str, Any]:
        return cast(dict[str, Any], orjson.loads(await self.request("PUT", path, body)))

    async def delete(self, path: str, options: Any = None) -> None:
        await self.request("DELETE", path, options)

    def stream(self, path: str, timeout: aiohttp.ClientTimeout) -> Any:
        """A GET whose answer the caller reads itself (a list page or a watch stream); use as
        `async with client.stream(...) as response`."""
        headers = {**self._headers, "Accept": JSON, "User-Agent": USER_AGENT}
        return self.session.get(self.server + path, headers=headers, timeout=timeout)

    def refresh(self) -> bool:
        """Re-read the credentials (after a 401); whether they changed."""
        if self._relogin is None:
            return False
        try:
            headers = self._relogin().as_http_headers()
        except Exception as exc:  # keep the first answer (the 401) as the error
            logger.warning("re-reading the Kubernetes credentials after a 401 failed: %r", exc)
            return False
        changed = headers != self._headers
        self._headers = headers
        self._header_lines = _header_lines(headers)
        return changed


def repeatable_request(method: str, body: Any) -> bool:
    """Whether a request may go out twice when a stale connection closes unanswered (httppool.py):
    the idempotent methods; PATCH, whose merge patches here set fixed values; a POST only when it
    names the object it creates (a repeat answers 409), never a `generateName` create."""
    if method != "POST":
        return True
    metadata = body.get("metadata") if isinstance(body, dict) else None
    return isinstance(metadata, dict) and bool(metadata.get("name"))


def _header_lines(headers: dict[str, str]) -> bytes:
    """The fixed headers of every request, encoded once."""
    lines = {**headers, "Accept": JSON, "User-Agent": USER_AGENT}
    if any(c in f"{name}{value}" for name, value in lines.items() for c in "\r\n"):
        raise CredentialsError("a credential header holds a line break; refusing to send it")
    return "".join(f"{name}: {value}\r\n" for name, value in lines.items()).encode()


def with_field_manager(path: str) -> str:
    """`path` with `fieldManager=jobwarden` added to its query."""
    return f"{path}{'&' if '?' in path else '?'}fieldManager={FIELD_MANAGER}"
