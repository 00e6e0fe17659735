"""The operator's request/answer calls (every write, and the few GETs): HTTP/1.1 on a pool of
keep-alive connections, without a general-purpose client's per-request machinery.

Why not aiohttp's client session here (it still serves the watches and list pages, see kubeclient.py):
a create through `ClientSession.request` cost the operator 0.47 ms of CPU, this pool 0.25 ms (the
same 2000 ConfigMap creates against the local apiserver, 32 at a time; docs/benchmarks.md). A burst
job is 8 creates and a status write, so the difference was ~2 ms of the ~16 ms of CPU per job.
What is left per request is TLS, the syscalls and asyncio's own bookkeeping.

The Kubernetes apiserver (Go's net/http) answers every request with a Content-Length or a chunked
body, so that is what is parsed; an answer framed by closing the connection is read to the end too.
No proxies (a kubeconfig naming one is refused at start, kubeclient.py), no redirects, no
compression.

A 429 or 503 with `Retry-After` (API Priority and Fairness rejects a request it did not start with
`429` and `Retry-After: 1`) is sent again after that many seconds (capped at RETRY_AFTER_CAP_SECONDS,
at most RETRY_AFTER_ATTEMPTS times, as client-go's request retries do), without holding a
connection slot while it waits. The request was not served, so this holds for every method. Without
the header the answer goes to the caller as it is.

A request that finds its reused connection closed before any byte of the answer arrived is sent once
more on a new connection, when it is safe to repeat: the server closed an idle keep-alive connection
as the request left (Go's transport retries the same case), but it may also have read the request and
acted on it. So only idempotent methods go out again (GET, HEAD, PUT, DELETE, OPTIONS, as aiohttp and
Go's transport decide), and a POST only when its caller says it is (`repeatable`): a named create
answers 409 AlreadyExists the second time, while a `generateName` create would make a second object (a
`jobwarden job restart` Command carried out twice; issue 27)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import urlsplit

# Connections idle longer than this are not reused (Go's server closes idle ones after 90 s or more;
# reusing one it is closing at that instant is the race the retry above covers).
IDLE_SECONDS: Final = 30.0
MAX_HEAD_BYTES: Final = 64 * 1024
NO_BODY_STATUSES: Final = frozenset({204, 304})
# Methods whose request may be sent twice with the effect of once (RFC 9110 section 9.2.2).
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
RETRY_AFTER_ATTEMPTS: Final = 10  # client-go's default maxRetries
RETRY_AFTER_CAP_SECONDS: Final = 10.0  # a longer wait is the caller's to decide on


class ConnectionLost(ConnectionError):
    """The connection closed before the whole answer arrived."""


class BadAnswer(ConnectionError):
    """The server's bytes are not an HTTP/1.1 answer this client understands."""


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    body: bytes
    retry_after: float | None = None  # seconds, from a Retry-After header


@dataclass
class _Head:
    status: int
    reason: str
    length: int | None
    chunked: bool
    keep_alive: bool
    retry_after: float | None = None


def parse_retry_after(value: bytes) -> float | None:
    """`Retry-After`: delay-seconds, or an HTTP-date (RFC 9110 section 10.2.3); None when neither."""
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_head(raw: bytes) -> _Head:
    """The status line and the headers that frame the body."""
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise BadAnswer(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    length: int | None = None
    chunked, connection, retry_after = False, b"", None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            if not value.isdigit():
                raise BadAnswer(f"bad Content-Length: {value[:40]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.endswith(b"chunked")
        elif name == b"connection":
            connection = value
        elif name == b"retry-after":
            retry_after = parse_retry_after(value)
    # HTTP/1.1 keeps the connection unless told to close it; HTTP/1.0 closes it unless told to keep it.
    keep_alive = b"close" not in connection if parts[0] == b"HTTP/1.1" else b"keep-alive" in connection
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    return _Head(int(parts[1]), reason, None if chunked else length, chunked, keep_alive, retry_after)


class _Connection(asyncio.Protocol):
    """One connection, one request at a time; the answer is parsed as its bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received = False  # any byte of the current answer arrived
        self.keep_alive = True
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._head: _Head | None = None
        self._body = bytearray()  # a chunked body so far
        self._waiter: asyncio.Future[Answer] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (TCP or TLS)

    def data_received(self, data: bytes) -> None:
        self.received = True
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection is out of step, never reuse it
            return
        try:
            answer = self._parse()
        except BadAnswer as exc:
            self._waiter.set_exception(exc)
            self.close()
            return
        if answer is not None:
            self._waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter, head = self._waiter, self._head
        if waiter is None or waiter.done():
            return
        if head is not None and head.length is None and not head.chunked:  # framed by the close
            waiter.set_result(Answer(head.status, head.reason, bytes(self._buffer), head.retry_after))
        else:
            waiter.set_exception(ConnectionLost(f"the connection closed before the answer ended: {exc!r}"))

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.received = False
        self.transport.write(request)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _parse(self) -> Answer | None:
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise BadAnswer("the answer's head is larger than 64 KiB")
                return None
            self._head = parse_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
            if 100 <= self._head.status < 200:  # an interim answer: the final one follows
                self._head = None
                return self._parse()
        head = self._head
        if head.status in NO_BODY_STATUSES:
            body: bytes | None = b""
        elif head.chunked:
            body = self._chunks()
        elif head.length is not None:
            body = self._exactly(head.length)
        else:
            self.keep_alive = False
            return None  # read to the close (connection_lost answers)
        if body is None:
            return None
        self._head = None
        # Bytes beyond the answer mean the connection is out of step with its requests: not reused.
        self.keep_alive = head.keep_alive and not self._buffer
        return Answer(head.status, head.reason, body, head.retry_after)

    def _exactly(self, length: int) -> bytes | None:
        if len(self._buffer) < length:
            return None
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        return body

    def _chunks(self) -> bytes | None:
        while True:
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                return None
            size_field = bytes(self._buffer[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError:
                raise BadAnswer(f"bad chunk size: {size_field[:20]!r}") from None
            if size == 0:
                trailers_end = self._buffer.find(b"\r\n\r\n", line_end)
                if trailers_end < 0:
                    return None
                del self._buffer[: trailers_end + 4]
                body = bytes(self._body)
                self._body = bytearray()
                return body
            if len(self._buffer) < line_end + 2 + size + 2:
                return None
            self._body += self._buffer[line_end + 2 : line_end + 2 + size]
            del self._buffer[: line_end + 2 + size + 2]


class HttpPool:
    """Up to `limit` connections to one server; requests beyond that wait for a free one."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None, limit: int = 100) -> None:
        parts = urlsplit(url)
        self._tls = ssl_context if parts.scheme == "https" else None
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._base = parts.path.rstrip("/")
        self._host_header = f"Host: {parts.netloc}\r\n".encode()
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_Connection] = []

    async def request(
        self,
        method: str,
        path: str,
        headers: bytes,
        body: bytes | None,
        timeout: float,
        repeatable: bool | None = None,
    ) -> Answer:
        """`headers`: complete header lines (`Name: value\\r\\n` each), without Host and
        Content-Length. `repeatable`: whether the request may go out twice when a stale connection
        closes before any answer byte (None: only for an idempotent method)."""
        data = body or b""
        request = b"%s %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n%s" % (
            method.encode(),
            (self._base + path).encode(),
            self._host_header,
            headers,
            len(data),
            data,
        )
        if repeatable is None:
            repeatable = method in IDEMPOTENT_METHODS
        for attempt in range(1, RETRY_AFTER_ATTEMPTS + 2):
            async with self._slots, asyncio.timeout(timeout):
                answer = await self._exchange(request, repeatable)
            wait = answer.retry_after
            if answer.status not in RETRY_AFTER_STATUSES or wait is None or attempt > RETRY_AFTER_ATTEMPTS:
                return answer
            await asyncio.sleep(min(wait, RETRY_AFTER_CAP_SECONDS))  # the server said when; no slot held
        raise AssertionError("unreachable")

    async def _exchange(self, request: bytes, repeatable: bool) -> Answer:
        for attempt in (1, 2):
            connection, reused = await self._connection()
            try:
                answer = await connection.send(request)
            except ConnectionLost:
                connection.close()
                if repeatable and reused and not connection.received and attempt == 1:
                    continue  # the server closed an idle connection as the request left
                raise
            except BaseException:  # cancelled or timed out mid-answer: the connection is out of step
                connection.close()
                raise
            if connection.keep_alive and not connection.closed:
                connection.idle_since = asyncio.get_running_loop().time()
                self._idle.append(connection)
            else:
                connection.close()
            return answer
        raise AssertionError("unreachable")

    async def _connection(self) -> tuple[_Connection, bool]:
        """The most recently used idle connection (the least likely to be closing), or a new one."""
        loop = asyncio.get_running_loop()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and loop.time() - connection.idle_since < IDLE_SECONDS:
                return connection, True
            connection.close()
        _, connection = await loop.create_connection(_Connection, self._host, self._port, ssl=self._tls)
        return connection, False

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                connection.close()
