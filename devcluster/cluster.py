"""Bring the local control plane up and down.

`up(name)` is idempotent: a healthy cluster with that name is reused, a broken one is torn down and
started afresh. Every component listens on a free loopback port, so several named clusters (a demo
and a test run) can live side by side. Processes are detached (own session) and outlive the caller;
`down(name)` stops them. State lives in `$JOBWARDEN_CACHE/clusters/<name>/` (default
`~/.cache/jobwarden`), never in the repository."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jobwarden.shell import certs

HERE = Path(__file__).resolve().parent
K8S_VERSION = "v1.37.2"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# KCM runs only what a kubelet-less test cluster needs: ownerReference garbage collection, namespace
# deletion, default ServiceAccounts and their tokens, the root CA ConfigMap, and batch Jobs (MPIJob's
# launcher is a Job: the Job controller makes its pod, the TTL controller deletes it once finished).
# Node lifecycle is left out on purpose: kwok's nodes would otherwise be tainted and their pods evicted.
KCM_CONTROLLERS = (
    "garbage-collector-controller,namespace-controller,serviceaccount-controller,"
    "serviceaccount-token-controller,root-ca-certificate-publisher-controller,resourcequota-controller,"
    "job-controller,ttl-after-finished-controller"
)
FAKE_NODE = "kwok-node-0"
# The processes this Python process started, for their exit codes in error messages.
# The components this process started, by (cluster root, component): several clusters may stop and
# start their apiserver in one test session (an outage test, then the namespaces test).
_PROCESSES: dict[tuple[Path, str], subprocess.Popen[bytes]] = {}


def cache_dir() -> Path:
    return Path(os.environ.get("JOBWARDEN_CACHE", Path.home() / ".cache" / "jobwarden"))


def bin_dir() -> Path:
    return cache_dir() / f"k8s-{K8S_VERSION}" / "bin"


def log(message: str) -> None:
    print(f"[devcluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Cluster:
    name: str
    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    # A real-node cluster (devcluster/realnode.py): the network namespace file everything runs in.
    netns: str = ""

    @property
    def netns_path(self) -> Path:
        return Path(self.netns)

    @property
    def components(self) -> tuple[str, ...]:
        if self.netns:
            from devcluster import realnode

            return realnode.COMPONENTS
        return COMPONENTS

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def kubectl_path(self) -> Path:
        return bin_dir() / "kubectl"

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            text=True,
            capture_output=True,
            check=check,
            timeout=timeout,
        )

    def save(self) -> None:
        state = {"name": self.name, "ports": self.ports, "pids": self.pids, "netns": self.netns}
        (self.root / "state.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, name: str) -> Cluster | None:
        root = cache_dir() / "clusters" / name
        try:
            state = json.loads((root / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return cls(
            name=name, root=root, ports=state["ports"], pids=state["pids"], netns=state.get("netns", "")
        )

    def alive(self) -> bool:
        return all(_pid_is_ours(self.pids.get(c)) for c in self.components) and self._ready()

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.root / "pki" / "ca.crt"))
        ctx.load_cert_chain(str(self.root / "pki" / "admin.crt"), str(self.root / "pki" / "admin.key"))
        return ctx

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.server}/readyz", context=self._ssl_context(), timeout=3) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def summary(self) -> dict[str, object]:
        return {"name": self.name, "kubeconfig": str(self.kubeconfig), "server": self.server, **asdict(self)}


def _pid_is_ours(pid: int | None) -> bool:
    """True if `pid` is a live process started from our binaries or naming our cache in its command
    line (a real node's relay), which guards against reused pids."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(cache_dir()).encode() in cmdline


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_binaries() -> None:
    """Build (or find cached) binaries; the first run on a fresh machine compiles for a while."""
    subprocess.run(["bash", str(HERE / "build.sh")], check=True, stdout=subprocess.DEVNULL)


def _write_pki(pki: Path) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    ca = certs.make_ca("jobwarden-devcluster-ca")
    ca.write(pki / "ca.crt", pki / "ca.key")
    hosts = [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "10.96.0.1",
    ]
    certs.issue(ca, "kube-apiserver", hosts=hosts).write(pki / "apiserver.crt", pki / "apiserver.key")
    certs.issue(ca, "jobwarden-admin", organization="system:masters", client=True).write(
        pki / "admin.crt", pki / "admin.key"
    )
    private, public = certs.rsa_signing_key_pem()
    (pki / "sa.key").write_bytes(private)
    (pki / "sa.key").chmod(0o600)
    (pki / "sa.pub").write_bytes(public)


def _write_kubeconfig(cluster: Cluster) -> None:
    pki = cluster.root / "pki"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster.name,
                "cluster": {"server": cluster.server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")},
            }
        ],
        "contexts": [{"name": cluster.name, "context": {"cluster": cluster.name, "user": "admin"}}],
        "current-context": cluster.name,
    }
    cluster.kubeconfig.write_text(json.dumps(config, indent=2))  # JSON is valid YAML


def _command(component: str, c: Cluster) -> list[str]:
    pki, p, kc = c.root / "pki", c.ports, str(c.kubeconfig)
    binary = str(bin_dir() / ("kwok" if component == "kwok" else component))
    if component == "etcd":
        return [
            binary,
            f"--data-dir={c.root / 'etcd'}",
            "--name=devcluster",
            f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-cluster=devcluster=http://127.0.0.1:{p['etcd_peer']}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
    if component == "kube-apiserver":
        return [
            binary,
            f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={p['apiserver']}",
            f"--cert-dir={c.root / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--endpoint-reconciler-type=none",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            "--v=0",
        ]
    common = [f"--kubeconfig={kc}", "--leader-elect=false", "--bind-address=127.0.0.1"]
    if component == "kube-controller-manager":
        return [
            binary,
            *common,
            f"--secure-port={p['kcm']}",
            f"--controllers={KCM_CONTROLLERS}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--concurrent-gc-syncs=5",
            "--v=0",
        ]
    if component == "kube-scheduler":
        return [binary, *common, f"--secure-port={p['scheduler']}", "--v=0"]
    return [
        binary,
        f"--kubeconfig={kc}",
        f"--config={HERE / 'kwok-stages.yaml'}",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        f"--server-address=127.0.0.1:{p['kwok']}",
        "--cidr=10.244.0.0/16",
        "--node-ip=10.0.0.10",
    ]


def _start(
    component: str,
    cluster: Cluster,
    argv: list[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    logs = cluster.root / "logs"
    logs.mkdir(exist_ok=True)
    with open(logs / f"{component}.log", "ab") as out:
        proc = subprocess.Popen(
            argv or _command(component, cluster),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd or cluster.root,
            env=env,
        )
    cluster.pids[component] = proc.pid
    _PROCESSES[(cluster.root, component)] = proc
    cluster.save()


def _wait(what: str, check: object, timeout: float, cluster: Cluster, component: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        proc = _PROCESSES.get((cluster.root, component))
        # The process object we started is the authority: a command line read while the process
        # execs (nsenter execs the component) can come back empty.
        running = proc.poll() is None if proc else _pid_is_ours(cluster.pids.get(component))
        if not running:
            code = proc.poll() if proc else None
            tail = (cluster.root / "logs" / f"{component}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{component} exited (code {code}) while waiting for {what}:\n{tail}")
        time.sleep(0.3)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} ({cluster.root / 'logs'})")


def _etcd_healthy(cluster: Cluster) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{cluster.ports['etcd']}/health", timeout=2) as r:
            return b"true" in r.read()
    except OSError:
        return False


NODE_MANIFEST = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": FAKE_NODE,
        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        "labels": {"kubernetes.io/hostname": FAKE_NODE, "kubernetes.io/os": "linux", "type": "kwok"},
    },
    "status": {
        "allocatable": {"cpu": "1k", "memory": "1Ti", "pods": "1M"},
        "capacity": {"cpu": "1k", "memory": "1Ti", "pods": "1M"},
    },
}


def install_crds(cluster: Cluster, kustomization: Path) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(kustomization))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


def _node_ready(cluster: Cluster) -> bool:
    out = cluster.kubectl(
        "get",
        "node",
        FAKE_NODE,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        check=False,
    )
    return out.stdout.strip() == "True"


def up(
    name: str = "default", attempts: int = 3, crds: Path | None = None, real_node: bool = False
) -> Cluster:
    """Start (or reuse) the named local control plane and return it once a kwok node is Ready (or,
    with `real_node`, a real kubelet's node: devcluster/realnode.py).

    A component that dies while starting (seen once: etcd on a port another process grabbed between
    our probe and its bind) is retried on fresh ports, `attempts` times in all.

    `crds`: a kustomization of CRDs to install before the controller-manager starts, so its garbage
    collector knows their kinds from the first moment (it rediscovers API resources only every 30 s,
    and until then does not collect the children of a deleted custom resource)."""
    existing = Cluster.load(name)
    if existing and existing.alive() and bool(existing.netns) == real_node:
        log(f"cluster '{name}' is already running at {existing.server}")
        return existing
    if existing:
        log(f"cluster '{name}' is not healthy (or not of the kind asked for); recreating it")
        down(name)
    ensure_binaries()
    for attempt in range(1, attempts + 1):
        try:
            if real_node:
                from devcluster import realnode

                return realnode.start(name, crds)  # tears itself down on failure
            return _start_cluster(name, crds)
        except (RuntimeError, TimeoutError) as exc:
            log(f"attempt {attempt} to start cluster '{name}' failed: {exc}")
            down(name)
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _start_cluster(name: str, crds: Path | None) -> Cluster:
    started = time.monotonic()
    root = cache_dir() / "clusters" / name
    # Always a fresh directory: etcd data left by an earlier cluster of this name (a process still
    # writing while it died) would make the new etcd refuse to start.
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    ports = {k: _free_port() for k in ("etcd", "etcd_peer", "apiserver", "kcm", "scheduler", "kwok")}
    cluster = Cluster(name=name, root=root, ports=ports)
    _write_pki(root / "pki")
    _write_kubeconfig(cluster)
    cluster.save()
    log(f"starting etcd, kube-apiserver {K8S_VERSION}, controller-manager, scheduler, kwok in {root}")
    _start("etcd", cluster)
    _wait("etcd health", lambda: _etcd_healthy(cluster), 60, cluster, "etcd")  # 30 s was short under load
    _start("kube-apiserver", cluster)
    _wait("kube-apiserver /readyz", cluster._ready, 90, cluster, "kube-apiserver")
    if crds:
        install_crds(cluster, crds)
    for component in ("kube-controller-manager", "kube-scheduler", "kwok"):
        _start(component, cluster)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(NODE_MANIFEST))
    _wait("a Ready kwok node", lambda: _node_ready(cluster), 60, cluster, "kwok")
    # The apiserver taints new nodes not-ready; the node-lifecycle controller (left out, see
    # KCM_CONTROLLERS) would lift it once kwok reports Ready, so lift it here, once.
    cluster.kubectl("taint", "node", FAKE_NODE, "node.kubernetes.io/not-ready:NoSchedule-", check=False)
    _wait(
        "the default ServiceAccount",
        lambda: (
            cluster.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0
        ),
        60,
        cluster,
        "kube-controller-manager",
    )
    log(f"cluster '{name}' is up in {time.monotonic() - started:.1f}s; KUBECONFIG={cluster.kubeconfig}")
    return cluster


def stop_component(cluster: Cluster, component: str, grace: float = 10) -> None:
    """Stop one component (e.g. the apiserver, for an outage test); `start_component` brings it back
    on the same port with the same state."""
    pid = cluster.pids.get(component)
    if not _pid_is_ours(pid):
        return
    assert pid is not None
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _pid_is_ours(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_is_ours(pid):
        os.killpg(pid, signal.SIGKILL)
    proc = _PROCESSES.pop((cluster.root, component), None)
    if proc is not None:
        proc.wait(5)


def start_component(cluster: Cluster, component: str) -> None:
    _start(component, cluster)
    if component == "kube-apiserver":
        _wait("kube-apiserver /readyz", cluster._ready, 90, cluster, component)


def _stop_operator(root: Path, grace: float = 10) -> None:
    """The demo leaves `jobwarden run` running next to the cluster; stop it too (SIGTERM, then SIGKILL
    after `grace` seconds: its graceful stop talks to the apiserver, which may already be gone)."""
    try:
        pid = int((root / "operator.pid").read_text())
        if b"jobwarden" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        os.killpg(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + grace
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def down(name: str = "default") -> None:
    """Stop every component of the named cluster and remove its state."""
    cluster = Cluster.load(name)
    root = cache_dir() / "clusters" / name
    _stop_operator(root)
    if cluster and cluster.netns:
        from devcluster import realnode

        left = realnode.stop(cluster)
        if left:
            log(f"cluster '{name}': could not remove {left}")
    elif cluster:
        for component in reversed(COMPONENTS):
            pid = cluster.pids.get(component)
            if _pid_is_ours(pid):
                assert pid is not None
                os.killpg(pid, signal.SIGTERM)
        # A short grace: the state is deleted right after, so a graceful apiserver shutdown (which waits
        # for open watches) buys nothing but time.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(_pid_is_ours(p) for p in cluster.pids.values()):
            time.sleep(0.2)
        for pid in cluster.pids.values():
            if _pid_is_ours(pid):
                os.killpg(pid, signal.SIGKILL)
    _kill_stragglers(root)
    # Only delete the state once nothing of this cluster runs: a dying process could write into it.
    deadline = time.monotonic() + 10
    while _stragglers(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    _reap(root)
    shutil.rmtree(root, ignore_errors=True)
    log(f"cluster '{name}' is down")


def _reap(root: Path) -> None:
    """Wait for the components this process started, so a test session that brings many clusters up
    and down leaves no zombies behind (they hold a pid each until pytest exits)."""
    for key in [key for key in _PROCESSES if key[0] == root]:
        with contextlib.suppress(subprocess.TimeoutExpired):
            _PROCESSES.pop(key).wait(1)


def _stragglers(root: Path, marker_bin: Path | None = None) -> list[int]:
    """Every component's command line names the cluster's state directory (data dir, certificates,
    kubeconfig), so a process that state.json lost track of (a start that failed half-way) is found
    too."""
    marker = (str(root) + os.sep).encode()  # `…/e2e/`, so cluster `e2e2` is not matched
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline and str(marker_bin or bin_dir()).encode() in cmdline:
            found.append(int(proc.name))
    return found


def _kill_stragglers(root: Path, marker_bin: Path | None = None) -> None:
    for pid in _stragglers(root, marker_bin):
        with contextlib.suppress(OSError):  # it may have exited meanwhile
            os.kill(pid, signal.SIGKILL)
