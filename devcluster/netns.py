"""Network namespaces for the real-node tier: made with `unshare --net=<file>` (a bind-mounted
namespace file under the cluster's state directory, so no `/run/netns` entry and nothing that
`ip netns exec` would do to `/sys`), entered by children through `nsenter --net=<file>` (which execs,
so the pid recorded is the component's own), and by this process per thread through setns(2).

setns(CLONE_NEWNET) changes only the calling thread, and a socket keeps the namespace it was made
in: so a thread that entered the namespace can connect to a port inside it while the rest of the
process stays on the host (Python 3.11 has no os.setns, hence ctypes)."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def create(path: Path) -> None:
    """A new, persistent network namespace bound to `path` (an empty file is made for it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    subprocess.run(["unshare", f"--net={path}", "true"], check=True, capture_output=True)


def command(path: Path, argv: list[str]) -> list[str]:
    """`argv` run inside the namespace at `path` (nsenter execs it: same pid)."""
    return ["nsenter", f"--net={path}", "--", *argv]


def run(path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(path, list(argv)), check=True, capture_output=True, text=True)


def enter(path: Path) -> None:
    """Move the calling thread into the namespace at `path` (for good)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def call_inside(path: Path, fn: Callable[[], T]) -> T:
    """`fn()` run on a short-lived thread that entered the namespace; its result or its exception."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            enter(path)
            result.append(fn())
        except BaseException as exc:  # handed to the caller
            error.append(exc)

    thread = threading.Thread(target=target, name="netns", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def connect(path: Path, host: str, port: int, timeout: float = 1) -> socket.socket:
    """A TCP connection to host:port as seen inside the namespace."""
    return call_inside(path, lambda: socket.create_connection((host, port), timeout=timeout))
