"""`devcluster down` of a real-node cluster leaves nothing behind on the host: no process, mount,
cgroup, network namespace (with it the bridge and the pods' veths), shim socket, CNI result or log
symlink of the cluster, and the kernel sysctls kubelet writes at start are back to their values from
before `up` (they are given back while the node runs, too).

A cluster of its own (not the session's), with a pod running when it goes down."""

from __future__ import annotations

import json
import os
from pathlib import Path

from devcluster import cluster as devcluster
from devcluster import realnode
from realnode_lib import cluster_name

from testlib import ROOT, wait_for


def processes_naming(root: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (str(root) + os.sep).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def processes_in_netns(inode: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "ns" / "net") == f"net:[{inode}]":
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def mounts_under(root: Path) -> list[str]:
    return realnode._mounts_under(root)


def cgroup_dirs(name: str) -> list[Path]:
    return [
        m / realnode.cgroup_root(name).lstrip("/")
        for m in realnode._cgroup_mounts()
        if (m / realnode.cgroup_root(name).lstrip("/")).exists()
    ]


def shim_sockets(root: Path) -> list[str]:
    """The unix socket paths the cluster's containerd shims listen on (in /run/containerd/s)."""
    paths = []
    for pid in processes_naming(root):
        try:
            if b"containerd-shim" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            inodes = {
                os.readlink(f"/proc/{pid}/fd/{fd}")[len("socket:[") : -1]
                for fd in os.listdir(f"/proc/{pid}/fd")
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")
            }
            for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) == 8 and fields[6] in inodes:
                    paths.append(fields[7])
        except OSError:
            continue
    return paths


def test_down_leaves_nothing_behind_and_restores_the_sysctls() -> None:
    name = cluster_name("realnode-cleanup")
    sysctls_before = realnode.settled_sysctls()
    c = devcluster.up(name, crds=ROOT / "crds", real_node=True)
    root = c.root
    try:
        netns_inode = os.stat(c.netns_path).st_ino
        c.kubectl("apply", "-f", "-", input=json.dumps(realnode.netcheck_pod("left", ["serve", "7000"])))
        wait_for(
            lambda: c.kubectl("get", "pod", "left", "-o", "jsonpath={.status.phase}").stdout == "Running",
            60,
            what="a running pod to leave behind",
        )
        # What down must remove is really there while the node runs (else this test proves nothing).
        mounts = mounts_under(root)
        assert str(root / "kubelet" / "root") in mounts  # kubelet's bind mount of its root dir
        assert any("/rootfs" in m for m in mounts), mounts  # the container's root filesystem
        assert cgroup_dirs(name)
        assert processes_in_netns(netns_inode)
        sockets = shim_sockets(root)
        assert sockets and all(s.startswith("/run/containerd/s/") for s in sockets), sockets
        links = [p for p in Path("/var/log/containers").iterdir() if str(root) in os.readlink(p)]
        assert links
        results = list(Path("/var/lib/cni/results").glob(f"jw-{name}-*"))
        assert results
        # kubelet's sysctls were given back as soon as it had started.
        assert realnode.settled_sysctls() == sysctls_before
    finally:
        devcluster.down(name)

    assert not root.exists()
    assert processes_naming(root) == []
    assert processes_in_netns(netns_inode) == []  # the namespace, its bridge and veths are gone
    assert mounts_under(root) == []
    assert cgroup_dirs(name) == []
    assert [s for s in sockets if Path(s).exists()] == []
    assert [p for p in links if p.is_symlink()] == []
    assert [p for p in results if p.exists()] == []
    assert realnode.settled_sysctls() == sysctls_before
