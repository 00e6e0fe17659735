#!/usr/bin/env bash
# Build the training images of the real-node tests and export them as OCI archives (no registry).
#
#   packaging/training-images.sh [NAME...]    build (or confirm up to date) NAMEs (default: all) and
#                                             print one line `<image> <archive>` per image, last
#
# Images (docs/training-images.md), each `jobwarden.local/<name>:1`, made by podman FROM the same local
# Debian 12 base as the operator image (packaging/image.sh makes it, once per machine):
#   training      Debian's python3-torch (1.13, CPU, gloo) + numpy, openmpi-bin + python3-mpi4py,
#                 openssh-server/-client, busybox's nslookup: the PyTorchJob, Volcano MPI and MXJob tests
#   training-tf   tensorflow-cpu from PyPI in a venv on Debian's python3: the TFJob test
#   training-jax  jax[cpu] and xgboost-cpu from PyPI in a venv on Debian's python3: the JAXJob and
#                 XGBoostJob tests
# Each is then `podman save --format oci-archive`d to $JOBWARDEN_CACHE/training/<name>-<inputs>.oci.tar,
# which the real node imports into containerd (pods use `imagePullPolicy: Never`).
#
# Idempotent: <inputs> is a hash of what the image is made from (the base recipe's tag, the export
# step, the Containerfile, the files it copies), so a warm run is a few hashes and needs neither podman
# nor the network, and checkouts with different recipes (worktrees) keep their own archives instead of
# rebuilding each other's; the two newest archives per image are kept. Builds are serialized by a lock
# (two test sessions may ask at once).
#
# On a machine without podman/debootstrap/runc it installs them (packaging/image.sh's ensure_tools);
# if it cannot, it prints `unavailable: <reason>` and exits 3, like packaging/image.sh.
#
# Environment: JOBWARDEN_CACHE (default ~/.cache/jobwarden), DEBIAN_MIRROR, SSL_CERT_FILE (the CA bundle
# pip trusts in the TF build).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The tools, the base and their helpers (ensure_tools, base_tag, ensure_base, show_log_end); also sets
# CONTAINERS_CONF to the project's podman settings.
# shellcheck source=packaging/image.sh
source "$here/image.sh"

all_images=(training training-tf training-jax)
context="$here/training"
out="${JOBWARDEN_CACHE:-$HOME/.cache/jobwarden}/training"

log() { printf '[jobwarden training %4ss] %s\n' "$SECONDS" "$*" >&2; }

image_ref() { echo "jobwarden.local/$1:1"; }

# Everything an image is made from: the base recipe (its tag is the recipe's hash), the export step,
# the Containerfile and the files its COPY lines name.
training_inputs_hash() {
  local name="$1" file="$context/$1.Containerfile"
  (
    echo "$(base_tag)"
    declare -f name_for_containerd
    sha256sum "$file"
    awk '$1 == "COPY" { for (i = 2; i < NF; i++) print $i }' "$file" | while read -r copied; do
      sha256sum "$context/$copied"
    done
  ) | sed "s|$context/||" | sha256sum | cut -c1-64
}

# Where the image made from the current inputs is (or will be) exported.
archive_of() { echo "$out/$1-$(training_inputs_hash "$1" | cut -c1-16).oci.tar"; }

# All but the two newest archives of an image go (each is hundreds of MB). The pattern is exact (16
# characters of hash): `training-*` would also match training-tf's archives.
prune_archives() {
  local name="$1" old
  { ls -t "$out/$name"-????????????????.oci.tar 2>/dev/null || true; } | tail -n +3 | while read -r old; do
    rm -f "$old" "${old%.oci.tar}.build-seconds"
  done
}

# podman's index.json names the manifest only by `org.opencontainers.image.ref.name` and gives no
# platform. `ctr images import` keeps a manifest under its name only with `io.containerd.image.name`,
# and matches platforms on the descriptor: a copy of the archive with both added to index.json (the
# blobs are copied unchanged).
name_for_containerd() {
  local saved="$1" fixed="$2" ref="$3" os arch
  read -r os arch <<<"$4"
  python3 - "$saved" "$fixed" "$ref" "$os" "$arch" <<'PY'
import io, json, sys, tarfile
saved, fixed, ref, os_name, arch = sys.argv[1:]
with tarfile.open(saved) as src, tarfile.open(fixed, "w", format=tarfile.PAX_FORMAT) as dst:
    for member in src:
        data = src.extractfile(member) if member.isfile() else None
        if member.name.lstrip("./") == "index.json" and data is not None:
            index = json.load(data)
            for manifest in index["manifests"]:
                manifest.setdefault("annotations", {})["io.containerd.image.name"] = ref
                manifest["platform"] = {"architecture": arch, "os": os_name}
            raw = json.dumps(index, separators=(",", ":")).encode()
            member.size = len(raw)
            data = io.BytesIO(raw)
        dst.addfile(member, data)
PY
}

build_one() {
  local name="$1" archive="$2" ref base build_log old_id started host_ca
  ref="$(image_ref "$name")"
  base="$(base_tag)"
  build_log="$out/$name.build.log"
  host_ca="$(readlink -f "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}")"
  [[ -s "$host_ca" ]] || die "no CA bundle at $host_ca (set SSL_CERT_FILE)"
  started=$SECONDS
  old_id="$(podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)"
  log "$ref: podman build from $base (minutes; output in $build_log)"
  # --network host: no container networking here, apt and pip need the registries. The host's CA
  # bundle is bind-mounted for the RUN steps only (never in a layer), as in packaging/image.sh.
  if ! podman build --format oci --network host --build-arg "BASE_IMAGE=$base" \
    --volume "$host_ca:/etc/ssl/certs/ca-certificates.crt:ro" \
    --tag "$ref" --file "$context/$name.Containerfile" "$context" >"$build_log" 2>&1; then
    show_log_end "$build_log"
    exit 1
  fi
  log "$ref: built in $((SECONDS - started)) s, $(podman image inspect --format '{{.Size}}' "$ref" \
    | awk '{printf "%.0f MB", $1/1e6}'); exporting $archive"
  rm -f "$archive.part" "$archive.saved"
  podman save --quiet --format oci-archive --output "$archive.saved" "$ref"
  name_for_containerd "$archive.saved" "$archive.part" "$ref" \
    "$(podman image inspect --format '{{.Os}} {{.Architecture}}' "$ref")"
  rm -f "$archive.saved"
  echo "$((SECONDS - started))" >"${archive%.oci.tar}.build-seconds"
  mv "$archive.part" "$archive"
  log "$ref: archive $(du -m "$archive" | cut -f1) MB, $((SECONDS - started)) s in all"
  prune_archives "$name"
  # The previous build of this tag is now untagged: do not let them pile up in podman's storage.
  if [[ -n "$old_id" && "$old_id" != "$(podman image inspect --format '{{.Id}}' "$ref")" ]]; then
    podman rmi "$old_id" >/dev/null 2>&1 || true
  fi
}

main_training() {
  local names=("$@") name archive tools_ready=0
  [[ ${#names[@]} -gt 0 ]] || names=("${all_images[@]}")
  for name in "${names[@]}"; do
    [[ -f "$context/$name.Containerfile" ]] || die "no image $name (known: ${all_images[*]})"
  done
  mkdir -p "$out" "$cache"
  exec 9>"$out/.lock"
  flock 9
  for name in "${names[@]}"; do
    archive="$(archive_of "$name")"
    if [[ -s "$archive" ]]; then
      log "$(image_ref "$name"): up to date ($archive)"
      continue
    fi
    if [[ $tools_ready -eq 0 ]]; then
      ensure_tools
      ensure_base "$(base_tag)"
      tools_ready=1
    fi
    build_one "$name" "$archive"
  done
  for name in "${names[@]}"; do
    echo "$(image_ref "$name") $(archive_of "$name")"
  done
}

main_training "$@"
