#!/usr/bin/env bash
# Build the real-node tier's binaries (devcluster/realnode.py), once, into a cache outside the
# repository (JOBWARDEN_CACHE, default ~/.cache/jobwarden), each piece with its own stamp of its inputs:
#   kubelet      a second main in devcluster/kube's module (k8s.io/kubernetes v1.37.2), in k8s-*/bin
#   containerd   containerd, containerd-shim-runc-v2, ctr: containerd/v2 from the Go module proxy
#   coredns      a lean CoreDNS main in its own module (devcluster/coredns)
#   images       pause and netcheck: tiny static Go programs (devcluster/images) for our own images
#   Debian's    runc, containernetworking-plugins, busybox-static: apt-get installed when missing
# All Go builds: CGO off, static, -trimpath. Called by build.sh (so `make binaries` does it all);
# `build-node.sh PIECE...` builds only the named pieces. Prints progress and each build's time.
set -euo pipefail

BUILD_NAME=build-node
# shellcheck source=devcluster/build-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/build-lib.sh"
CONTAINERD_VERSION=v2.4.2
NBIN="$CACHE/realnode/bin"
export GOTOOLCHAIN=local CGO_ENABLED=0
mkdir -p "$KBIN" "$NBIN"

# fresh STAMP HASH: true when the stamp file holds HASH (the piece is built from these inputs).
fresh() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }
hash_of() { { go version; "$@"; } | sha256sum | cut -d' ' -f1; }

build_kubelet() {
  local stamp="$KBIN/.kubelet.stamp" want
  want="$(hash_of cat "$HERE/kube/kubelet.mod" "$HERE/kube/kubelet.sum" "$HERE/kube/kubelet/main.go")"
  if [[ -x "$KBIN/kubelet" ]] && fresh "$stamp" "$want"; then log "kubelet is cached in $KBIN"; return; fi
  log "building kubelet $K8S_VERSION (reuses the compiled packages of the kube build)"
  local started=$SECONDS ldflags
  ldflags="$(k8s_ldflags)"
  # kubelet.mod/kubelet.sum: the kube module's go.mod/go.sum plus the two modules only the kubelet
  # imports (k8s.io/cri-streaming, otelrestful), at the versions k8s.io/kubernetes v1.37.2 requires.
  # An alternate module file (-modfile), so go.mod/go.sum, the kube build's stamp inputs, never
  # change; the same versions otherwise, so the kube build's compiled packages are reused.
  ( cd "$HERE/kube" && GOFLAGS=-mod=readonly go build -modfile=kubelet.mod -trimpath -ldflags "$ldflags" \
      -o "$KBIN/kubelet.tmp" ./kubelet )
  mv "$KBIN/kubelet.tmp" "$KBIN/kubelet"
  echo "$want" > "$stamp"
  log "kubelet built in $((SECONDS - started))s"
}

CONTAINERD_TAGS="no_btrfs no_devmapper no_zfs urfave_cli_no_docs"
build_containerd() {
  local stamp="$NBIN/.containerd.stamp" want
  want="$(hash_of echo "$CONTAINERD_VERSION $CONTAINERD_TAGS")"
  if [[ -x "$NBIN/containerd" && -x "$NBIN/containerd-shim-runc-v2" && -x "$NBIN/ctr" ]] && fresh "$stamp" "$want"; then
    log "containerd $CONTAINERD_VERSION is cached in $NBIN"; return
  fi
  log "building containerd $CONTAINERD_VERSION (containerd, containerd-shim-runc-v2, ctr)"
  local started=$SECONDS m=github.com/containerd/containerd/v2
  GOBIN="$NBIN" GOFLAGS= go install -trimpath -tags "$CONTAINERD_TAGS" \
    -ldflags "-s -w -X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Revision=$CONTAINERD_VERSION" \
    "$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "$m/cmd/ctr@$CONTAINERD_VERSION"
  echo "$want" > "$stamp"
  log "containerd built in $((SECONDS - started))s"
}

build_coredns() {
  local stamp="$NBIN/.coredns.stamp" want
  want="$(hash_of cat "$HERE/coredns/go.mod" "$HERE/coredns/go.sum" "$HERE/coredns/main.go")"
  if [[ -x "$NBIN/coredns" ]] && fresh "$stamp" "$want"; then log "coredns is cached in $NBIN"; return; fi
  log "building coredns (devcluster/coredns: a lean main, its own module graph)"
  local started=$SECONDS
  ( cd "$HERE/coredns" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$NBIN/coredns.tmp" . )
  mv "$NBIN/coredns.tmp" "$NBIN/coredns"
  echo "$want" > "$stamp"
  log "coredns built in $((SECONDS - started))s"
}

build_images() {
  local stamp="$NBIN/.images.stamp" want name
  want="$(hash_of cat "$HERE/images/go.mod" "$HERE"/images/*/main.go)"
  if [[ -x "$NBIN/pause" && -x "$NBIN/netcheck" ]] && fresh "$stamp" "$want"; then
    log "pause and netcheck are cached in $NBIN"; return
  fi
  local started=$SECONDS
  for name in pause netcheck; do
    ( cd "$HERE/images" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$NBIN/$name.tmp" "./$name" )
    mv "$NBIN/$name.tmp" "$NBIN/$name"
  done
  echo "$want" > "$stamp"
  log "pause and netcheck built in $((SECONDS - started))s"
}

# runc and the CNI plugins: Debian's (runc 1.1 with libseccomp; containernetworking-plugins 1.1).
# busybox-static: the busybox image's one binary.
CNI_DIR=/usr/lib/cni
install_debian() {
  local missing=()
  command -v runc >/dev/null || [[ -x /usr/sbin/runc ]] || missing+=(runc)
  for plugin in bridge host-local loopback; do
    [[ -x "$CNI_DIR/$plugin" ]] || { missing+=(containernetworking-plugins); break; }
  done
  # A static busybox: the tools image jobwarden.local/busybox:1 (sh, nslookup, ... for init containers).
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=(busybox-static)
  if [[ ${#missing[@]} -eq 0 ]]; then log "runc, the CNI plugins and busybox-static are installed"; return; fi
  # Not root: the real-node tier skips itself on such a host (devcluster/realnode.py); not an error.
  [[ $(id -u) -eq 0 ]] || { log "${missing[*]} missing, and not root to apt-get install them"; return 0; }
  log "installing ${missing[*]} with apt-get"
  local started=$SECONDS
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  log "installed ${missing[*]} in $((SECONDS - started))s"
}

pieces=("$@")
[[ ${#pieces[@]} -gt 0 ]] || pieces=(debian images containerd coredns kubelet)
for piece in "${pieces[@]}"; do
  case "$piece" in
    debian) install_debian ;;
    images) build_images ;;
    containerd) build_containerd ;;
    coredns) build_coredns ;;
    kubelet) build_kubelet ;;
    *) log "unknown piece: $piece"; exit 2 ;;
  esac
done
echo "$NBIN"
