"""A devcluster with one real node: kubelet, containerd, runc, CNI bridge and CoreDNS running real pods.

    python -m devcluster up --name NAME --real-node      (and `down --name NAME` as for any cluster)

What runs where. Everything of the cluster lives in one network namespace made for it (`unshare
--net` on the file `<state>/netns`): lo, a bridge `cni0` at 10.244.0.1/24, no default route, no
forwarding, no NAT, so no pod and no component can reach beyond this machine. Inside it: etcd, the
kube-apiserver (on 127.0.0.1:P), the controller-manager (with the EndpointSlice and node-lifecycle
controllers a real node needs), the scheduler, containerd, CoreDNS (10.244.0.1:53, the pods'
nameserver) and the kubelet (node `realnode-0`, node IP 10.244.0.1). Every one is started as
`nsenter --net=<state>/netns -- BINARY ...`, which execs: the recorded pid is the component's own.
A relay (devcluster/relay.py) listens on the host's 127.0.0.1:P and forwards into the namespace's
127.0.0.1:P, so the same kubeconfig works on the host (pytest, kubectl) and inside; anything the
apiserver must call back (the operator's webhook on 127.0.0.1) must run inside:
`LocalOperator(cluster, ..., netns=cluster.netns_path)` starts it there.

Images have no registry: `import_image(cluster, tar)` imports an OCI image-layout tar into
containerd's `k8s.io` namespace (devcluster/ociimage.py writes one; `podman save --format
oci-archive` makes one too). Name images `jobwarden.local/<name>:1` and give the pods
`imagePullPolicy: Never`. `jobwarden.local/pause:1` (the sandbox) and `jobwarden.local/netcheck:1` (a
TCP server/client, see devcluster/images/netcheck) and `jobwarden.local/busybox:1` (Debian's static
busybox: sh, nslookup, nc, wget, sleep...) are imported at start.

What it changes on the host, and how `down` restores it (also in the README):
- kubelet writes six kernel sysctls at start (vm.overcommit_memory, vm.panic_on_oom, kernel.panic,
  kernel.panic_on_oops, kernel.keys.root_maxkeys, kernel.keys.root_maxbytes): their values are saved
  before it starts and written back once it has started (and again at `down`), under a host-wide lock;
- cgroups: the node's cgroup root is `/jobwarden-<name>` (its `kubepods` tree below) in every
  hierarchy; `down` kills what is left in it and removes it;
- mounts: kubelet's bind mount of its root dir onto itself, pod volumes, container root
  filesystems and the pods' network namespace files, all under the state directory: unmounted;
- hard-coded paths: /var/log/containers/*.log symlinks, /var/lib/kubelet/device-plugins/kubelet.sock,
  /run/containerd/s/ shim sockets, /var/lib/cni/results/: this cluster's entries are removed, and the
  directories too if they did not exist before and are empty.
One real-node cluster per name; several can run side by side (their own namespaces, cgroup roots and
ports), but they share the device-plugin socket path (unused here: no device plugins)."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devcluster import cluster as dc
from devcluster import netns, ociimage
from jobwarden.shell import certs

NODE = "realnode-0"
BRIDGE, BRIDGE_IP, POD_SUBNET = "cni0", "10.244.0.1", "10.244.0.0/24"
PAUSE_IMAGE = "jobwarden.local/pause:1"
NETCHECK_IMAGE = "jobwarden.local/netcheck:1"
# Debian's static busybox with its applets linked in /bin (seq, sleep, wget, nc, ...), the host's
# dash as /bin/sh (with its libc) and netcheck as /bin/nslookup: busybox 1.35's nslookup fails while
# any search domain answers NXDOMAIN, even after one resolved (upstream's alpine:3.10 does not), and
# its sh always runs its own applets, so both are replaced. The operator's PyTorch init container
# (`--pytorch-init-container-image`) waits for the master's name with it.
BUSYBOX_IMAGE = "jobwarden.local/busybox:1"
BUSYBOX = Path("/bin/busybox")
DASH = Path("/bin/dash")
# What `jobwarden run` needs on a real node beyond the usual: an init-container image that exists.
OPERATOR_ARGS = (f"--pytorch-init-container-image={BUSYBOX_IMAGE}",)
# In start order. Ports inside the namespace are fixed (it is the cluster's own); only the
# apiserver's is a free host port, because the relay listens on the same port on the host.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "relay",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "coredns",
    "kubelet",
)
FIXED_PORTS = {"etcd": 2379, "etcd_peer": 2380, "kcm": 10257, "scheduler": 10259, "kubelet": 10250}
# What kubelet's container manager sets at every start (pkg/kubelet/cm setupKernelTunables).
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# Paths kubelet, containerd and the CNI plugins use whatever they are configured with.
HOST_DIRS = (
    "/var/log/containers",
    "/var/lib/kubelet/device-plugins",
    "/var/lib/kubelet",
    "/run/containerd/s",
    "/run/containerd",
    "/var/lib/cni/results",
    "/var/lib/cni",
)
DEVICE_PLUGIN_SOCKET = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
KCM_CONTROLLERS = f"{dc.KCM_CONTROLLERS},endpointslice-controller,node-lifecycle-controller"


def node_bin_dir() -> Path:
    return dc.cache_dir() / "realnode" / "bin"


def unavailable_reason() -> str | None:
    """Why this host cannot run a real node, or None when it can."""
    if os.geteuid() != 0:
        return "a real node needs root (network namespaces, cgroups, mounts); this process is not root"
    if not _cgroup_mounts():
        return "no cgroup filesystem is mounted under /sys/fs/cgroup"
    for tool in ("unshare", "nsenter", "ip"):
        if not shutil.which(tool):
            return f"`{tool}` (util-linux / iproute2) is not installed"
    return None


# --- the host: cgroups, sysctls, mounts -------------------------------------------------------------


def _mountinfo() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount this process sees, octal escapes decoded."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        point = fields[4].encode().decode("unicode_escape")
        fstype = fields[fields.index("-") + 1]
        found.append((point, fstype))
    return found


def _cgroup_mounts() -> list[Path]:
    return [Path(p) for p, fstype in _mountinfo() if fstype in ("cgroup", "cgroup2")]


def cgroup_root(name: str) -> str:
    return f"/jobwarden-{name}"


def _make_cgroup_root(name: str) -> None:
    """kubelet insists that its cgroup root exists in every hierarchy; a v1 cpuset child needs its
    cpus and mems before any task may join it."""
    for mount in _cgroup_mounts():
        path = mount / cgroup_root(name).lstrip("/")
        path.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (mount / knob).exists() and not (path / knob).read_text().strip():
                (path / knob).write_text((mount / knob).read_text())


def _remove_cgroup_root(name: str) -> list[str]:
    """Kill every process left in the cluster's cgroups, then remove them, deepest first. Returns
    the directories that could not be removed."""
    roots = [m / cgroup_root(name).lstrip("/") for m in _cgroup_mounts()]
    for _ in range(50):
        pids = {
            int(pid)
            for root in roots
            if root.exists()
            for procs in root.rglob("cgroup.procs")
            for pid in _read(procs).split()
        }
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    left = []
    for root in roots:
        if not root.exists():
            continue
        for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()
        try:
            root.rmdir()
        except OSError:
            left.append(str(root))
    return left


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def read_sysctls() -> dict[str, str]:
    return {key: Path("/proc/sys", key).read_text().strip() for key in SYSCTLS}


def settled_sysctls() -> dict[str, str]:
    """The sysctls when no real-node cluster on this host is between its kubelet's start and the
    moment it gives the values back (read under the same lock)."""
    with _host_lock():
        return read_sysctls()


def write_sysctls(values: dict[str, str]) -> None:
    for key, value in values.items():
        if Path("/proc/sys", key).read_text().strip() != value:
            Path("/proc/sys", key).write_text(value)


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    """Serialises the sysctl save/restore of every real-node cluster on this host: a kubelet
    starting between another cluster's save and restore would make it save kubelet's values."""
    dc.cache_dir().mkdir(parents=True, exist_ok=True)
    with open(dc.cache_dir() / "realnode.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root) + os.sep
    return [p for p, _ in _mountinfo() if p.startswith(prefix) or p == str(root)]


def _unmount_all_under(root: Path) -> list[str]:
    """Lazily unmount everything under `root`, deepest first; returns what is still mounted."""
    libc = ctypes.CDLL(None, use_errno=True)
    mnt_detach = 2
    for _ in range(5):
        points = _mounts_under(root)
        if not points:
            return []
        for point in sorted(set(points), key=lambda p: -len(p)):
            libc.umount2(point.encode(), mnt_detach)
    return _mounts_under(root)


# --- configuration ---------------------------------------------------------------------------------


def _write_node_pki(pki: Path) -> None:
    ca = certs.load(pki / "ca.crt", pki / "ca.key")
    certs.issue(ca, NODE, hosts=[BRIDGE_IP, NODE]).write(pki / "kubelet.crt", pki / "kubelet.key")
    certs.issue(ca, f"system:node:{NODE}", organization="system:nodes", client=True).write(
        pki / "kubelet-client.crt", pki / "kubelet-client.key"
    )
    certs.issue(ca, "kube-apiserver-kubelet-client", organization="system:masters", client=True).write(
        pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key"
    )


def _kubelet_kubeconfig(c: dc.Cluster) -> Path:
    pki, path = c.root / "pki", c.root / "kubelet" / "kubeconfig"
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": c.server, "certificate-authority": str(pki / "ca.crt")}}
        ],
        "users": [
            {
                "name": "kubelet",
                "user": {
                    "client-certificate": str(pki / "kubelet-client.crt"),
                    "client-key": str(pki / "kubelet-client.key"),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "kubelet"}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config, indent=2))
    return path


def _containerd_socket(c: dc.Cluster) -> Path:
    return c.root / "containerd" / "containerd.sock"


def _write_containerd_config(c: dc.Cluster) -> Path:
    base = c.root / "containerd"
    (base / "cni-conf").mkdir(parents=True, exist_ok=True)
    (base / "cni-conf" / "10-bridge.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": f"jw-{c.name}",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": BRIDGE,
                        "isGateway": False,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": POD_SUBNET, "rangeStart": "10.244.0.10"}]],
                            "dataDir": str(base / "cni-ipam"),
                        },
                    }
                ],
            },
            indent=2,
        )
    )
    config = f"""\
version = 4
root = "{base / "root"}"
state = "{base / "state"}"
# Never the host's /etc/containerd/conf.d drop-ins.
imports = []
# NRI would listen on /var/run/nri; nothing here uses it.
disabled_plugins = ["io.containerd.nri.v1.nri"]

[plugins."io.containerd.server.v1.grpc"]
  address = "{_containerd_socket(c)}"

[plugins."io.containerd.server.v1.ttrpc"]
  address = "{_containerd_socket(c)}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"

[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = "{base / "image-verifier"}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins."io.containerd.cri.v1.runtime"]
  # These hosts lack CAP_SYS_RESOURCE: without this, runc fails every sandbox (a negative
  # oom_score_adj is refused) with a misleading "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  # The pods' network namespace files under our state directory, not /var/run/netns.
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = ["{base / "cdi"}"]
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which("runc") or "/usr/sbin/runc"}"
        Root = "{base / "runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{base / "cni-conf"}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""
    path = base / "config.toml"
    path.write_text(config)
    return path


def _write_corefile(c: dc.Cluster) -> Path:
    # cluster.local from the apiserver's EndpointSlices; every other name a fast NXDOMAIN (no
    # upstream exists, and a SERVFAIL would make glibc's search-list walk slow).
    path = c.root / "coredns" / "Corefile"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""\
cluster.local:53 {{
    bind {BRIDGE_IP}
    errors
    ready 127.0.0.1:8181
    health 127.0.0.1:8080
    kubernetes cluster.local {{
        kubeconfig {c.kubeconfig}
        ttl 5
    }}
    cache 5
}}
.:53 {{
    bind {BRIDGE_IP}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
""")
    return path


def _write_kubelet_config(c: dc.Cluster) -> Path:
    base, pki = c.root / "kubelet", c.root / "pki"
    base.mkdir(parents=True, exist_ok=True)
    # Pods get only the cluster's DNS: never the host's nameservers or search domains.
    (base / "resolv.conf").write_text("search cluster.local\n")
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # these hosts run cgroup v1 (hybrid)
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root(c.name),
        "containerRuntimeEndpoint": f"unix://{_containerd_socket(c)}",
        "imageServiceEndpoint": f"unix://{_containerd_socket(c)}",
        "address": BRIDGE_IP,
        "port": FIXED_PORTS["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "tlsCertFile": str(pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        "clusterDNS": [BRIDGE_IP],
        "clusterDomain": "cluster.local",
        "resolvConf": str(base / "resolv.conf"),
        "podLogsDir": str(c.root / "pod-logs"),
        "volumePluginDir": str(base / "volume-plugins"),
        # A shared development machine: evict only when really short, never collect our images.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "failSwapOn": False,
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
        "maxPods": 110,
        # How often kubelet resyncs each pod, and so refreshes its ConfigMap volumes: the default 1 min
        # made a scaled Volcano job wait ~85 s for its new hostfile (tests/realnode/test_real_training.py).
        "syncFrequency": "10s",
    }
    path = base / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def netcheck_pod(name: str, args: list[str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod of the tier's own netcheck image (`serve PORT` / `dial NAME:PORT`), named `<name>.peers`
    in DNS when a headless Service `peers` selects it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "hostname": name,
            "subdomain": "peers",
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": NETCHECK_IMAGE,
                    "imagePullPolicy": "Never",
                    "args": args,
                    "ports": [{"containerPort": 7000}],
                }
            ],
        },
    }


def _command(component: str, c: dc.Cluster) -> list[str]:
    pki, nbin = c.root / "pki", node_bin_dir()
    if component in ("etcd", "kube-scheduler"):
        return dc._command(component, c)
    if component == "kube-apiserver":
        argv = [a for a in dc._command(component, c) if not a.startswith("--advertise-address=")]
        return [
            *argv,
            f"--advertise-address={BRIDGE_IP}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",  # the hostname resolves to loopback
        ]
    if component == "kube-controller-manager":
        return [
            f"--controllers={KCM_CONTROLLERS}" if a.startswith("--controllers=") else a
            for a in dc._command(component, c)
        ]
    if component == "containerd":
        return [str(nbin / "containerd"), f"--config={_write_containerd_config(c)}"]
    if component == "coredns":
        return [str(nbin / "coredns"), "-conf", str(_write_corefile(c))]
    if component == "kubelet":
        return [
            str(dc.bin_dir() / "kubelet"),
            f"--config={_write_kubelet_config(c)}",
            f"--kubeconfig={_kubelet_kubeconfig(c)}",
            f"--root-dir={c.root / 'kubelet' / 'root'}",
            f"--cert-dir={c.root / 'kubelet' / 'pki'}",
            f"--hostname-override={NODE}",
            f"--node-ip={BRIDGE_IP}",
            "--v=1",
        ]
    raise ValueError(component)


def _start(component: str, c: dc.Cluster) -> None:
    if component == "relay":
        # Not a binary of ours: the relay names the state directory so `down` and alive() know it.
        argv = [sys.executable, "-m", "devcluster.relay", c.netns, str(c.ports["apiserver"])]
        dc._start(component, c, argv, cwd=dc.HERE.parent)
        return
    env = {
        **os.environ,
        "PATH": f"{node_bin_dir()}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
    }
    dc._start(component, c, netns.command(c.netns_path, _command(component, c)), env=env)


# --- up --------------------------------------------------------------------------------------------


def _inside(c: dc.Cluster, url: str) -> bool:
    """GET `url` from inside the namespace (plain HTTP health endpoints)."""

    def get() -> bool:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)

    try:
        return netns.call_inside(c.netns_path, get)
    except OSError:
        return False


def _ctr(
    c: dc.Cluster, *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(node_bin_dir() / "ctr"), f"--address={_containerd_socket(c)}", "--namespace=k8s.io", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def import_image(c: dc.Cluster, oci_tar: Path) -> None:
    """Import an OCI image-layout tar into the node's containerd (namespace `k8s.io`, the one the
    kubelet's CRI uses), unpacked for the overlayfs snapshotter, so pods can run it at once.

    Interface for tests that bring their own images: name the image `jobwarden.local/<name>:1` (in
    the tar's `index.json`: the `io.containerd.image.name` annotation, as devcluster/ociimage.py
    writes it; `podman save --format oci-archive` sets it from the tag) and give the pods
    `imagePullPolicy: Never`: no registry exists. Importing the same image again is cheap."""
    _ctr(c, "images", "import", "--snapshotter=overlayfs", str(oci_tar), timeout=600)


def _libraries(binary: Path) -> dict[str, Path]:
    """The shared libraries `binary` loads (and the loader), by their paths, from `ldd`."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    paths = [word for line in out.splitlines() for word in line.split() if word.startswith("/")]
    return {path: Path(path) for path in paths}


def builtin_images() -> dict[str, Path]:
    """The images the tier makes itself (OCI tars under the cache, rebuilt when the binary is newer)."""
    out = dc.cache_dir() / "realnode" / "images"
    made = {}
    for name, image in (("pause", PAUSE_IMAGE), ("netcheck", NETCHECK_IMAGE)):
        binary, tar = node_bin_dir() / name, out / f"{name}.tar"
        if not tar.exists() or tar.stat().st_mtime < binary.stat().st_mtime:
            ociimage.write_image(tar, image, {f"/{name}": binary}, entrypoint=[f"/{name}"])
        made[image] = tar
    tar = out / "busybox.tar"
    netcheck = node_bin_dir() / "netcheck"
    newest = max(p.stat().st_mtime for p in (BUSYBOX, DASH, netcheck, Path(__file__)))
    if not tar.exists() or tar.stat().st_mtime < newest:
        applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout
        links = {f"/bin/{a}": "busybox" for a in applets.split() if a not in ("busybox", "nslookup", "sh")}
        files = {"/bin/busybox": BUSYBOX, "/bin/nslookup": netcheck, "/bin/sh": DASH, **_libraries(DASH)}
        ociimage.write_image(tar, BUSYBOX_IMAGE, files, ["/bin/sh"], links=links)
    made[BUSYBOX_IMAGE] = tar
    return made


def container_pid(c: dc.Cluster, container_id: str) -> int:
    """The host pid of a running container's main process (`containerd://<id>` from a pod's
    containerStatuses, or the bare id)."""
    wanted = container_id.removeprefix("containerd://")
    for line in _ctr(c, "tasks", "ls").stdout.splitlines()[1:]:
        task, pid, status = line.split()
        if task == wanted and status == "RUNNING":
            return int(pid)
    raise LookupError(f"no running task {wanted} on the node")


def kill_container(c: dc.Cluster, container_id: str, sig: int = signal.SIGKILL) -> None:
    """Signal a container's main process from the host, as the kernel's OOM killer or a crash would
    (SIGKILL: the container exits 137), not through the kubelet."""
    os.kill(container_pid(c, container_id), sig)


def running_tasks(c: dc.Cluster) -> set[str]:
    """The ids of the containers whose processes run on the node now."""
    lines = _ctr(c, "tasks", "ls").stdout.splitlines()[1:]
    return {line.split()[0] for line in lines if line.split()[2] == "RUNNING"}


def _node_ready(c: dc.Cluster) -> bool:
    out = c.kubectl(
        "get", "node", NODE, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False
    )
    return out.stdout.strip() == "True"


def _host_dirs_missing() -> list[str]:
    return [d for d in HOST_DIRS if not Path(d).exists()]


def start(name: str, crds: Path | None) -> dc.Cluster:
    """Start the named real-node cluster (its state directory fresh) and return it once the node is
    Ready; on any failure everything started so far is torn down again."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(f"cannot run a real node here: {reason}")
    root = dc.cache_dir() / "clusters" / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    c = dc.Cluster(
        name=name, root=root, ports={"apiserver": dc._free_port(), **FIXED_PORTS}, netns=str(root / "netns")
    )
    # Saved before anything exists on the host, so `down` can clean up after a start that failed.
    (root / "host-dirs-missing.json").write_text(json.dumps(_host_dirs_missing()))
    c.save()
    try:
        _start_in(c, crds)
    except BaseException:
        dc.down(name)
        raise
    return c


def _start_in(c: dc.Cluster, crds: Path | None) -> None:
    began = time.monotonic()
    dc._write_pki(c.root / "pki")
    _write_node_pki(c.root / "pki")
    dc._write_kubeconfig(c)
    netns.create(c.netns_path)
    ns = c.netns_path
    netns.run(ns, "ip", "link", "set", "lo", "up")
    netns.run(ns, "ip", "link", "add", BRIDGE, "type", "bridge")
    netns.run(ns, "ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", BRIDGE)
    netns.run(ns, "ip", "link", "set", BRIDGE, "up")
    netns.run(ns, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward")
    dc.log(f"starting a real-node cluster '{c.name}' in network namespace {ns}")
    _start("etcd", c)
    dc._wait("etcd health", lambda: _inside(c, f"http://127.0.0.1:{c.ports['etcd']}/health"), 60, c, "etcd")
    _start("kube-apiserver", c)
    dc._wait("kube-apiserver /readyz", lambda: netns.call_inside(ns, c._ready), 90, c, "kube-apiserver")
    _start("relay", c)
    dc._wait("the relay to the apiserver", c._ready, 30, c, "relay")
    if crds:
        dc.install_crds(c, crds)
    for component in ("kube-controller-manager", "kube-scheduler", "containerd"):
        _start(component, c)
    dc._wait("containerd", lambda: _ctr(c, "version", check=False).returncode == 0, 60, c, "containerd")
    for tar in builtin_images().values():
        import_image(c, tar)
    _start("coredns", c)
    dc._wait("CoreDNS /ready", lambda: _inside(c, "http://127.0.0.1:8181/ready"), 60, c, "coredns")
    _make_cgroup_root(c.name)
    with _host_lock():
        before = read_sysctls()
        (c.root / "sysctls.json").write_text(json.dumps(before))
        kubelet_started = time.monotonic()
        _start("kubelet", c)
        dc._wait(f"node {NODE} Ready", lambda: _node_ready(c), 120, c, "kubelet")
        ready = time.monotonic() - kubelet_started
        # kubelet has set its sysctls before it reports Ready (its container manager starts first);
        # give it the values back at once, so the host keeps them while the node runs.
        write_sysctls(before)
    dc._wait(
        "the default ServiceAccount",
        lambda: c.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0,
        60,
        c,
        "kube-controller-manager",
    )
    total = time.monotonic() - began
    (c.root / "timings.json").write_text(json.dumps({"kubelet_to_ready": ready, "up": total}))
    dc.log(
        f"real-node cluster '{c.name}' is up in {total:.1f}s (node Ready {ready:.1f}s after kubelet started)"
    )


# --- down ------------------------------------------------------------------------------------------


def _stop_pid(c: dc.Cluster, component: str, grace: float) -> None:
    pid = c.pids.get(component)
    if not dc._pid_is_ours(pid):
        return
    assert pid is not None
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while dc._pid_is_ours(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def _remove_containers(c: dc.Cluster) -> None:
    """Every task killed and deleted through containerd (the shims then exit and remove their
    sockets in /run/containerd/s, and unmount the containers' root filesystems)."""
    if not dc._pid_is_ours(c.pids.get("containerd")):
        return
    listed = _ctr(c, "tasks", "ls", "-q", check=False, timeout=20)
    for task in listed.stdout.split():
        _ctr(c, "tasks", "delete", "--force", task, check=False, timeout=20)
    listed = _ctr(c, "containers", "ls", "-q", check=False, timeout=20)
    for container in listed.stdout.split():
        _ctr(c, "containers", "delete", container, check=False, timeout=20)


def _remove_host_entries(c: dc.Cluster) -> None:
    logs = Path("/var/log/containers")
    if logs.is_dir():
        for link in logs.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith(str(c.root) + os.sep):
                    link.unlink()
    results = Path("/var/lib/cni/results")
    if results.is_dir():
        for entry in results.glob(f"jw-{c.name}-*"):
            entry.unlink(missing_ok=True)
    # The device-plugin socket path is shared by every kubelet on the host: only the last one out
    # removes it.
    if not [n for n in running_real_nodes() if n != c.name]:
        with contextlib.suppress(OSError):
            DEVICE_PLUGIN_SOCKET.unlink()
    try:
        missing = json.loads((c.root / "host-dirs-missing.json").read_text())
    except (OSError, ValueError):
        missing = []
    for directory in missing:  # HOST_DIRS order: children before parents
        with contextlib.suppress(OSError):
            Path(directory).rmdir()


def running_real_nodes() -> list[str]:
    found = []
    clusters = dc.cache_dir() / "clusters"
    for state in clusters.glob("*/state.json") if clusters.is_dir() else []:
        other = dc.Cluster.load(state.parent.name)
        if other and other.netns and dc._pid_is_ours(other.pids.get("kubelet")):
            found.append(other.name)
    return found


def stop(c: dc.Cluster) -> list[str]:
    """Tear the real node down: kubelet first (so it restarts nothing), then every container through
    containerd, then the other components; then whatever is left is killed (by cgroup, and by the
    state directory in its command line), unmounted and removed, and the sysctls restored. Returns
    what could not be cleaned (empty when all is gone)."""
    _stop_pid(c, "kubelet", grace=5)
    _remove_containers(c)
    for component in ("coredns", "containerd", "kube-scheduler", "kube-controller-manager"):
        _stop_pid(c, component, grace=3)
    for component in ("relay", "kube-apiserver", "etcd"):
        _stop_pid(c, component, grace=2)
    dc._kill_stragglers(c.root, marker_bin=dc.cache_dir())
    left = _remove_cgroup_root(c.name)
    left += _unmount_all_under(c.root)
    _remove_host_entries(c)
    saved = c.root / "sysctls.json"
    if saved.exists():
        with _host_lock():
            write_sysctls(json.loads(saved.read_text()))
    return left
