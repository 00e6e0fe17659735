"""The operator's HTTP/1.1 pool (shell/httppool.py) against loopback servers that answer with exact
bytes: how answers are framed, when a connection is reused, and what a closing server does to a
request in flight."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import kopf
import pytest

from jobwarden.shell.httppool import BadAnswer, ConnectionLost, HttpPool, parse_head
from jobwarden.shell.kubeclient import KubeClient

Reply = Callable[[bytes, asyncio.StreamWriter, int], Awaitable[bool]]  # -> keep the connection open


async def _serve(reply: Reply) -> tuple[asyncio.Server, str, list[bytes]]:
    """A server that reads one request head (and its Content-Length body) at a time; `reply` answers
    it, given the request, the writer and the connection's number."""
    seen: list[bytes] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        number = connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                request = head + await reader.readexactly(length)
                seen.append(request)
                if not await reply(request, writer, number):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", seen


@contextlib.asynccontextmanager
async def _pool_for(reply: Reply, prefix: str = "") -> AsyncIterator[tuple[HttpPool, list[bytes]]]:
    """A pool on a fresh server; the requests the server read."""
    server, url, seen = await _serve(reply)
    pool = HttpPool(url + prefix, None)
    try:
        yield pool, seen
    finally:
        await pool.close()
        server.close()


def _run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


def _answer(status: str, body: bytes, *headers: bytes) -> bytes:
    lines = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 %s\r\n%sContent-Length: %d\r\n\r\n%s" % (status.encode(), lines, len(body), body)


def test_keep_alive_answers_reuse_one_connection_and_send_the_request_whole() -> None:
    numbers: list[int] = []

    async def reply(request: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        numbers.append(number)
        writer.write(_answer("201 Created", b'{"ok":1}'))
        await writer.drain()
        return True

    async def scenario() -> list[Any]:
        async with _pool_for(reply, "/prefix/") as (pool, seen):
            answers = [await pool.request("POST", "/api/x", b"A: b\r\n", b'{"n":1}', 5) for _ in range(3)]
        return [answers, seen]

    answers, seen = _run(scenario)
    assert [(a.status, a.reason, a.body) for a in answers] == [(201, "Created", b'{"ok":1}')] * 3
    assert numbers == [1, 1, 1]
    assert seen[0].startswith(b"POST /prefix/api/x HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nA: b\r\nContent-Length: 7\r\n\r\n" in seen[0] and seen[0].endswith(b'{"n":1}')


def test_a_chunked_answer_arriving_in_pieces_is_joined() -> None:
    async def reply(request: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"lo\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
        await writer.drain()
        return True

    async def scenario() -> list[bytes]:
        async with _pool_for(reply) as (pool, _):
            return [(await pool.request("GET", "/", b"", None, 5)).body for _ in range(2)]

    assert _run(scenario) == [b"hello world", b"hello world"]


def test_a_request_on_an_idle_connection_the_server_closed_goes_out_again_on_a_new_one() -> None:
    """The server answers, then closes the connection (as Go's does with idle ones): the next request
    must not fail for it."""
    numbers: list[int] = []

    async def reply(request: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        numbers.append(number)
        writer.write(_answer("200 OK", b"x"))
        await writer.drain()
        return False  # close after every answer, without saying so

    async def scenario() -> list[int]:
        async with _pool_for(reply) as (pool, _):
            statuses = []
            for _ in range(3):
                statuses.append((await pool.request("GET", "/", b"", None, 5)).status)
                await asyncio.sleep(0.05)  # the close reaches the client: the connection is not reused
            return statuses

    assert _run(scenario) == [200, 200, 200]
    assert numbers == [1, 2, 3]


def test_a_reused_connection_closing_before_any_answer_byte_is_retried_once() -> None:
    """The race itself: the connection looks open when taken, the server closes it unanswered."""
    numbers: list[int] = []

    async def reply(request: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        numbers.append(number)
        if number == 1 and len(numbers) == 2:
            return False  # the second request on the first connection: closed, no answer
        writer.write(_answer("200 OK", b"y"))
        await writer.drain()
        return True

    async def scenario() -> list[bytes]:
        async with _pool_for(reply) as (pool, _):
            return [(await pool.request("PUT", "/", b"", b"{}", 5)).body for _ in range(2)]

    assert _run(scenario) == [b"y", b"y"]
    assert numbers == [1, 1, 2]


def _first_request_closed_unanswered_on_reuse(numbers: list[int]) -> Reply:
    """Answers everything, except the second request on the first connection: read, then the
    connection closes without a byte of answer (the server may or may not have acted on it)."""

    async def reply(request: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        numbers.append(number)
        if number == 1 and len(numbers) == 2:
            return False
        writer.write(_answer("201 Created", b'{"metadata":{"name":"made"}}'))
        await writer.drain()
        return True

    return reply


def test_a_post_of_a_generated_name_is_never_sent_twice_on_a_stale_connection() -> None:
    """Issue 27: a `generateName` create that may have been acted on must not go out again (a
    `jobwarden job restart` Command would be created, and carried out, twice). A named create may:
    a repeat answers 409 AlreadyExists."""
    numbers: list[int] = []

    async def scenario() -> list[bytes]:
        server, url, seen = await _serve(_first_request_closed_unanswered_on_reuse(numbers))
        client = KubeClient(kopf.ConnectionInfo(server=url, token="t"))
        try:
            await client.get("/api/v1/namespaces/x/configmaps/warm")  # the connection now idle, reused
            with pytest.raises(ConnectionLost):
                await client.create("/apis/bus.volcano.sh/v1alpha1/namespaces/x/commands",
                                    {"metadata": {"generateName": "job-restartjob-"}})  # fmt: skip
            await client.get("/api/v1/namespaces/x/configmaps/warm")
            return seen
        finally:
            await client.close()
            server.close()

    seen = _run(scenario)
    posts = [r for r in seen if r.startswith(b"POST ")]
    assert len(posts) == 1, "the generated-name create went out once"
    assert numbers == [1, 1, 2]


def test_a_named_create_and_the_idempotent_methods_are_repeated_on_a_stale_connection() -> None:
    async def attempt(method: str, body: Any, numbers: list[int]) -> bytes:
        server, url, _ = await _serve(_first_request_closed_unanswered_on_reuse(numbers))
        client = KubeClient(kopf.ConnectionInfo(server=url, token="t"))
        try:
            await client.get("/api/v1/namespaces/x/configmaps/warm")
            return await client.request(method, "/api/v1/namespaces/x/secrets", body)
        finally:
            await client.close()
            server.close()

    for method, body in (("POST", {"metadata": {"name": "job-ssh"}}), ("PUT", {}), ("DELETE", {})):
        numbers: list[int] = []
        assert b"made" in asyncio.run(attempt(method, body, numbers)), method
        assert numbers == [1, 1, 2], method


def test_a_connection_closing_mid_answer_is_an_error_and_is_not_retried() -> None:
    calls = 0

    async def reply(request: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        nonlocal calls
        calls += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        return False

    async def scenario() -> None:
        async with _pool_for(reply) as (pool, _):
            with pytest.raises(ConnectionLost):
                await pool.request("POST", "/", b"", b"{}", 5)

    _run(scenario)
    assert calls == 1, "some of the answer arrived: the request was served, it is not sent again"


def test_a_timed_out_request_leaves_its_connection_unused() -> None:
    numbers: list[int] = []

    async def reply(request: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        numbers.append(number)
        if len(numbers) == 1:
            await asyncio.sleep(0.5)  # answers after the client gave up: must not be read as the next
        writer.write(_answer("200 OK", b"%d" % len(numbers)))
        await writer.drain()
        return True

    async def scenario() -> bytes:
        async with _pool_for(reply) as (pool, _):
            with pytest.raises(TimeoutError):
                await pool.request("GET", "/", b"", None, 0.1)
            return (await pool.request("GET", "/", b"", None, 5)).body

    assert _run(scenario) == b"2"
    assert numbers == [1, 2]


def test_an_answer_framed_by_the_close_is_read_to_the_end() -> None:
    async def reply(request: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()
        return False

    async def scenario() -> tuple[int, bytes]:
        async with _pool_for(reply) as (pool, _):
            answer = await pool.request("GET", "/", b"", None, 5)
            return answer.status, answer.body

    assert _run(scenario) == (500, b"all of it")


def test_heads() -> None:
    head = parse_head(b"HTTP/1.1 201 Created\r\nContent-Length: 12\r\nConnection: keep-alive")
    assert (head.status, head.reason, head.length, head.chunked, head.keep_alive) == (
        201,
        "Created",
        12,
        False,
        True,
    )
    assert not parse_head(b"HTTP/1.1 200 OK\r\nCONNECTION: Close").keep_alive
    assert not parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 1").keep_alive
    assert parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive").keep_alive
    chunked = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked")
    assert chunked.chunked and chunked.length is None, "chunked framing wins over a length"
    for bad in (b"SSH-2.0-OpenSSH", b"HTTP/1.1 OK", b"HTTP/1.1 200 OK\r\nContent-Length: -1"):
        with pytest.raises(BadAnswer):
            parse_head(bad)


# -- API Priority and Fairness: Retry-After ------------------------------------------------------------


@pytest.mark.parametrize("status", ["429 Too Many Requests", "503 Service Unavailable"])
def test_a_429_or_503_with_retry_after_is_sent_again_after_that_many_seconds(status: str) -> None:
    """What API Priority and Fairness answers a request it rejected: 429 and `Retry-After: 1`. The
    request was not served, so it goes out again, a POST of a generated name too."""
    times: list[float] = []

    async def reply(request: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        times.append(asyncio.get_running_loop().time())
        if len(times) == 1:
            writer.write(_answer(status, b'{"kind":"Status"}', b"Retry-After: 1"))
        else:
            writer.write(_answer("201 Created", b"made"))
        await writer.drain()
        return True

    async def scenario() -> Any:
        async with _pool_for(reply) as (pool, _):
            return await pool.request("POST", "/api/v1/namespaces/x/events", b"", b"{}", 5, repeatable=False)

    answer = _run(scenario)
    assert (answer.status, answer.body) == (201, b"made")
    assert len(times) == 2 and times[1] - times[0] >= 0.95


def test_without_retry_after_or_past_the_attempts_the_answer_goes_to_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jobwarden.shell import httppool

    monkeypatch.setattr(httppool, "RETRY_AFTER_ATTEMPTS", 2)
    calls = 0

    async def reply(request: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        nonlocal calls
        calls += 1
        retry = b"Retry-After: 0" if b"/always" in request else b"X-Other: 1"
        writer.write(_answer("429 Too Many Requests", b"busy", retry))
        await writer.drain()
        return True

    async def scenario() -> list[tuple[int, float | None]]:
        async with _pool_for(reply) as (pool, _):
            plain = await pool.request("GET", "/plain", b"", None, 5)
            always = await pool.request("GET", "/always", b"", None, 5)
            return [(plain.status, plain.retry_after), (always.status, always.retry_after)]

    assert _run(scenario) == [(429, None), (429, 0.0)]
    assert calls == 1 + 3, "the plain 429 once; the other 1 + RETRY_AFTER_ATTEMPTS times"


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    from email.utils import formatdate

    from jobwarden.shell.httppool import parse_retry_after

    assert parse_retry_after(b"3") == 3.0
    in_ten = parse_retry_after(formatdate(time.time() + 10, usegmt=True).encode())
    assert in_ten is not None and 8 <= in_ten <= 10
    assert parse_retry_after(formatdate(time.time() - 100, usegmt=True).encode()) == 0.0
    assert parse_retry_after(b"soon") is None and parse_retry_after(b"-1") is None
    assert parse_head(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1").retry_after == 1.0


# -- TLS ------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _tls_server(reply: Reply, tmp: Path) -> AsyncIterator[tuple[str, ssl.SSLContext, list[bytes]]]:
    """`_serve`'s server behind TLS, with a certificate for 127.0.0.1 from a CA made for the test;
    yields the URL and a client context trusting that CA (what a kubeconfig's CA data gives)."""
    from jobwarden.shell import certs

    ca = certs.make_ca("test-ca")
    leaf = certs.issue(ca, "apiserver", hosts=["127.0.0.1"])
    leaf.write(tmp / "tls.crt", tmp / "tls.key")
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
    seen_tls: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections = getattr(handle, "connections", 0) + 1
        handle.connections = connections  # type: ignore[attr-defined]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)  # fmt: skip
                request = head + await reader.readexactly(length)
                seen_tls.append(request)
                if not await reply(request, writer, connections):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_side)
    port = server.sockets[0].getsockname()[1]
    client_side = ssl.create_default_context(cadata=ca.cert_pem.decode())
    try:
        yield f"https://127.0.0.1:{port}", client_side, seen_tls
    finally:
        server.close()


def test_answers_over_tls_are_framed_and_the_connection_kept_alive(tmp_path: Path) -> None:
    numbers: list[int] = []

    async def reply(request: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        numbers.append(number)
        if len(numbers) % 2:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        else:
            writer.write(_answer("201 Created", b'{"n":2}'))
        await writer.drain()
        return True

    async def scenario() -> list[bytes]:
        async with _tls_server(reply, tmp_path) as (url, context, seen):
            pool = HttpPool(url, context)
            try:
                bodies = [(await pool.request("PUT", "/x", b"", b"{}", 5)).body for _ in range(4)]
            finally:
                await pool.close()
            assert all(r.startswith(b"PUT /x HTTP/1.1\r\nHost: 127.0.0.1:") for r in seen)
            return bodies

    assert _run(scenario) == [b"abc", b'{"n":2}', b"abc", b'{"n":2}']
    assert numbers == [1, 1, 1, 1], "one TLS connection, kept alive"


def test_a_server_certificate_the_ca_did_not_sign_is_refused(tmp_path: Path) -> None:
    from jobwarden.shell import certs

    async def reply(request: bytes, writer: asyncio.StreamWriter, number: int) -> bool:
        writer.write(_answer("200 OK", b"should not be read"))
        await writer.drain()
        return True

    async def scenario() -> None:
        async with _tls_server(reply, tmp_path) as (url, _, seen):
            other_ca = ssl.create_default_context(cadata=certs.make_ca("another").cert_pem.decode())
            pool = HttpPool(url, other_ca)
            try:
                with pytest.raises(ssl.SSLCertVerificationError):
                    await pool.request("GET", "/", b"", None, 5)
            finally:
                await pool.close()
            assert seen == []

    _run(scenario)


def test_a_stale_tls_connection_is_handled_like_a_plain_one(tmp_path: Path) -> None:
    """Over TLS too: an idempotent request goes out again on a new connection, a POST of a generated
    name does not."""

    async def attempt(method: str, numbers: list[int]) -> int:
        reply = _first_request_closed_unanswered_on_reuse(numbers)
        async with _tls_server(reply, tmp_path) as (url, context, _):
            pool = HttpPool(url, context)
            try:
                await pool.request("GET", "/warm", b"", None, 5)
                return (await pool.request(method, "/", b"", b"{}", 5, repeatable=method != "POST")).status
            finally:
                await pool.close()

    numbers: list[int] = []
    assert _run(lambda: attempt("PUT", numbers)) == 201 and numbers == [1, 1, 2]
    numbers = []
    with pytest.raises(ConnectionLost):
        _run(lambda: attempt("POST", numbers))
    assert numbers == [1, 1]


# -- proxies -------------------------------------------------------------------------------------------


def test_a_kubeconfig_proxy_is_refused_with_a_message_that_says_so() -> None:
    from jobwarden.shell.kubeclient import CredentialsError

    with pytest.raises(CredentialsError, match=r"proxy-url 'http://proxy\.example:3128'.*does not support"):
        KubeClient(kopf.ConnectionInfo(server="https://10.0.0.1:6443", proxy_url="http://proxy.example:3128"))


def test_jobwarden_run_refuses_a_kubeconfig_with_a_proxy_at_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1', proxy-url: 'socks5://127.0.0.1:1080'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "jobwarden.cli", "run", f"--kubeconfig={kubeconfig}", "--no-webhook"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "proxy-url 'socks5://127.0.0.1:1080'" in result.stderr and "Traceback" not in result.stderr
