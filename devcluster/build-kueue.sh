#!/usr/bin/env bash
# Build Kueue (sigs.k8s.io/kueue) from the Go module proxy, once, into a cache outside the repository
# (JOBWARDEN_CACHE, default ~/.cache/jobwarden): only the opt-in Kueue lifecycle (python -m
# benchmarks.kueue) needs it, never `make test`. Kueue's CRDs are not part of the build output: the
# benchmark reads them at run time from the module's source in the Go module cache
# ($(go env GOMODCACHE)/sigs.k8s.io/kueue@VERSION/config/components/crd/bases), which this build leaves
# there. Idempotent: a stamp of the inputs skips work already done.
set -euo pipefail

BUILD_NAME=build-kueue
# shellcheck source=devcluster/build-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/build-lib.sh"  # CACHE, log, the Go check

KUEUE_VERSION=v0.17.0
BIN="$CACHE/kueue-$KUEUE_VERSION/bin"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$BIN"
stamp="$BIN/.kueue.stamp"
want="$( { go version; echo "$KUEUE_VERSION"; } | sha256sum | cut -d' ' -f1)"
if [[ -x "$BIN/kueue" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  log "kueue $KUEUE_VERSION is cached in $BIN"
  echo "$BIN"
  exit 0
fi
log "building kueue $KUEUE_VERSION; a cold build takes 10-20 min on 2 cores"
started=$SECONDS
GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 30
  kill -0 "$pid" 2>/dev/null && log "still compiling kueue... $((SECONDS - started))s"
done
wait "$pid"
crds="$(go env GOMODCACHE)/sigs.k8s.io/kueue@$KUEUE_VERSION/config/components/crd/bases"
[[ -d "$crds" ]] || { log "Kueue's CRDs are not in the module cache ($crds)"; exit 1; }
echo "$want" > "$stamp"
log "kueue built in $((SECONDS - started))s"
echo "$BIN"
