#!/usr/bin/env bash
# End-to-end test on a throw-away kind cluster: build the image, install it exactly as a user would
# (`kubectl apply -k manifests/`), then run the `e2e`-marked pytest suite (tests/e2e/test_kind_e2e.py)
# against that cluster with real pods.
#
#   tests/e2e/run-kind-e2e.sh [all|setup|test|teardown] [-- PYTEST_ARGS...]
#
#   all       (default) setup, test, then teardown (even when a step fails; KEEP_CLUSTER=1 keeps it)
#   setup     docker build, kind create cluster, kind load docker-image, kubectl apply -k manifests/,
#             wait for the Deployment and for the webhook's CA bundle; prints the kubeconfig path
#   test      pytest -m e2e tests/e2e against the cluster
#   teardown  kind delete cluster
#
# Needs: a running Docker engine (`docker info`), kind, kubectl, and Python with the test
# dependencies (the repo's .venv is used when present). Environment:
#   KIND_CLUSTER_NAME   cluster name (default jobwarden-e2e)
#   KIND_NODE_IMAGE     kindest/node image; any Kubernetes >= 1.30 (webhook matchConditions are GA)
#   E2E_KUBECONFIG      kubeconfig written for the cluster (default ${TMPDIR:-/tmp}/jobwarden-e2e.kubeconfig)
#   E2E_WORKLOAD_IMAGE  image of the job pods (default busybox:1.37); pre-loaded into the cluster
#   KEEP_CLUSTER=1      do not delete the cluster at the end of `all`
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${KIND_CLUSTER_NAME:-jobwarden-e2e}"
KUBECONFIG_FILE="${E2E_KUBECONFIG:-${TMPDIR:-/tmp}/jobwarden-e2e.kubeconfig}"
WORKLOAD_IMAGE="${E2E_WORKLOAD_IMAGE:-busybox:1.37}"
NS=jobwarden-system

if [[ -x "$REPO/.venv/bin/python" ]]; then PY="$REPO/.venv/bin/python"; else PY="${PYTHON:-python3}"; fi

log() { printf '[kind-e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
kc() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }

preflight() {
  command -v docker >/dev/null || die "docker CLI not found"
  docker info >/dev/null 2>&1 || die "no Docker engine: 'docker info' failed"
  command -v kind >/dev/null || die "kind not found (https://kind.sigs.k8s.io)"
  command -v kubectl >/dev/null || die "kubectl not found"
}

diagnostics() {
  {
    log "diagnostics"
    kc -n "$NS" get deploy,pods,svc,endpoints -o wide || true
    kc -n "$NS" describe pods || true
    kc -n "$NS" logs deploy/jobwarden --tail=300 || true
    kc get events -A --sort-by=.lastTimestamp | tail -n 80 || true
  } >&2  # stdout of `setup` is reserved for the kubeconfig path
}

# setup prints only the kubeconfig path on stdout (callers capture it); all progress goes to stderr.
setup() {
  preflight
  # The image the manifests reference (manifests/kustomization.yaml `images:`), so the install below
  # is the unmodified `kubectl apply -k manifests/`.
  local image
  image="$("$PY" "$REPO/tests/e2e/kustomize_render.py" --image)"
  log "building $image"
  docker build -t "$image" "$REPO" >&2

  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "reusing kind cluster $CLUSTER"
  else
    log "creating kind cluster $CLUSTER"
    # --kubeconfig: never touch the user's ~/.kube/config or current context.
    kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" --wait 180s \
      ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} >&2
  fi
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" >&2

  # IfNotPresent + a pre-loaded image: no registry needed for the operator, and the workload image
  # is pulled once here instead of once per node and test.
  kind load docker-image "$image" --name "$CLUSTER" >&2
  docker image inspect "$WORKLOAD_IMAGE" >/dev/null 2>&1 || docker pull "$WORKLOAD_IMAGE" >&2
  kind load docker-image "$WORKLOAD_IMAGE" --name "$CLUSTER" >&2

  # Exactly the documented one-command install. The CRDs must be Established before jobs are created.
  log "kubectl apply -k manifests/"
  kc apply -k "$REPO/manifests/" >&2
  kc wait --for=condition=Established --timeout=60s \
    crd/tfjobs.kubeflow.org crd/pytorchjobs.kubeflow.org crd/mxjobs.kubeflow.org crd/jobs.batch.volcano.sh >&2
  if ! kc -n "$NS" rollout status deploy/jobwarden --timeout=240s >&2; then
    diagnostics; die "the jobwarden Deployment did not become ready"
  fi

  # Self-signed mode (the default): the operator patches its CA into the webhook configuration at
  # start. Until then every job CREATE would fail (failurePolicy Fail), so wait for it.
  local waited=0
  until [[ -n "$(kc get validatingwebhookconfiguration jobwarden -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ]]; do
    (( waited += 2 )); (( waited <= 120 )) || { diagnostics; die "caBundle was never injected"; }
    sleep 2
  done
  log "cluster ready; kubeconfig: $KUBECONFIG_FILE"
  echo "$KUBECONFIG_FILE"
}

run_tests() {
  [[ -f "$KUBECONFIG_FILE" ]] || die "no kubeconfig at $KUBECONFIG_FILE: run '$0 setup' first"
  log "pytest -m e2e"
  local rc=0
  JOBWARDEN_E2E_KUBECONFIG="$KUBECONFIG_FILE" JOBWARDEN_E2E_WORKLOAD_IMAGE="$WORKLOAD_IMAGE" \
    "$PY" -m pytest -m e2e "$REPO/tests/e2e" -v "$@" || rc=$?
  (( rc == 0 )) || diagnostics
  return "$rc"
}

teardown() {
  command -v kind >/dev/null || return 0
  log "deleting kind cluster $CLUSTER"
  kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" || true
}

cmd="${1:-all}"; [[ $# -gt 0 ]] && shift
[[ "${1:-}" == "--" ]] && shift
case "$cmd" in
  setup) setup ;;
  test) run_tests "$@" ;;
  teardown) teardown ;;
  all)
    [[ "${KEEP_CLUSTER:-0}" == 1 ]] || trap teardown EXIT
    setup >/dev/null  # only the kubeconfig path, which run_tests already knows
    run_tests "$@"
    ;;
  *) die "unknown command $cmd (all|setup|test|teardown)" ;;
esac
