"""jobwarden's local control plane: a real etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (simulated nodes and pod lifecycles) on loopback, built from the registries
this machine reaches and cached outside the repository (see build.sh)."""

from devcluster.cluster import Cluster, down, up

__all__ = ["Cluster", "down", "up"]
