# Sourced by build.sh and build-node.sh (set BUILD_NAME first, for the log lines): what both builds
# share. The Kubernetes version and the cache they build into (JOBWARDEN_CACHE, default
# ~/.cache/jobwarden), the log, the Go check, and the version the Kubernetes binaries report.

K8S_VERSION=v1.37.2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${JOBWARDEN_CACHE:-$HOME/.cache/jobwarden}"
KBIN="$CACHE/k8s-$K8S_VERSION/bin"

log() { printf '[devcluster %s %s] %s\n' "$BUILD_NAME" "$(date +%H:%M:%S)" "$*" >&2; }

command -v go >/dev/null || { log "Go toolchain not found: install Go >= 1.26 (see README)"; exit 1; }

# The -ldflags of a Kubernetes main: stripped, and the version stamp `kubectl version` and the
# apiserver report (a clean tree at $K8S_VERSION, as a release build has; no git here).
k8s_ldflags() {
  local minor="${K8S_VERSION#v1.}" ldflags="-s -w" pkg key
  minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for key in gitVersion=$K8S_VERSION gitMajor=1 gitMinor=$minor gitTreeState=clean \
               gitCommit=0000000000000000000000000000000000000000 buildDate=1970-01-01T00:00:00Z; do
      ldflags+=" -X '$pkg.${key%%=*}=${key#*=}'"
    done
  done
  echo "$ldflags"
}
