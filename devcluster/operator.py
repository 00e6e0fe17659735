"""`jobwarden run` against a devcluster, as a subprocess: shared by the tests, the demo and the
benchmarks, so all three run the operator exactly as a user would (one command line, one readiness
check). Locally the operator registers its webhook at https://127.0.0.1:<free port>/validate.

On a real-node cluster (devcluster/realnode.py) pass `netns=cluster.netns_path`: the operator then
runs inside the cluster's network namespace (`nsenter --net`), where the apiserver can call its
webhook on 127.0.0.1, and its ports are probed from in there."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devcluster import netns as ns
from devcluster.cluster import Cluster

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalOperator:
    def __init__(
        self,
        cluster: Cluster,
        log_path: Path,
        extra_args: list[str] | None = None,
        kubeconfig: Path | None = None,
        register_webhook: bool = True,
        detach: bool = False,
        namespaces: tuple[str, ...] = (),
        lease: str | None = None,
        lease_namespace: str | None = "default",
        identity: str | None = None,
        webhook: bool = True,
        netns: Path | None = None,
    ) -> None:
        self.cluster = cluster
        self.log_path = log_path
        self.extra_args = extra_args or []
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.register_webhook = register_webhook  # False: the configuration exists, only patch its caBundle
        self.detach = detach  # True: outlive the caller (the demo leaves it running)
        self.namespaces = namespaces  # empty: all namespaces
        self.webhook = webhook  # False: `--no-webhook`, a controller only (extra replicas in fault tests)
        self.netns = netns  # a network namespace file: run (and probe) the operator inside it
        self.webhook_port = free_port()
        self.metrics_port = free_port()
        self.health_port = free_port()
        # Leader election: by default a Lease of this runner's own (so runners side by side, e.g. a
        # namespaced one next to the session's, each lead), held under an identity that survives
        # restart(), so a restarted operator takes its Lease back at once instead of waiting out the
        # killed process's lease. Replicas of one deployment share `lease` and differ in `identity`.
        self.lease = lease or f"jobwarden-leader-{self.health_port}"
        self.lease_namespace = lease_namespace  # None: the operator's default (jobwarden-system)
        self.identity = identity or f"local-{self.health_port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.ready_seconds = 0.0  # of the last start: from launch to healthy()

    def command(self) -> list[str]:
        webhook = (
            f"--webhook-url=https://127.0.0.1:{self.webhook_port}"
            if self.register_webhook
            else "--webhook-self-signed"
        )
        if not self.webhook:
            webhook = "--no-webhook"
        inside = ["nsenter", f"--net={self.netns}", "--"] if self.netns else []
        return [
            *inside, sys.executable, "-m", "jobwarden.cli", "run",
            *([f"--namespace={ns}" for ns in self.namespaces] or ["--all-namespaces"]),
            f"--kubeconfig={self.kubeconfig}", webhook, "--webhook-bind=127.0.0.1",
            f"--webhook-port={self.webhook_port}", f"--webhook-work-dir={self.log_path.parent / 'webhook'}",
            f"--metrics-port={self.metrics_port}", f"--health-port={self.health_port}",
            "--metrics-bind=127.0.0.1", "--health-bind=127.0.0.1",
            f"--leader-elect-lease-name={self.lease}",
            *([f"--leader-elect-namespace={self.lease_namespace}"] if self.lease_namespace else []),
            f"--leader-elect-identity={self.identity}",
            *self.extra_args,
        ]  # fmt: skip

    def popen_env(self) -> dict[str, str] | None:
        """The environment of the command (None: this process's)."""
        return None

    def start(self, timeout: float = 60) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Readiness is judged on what this process logs: after a restart the file already holds the
        # previous process's "jobwarden started".
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        launched = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=ROOT, start_new_session=self.detach, env=self.popen_env(),
            )  # fmt: skip
        deadline = launched + timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the operator did not become ready in {timeout}s; see {self.log_path}")
            time.sleep(0.1)
        self.ready_seconds = time.monotonic() - launched

    def healthy(self) -> bool:
        """Serving /healthz and the webhook, and done registering (it logs `jobwarden started`)."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"operator exited:\n{self.logs()[-4000:]}")
        try:
            for port in (self.health_port, self.webhook_port) if self.webhook else (self.health_port,):
                if self.netns:
                    ns.connect(self.netns, "127.0.0.1", port).close()
                    continue
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
        except OSError:
            return False
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            return b"jobwarden started" in log.read()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Killed (SIGKILL, as a crash would) for the block and started again afterwards, whatever
        happens in the block: a shared operator must be running for whatever comes next."""
        self.kill()
        try:
            yield
        finally:
            self.start()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
