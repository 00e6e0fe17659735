#!/usr/bin/env bash
# Build the local control plane's binaries from the Go module proxy, once, into
# a cache outside the repository (JOBWARDEN_CACHE, default ~/.cache/jobwarden):
#   kube   multi-call: kube-apiserver, kube-controller-manager, kube-scheduler,
#          kubectl, etcd (from devcluster/kube, k8s.io/kubernetes v1.37.2)
#   kwok   sigs.k8s.io/kwok v0.8.0 (its own module graph, kept apart from 1.37)
# and then the real-node tier's (build-node.sh: kubelet, containerd, CoreDNS, pause; runc and the
# CNI plugins from Debian).
# Idempotent: a stamp of the inputs skips work already done. Prints progress,
# because a cold build of the Kubernetes tree takes many minutes on 2 cores.
set -euo pipefail

K8S_VERSION=v1.37.2
KWOK_VERSION=v0.8.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${JOBWARDEN_CACHE:-$HOME/.cache/jobwarden}"
BIN="$CACHE/k8s-$K8S_VERSION/bin"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

log() { printf '[devcluster build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v go >/dev/null || { log "Go toolchain not found: install Go >= 1.26 (see README)"; exit 1; }
mkdir -p "$BIN"

inputs_hash() {
  { go version; echo "$K8S_VERSION $KWOK_VERSION"; cat "$HERE/kube/go.mod" "$HERE/kube/go.sum" "$HERE/kube/main.go"; } | sha256sum | cut -d' ' -f1
}

build_kube() {
  local stamp="$BIN/.kube.stamp" want
  want="$(inputs_hash)"
  if [[ -x "$BIN/kube" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "kube $K8S_VERSION is cached in $BIN"
    return
  fi
  log "building kube $K8S_VERSION (apiserver, controller-manager, scheduler, kubectl, etcd); a cold build takes 15-40 min on 2 cores"
  local started=$SECONDS
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local ldflags="-s -w" pkg key val
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for key in gitVersion=$K8S_VERSION gitMajor=1 gitMinor=$minor gitTreeState=clean \
               gitCommit=0000000000000000000000000000000000000000 buildDate=1970-01-01T00:00:00Z; do
      ldflags+=" -X '$pkg.${key%%=*}=${key#*=}'"
    done
  done
  ( cd "$HERE/kube" && go mod download && go build -trimpath -ldflags "$ldflags" -o "$BIN/kube.tmp" . ) &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    kill -0 "$pid" 2>/dev/null && log "still compiling kube... $((SECONDS - started))s"
  done
  wait "$pid"
  mv "$BIN/kube.tmp" "$BIN/kube"
  for name in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd; do
    ln -sf kube "$BIN/$name"
  done
  echo "$want" > "$stamp"
  log "kube built in $((SECONDS - started))s"
}

build_kwok() {
  if [[ -x "$BIN/kwok" ]] && "$BIN/kwok" --version 2>/dev/null | grep -q "$KWOK_VERSION"; then
    log "kwok $KWOK_VERSION is cached in $BIN"
    return
  fi
  log "building kwok $KWOK_VERSION"
  local started=$SECONDS
  GOBIN="$BIN" GOFLAGS= go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  log "kwok built in $((SECONDS - started))s"
}

build_kwok
build_kube
# A real node's pieces failing to build must not stop the kwok tier: its tests then fail, loudly.
bash "$HERE/build-node.sh" >/dev/null || log "the real-node tier's binaries did not build (see above); its tests will fail"
echo "$BIN"
