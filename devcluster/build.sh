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

BUILD_NAME=build
# shellcheck source=devcluster/build-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/build-lib.sh"
KWOK_VERSION=v0.8.0
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$KBIN"

inputs_hash() {
  { go version; echo "$K8S_VERSION $KWOK_VERSION"; cat "$HERE/kube/go.mod" "$HERE/kube/go.sum" "$HERE/kube/main.go"; } | sha256sum | cut -d' ' -f1
}

build_kube() {
  local stamp="$KBIN/.kube.stamp" want
  want="$(inputs_hash)"
  if [[ -x "$KBIN/kube" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "kube $K8S_VERSION is cached in $KBIN"
    return
  fi
  log "building kube $K8S_VERSION (apiserver, controller-manager, scheduler, kubectl, etcd); a cold build takes 15-40 min on 2 cores"
  local started=$SECONDS ldflags
  ldflags="$(k8s_ldflags)"
  ( cd "$HERE/kube" && go mod download && go build -trimpath -ldflags "$ldflags" -o "$KBIN/kube.tmp" . ) &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    kill -0 "$pid" 2>/dev/null && log "still compiling kube... $((SECONDS - started))s"
  done
  wait "$pid"
  mv "$KBIN/kube.tmp" "$KBIN/kube"
  for name in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd; do
    ln -sf kube "$KBIN/$name"
  done
  echo "$want" > "$stamp"
  log "kube built in $((SECONDS - started))s"
}

build_kwok() {
  if [[ -x "$KBIN/kwok" ]] && "$KBIN/kwok" --version 2>/dev/null | grep -q "$KWOK_VERSION"; then
    log "kwok $KWOK_VERSION is cached in $KBIN"
    return
  fi
  log "building kwok $KWOK_VERSION"
  local started=$SECONDS
  GOBIN="$KBIN" GOFLAGS= go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  log "kwok built in $((SECONDS - started))s"
}

build_kwok
build_kube
# A real node's pieces failing to build must not stop the kwok tier: its tests then fail, loudly.
bash "$HERE/build-node.sh" >/dev/null || log "the real-node tier's binaries did not build (see above); its tests will fail"
echo "$KBIN"
