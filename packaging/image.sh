#!/usr/bin/env bash
# Build the jobwarden image with podman from a locally made Debian 12 base (`make image`).
#
#   packaging/image.sh            build (or confirm up to date) and print the image name last
#
# No image registry is needed: the base is a minimal Debian 12 root made with debootstrap (python3 is
# 3.11 there) and `podman import`ed; the Dockerfile then runs as written, with
# --build-arg BASE_IMAGE=<that base>. Everything this makes lives outside the repository:
#   $JOBWARDEN_CACHE/image/   (default ~/.cache/jobwarden/image) the base rootfs tarball and stamps
#   podman's storage          (root: /var/lib/containers) the base and the jobwarden image
# Idempotent: a stamp of the inputs (base recipe, Dockerfile, install recipe, lock, sources) is kept
# next to each result, so a warm run is a hash and two `podman image exists`.
#
# On a machine without podman/debootstrap/runc it installs them with apt-get (as root). If it cannot,
# it prints `unavailable: <reason>` on stdout and exits 3: tests/integration/image/ skip with that
# reason (through make, whose own exit code is then 2). On success the last line of stdout is the image.
#
# Environment:
#   JOBWARDEN_CACHE        cache root (default ~/.cache/jobwarden)
#   JOBWARDEN_IMAGE        image name (default jobwarden:<version from pyproject.toml>)
#   DEBIAN_MIRROR          (default http://deb.debian.org/debian)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${JOBWARDEN_CACHE:-$HOME/.cache/jobwarden}/image"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export CONTAINERS_CONF="$repo/packaging/podman/containers.conf"

# The base recipe. Changing any of these makes a new base (its tag carries the recipe's hash).
suite=bookworm
base_packages=python3,python3-venv
base_repo=localhost/jobwarden-base

log() { printf '[jobwarden image %4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }
show_log_end() { log "failed; the end of $1:"; tail -n 30 "$1" >&2; }
unavailable() { log "cannot build images here: $*"; echo "unavailable: $*"; exit 3; }

# --- tools ------------------------------------------------------------------------------------------

ensure_tools() {
  local missing=() tool
  for tool in podman debootstrap runc; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ $(id -u) -eq 0 ]] || unavailable "${missing[*]} missing, and not root to apt-get install them"
  command -v apt-get >/dev/null || unavailable "${missing[*]} missing, and no apt-get to install them"
  log "installing ${missing[*]} with apt-get"
  # uidmap/fuse-overlayfs/slirp4netns: podman's usual helpers; without recommends, no crun/buildah.
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      podman debootstrap runc uidmap fuse-overlayfs slirp4netns >&2 \
    || unavailable "apt-get install of ${missing[*]} failed"
}

# --- the base image ---------------------------------------------------------------------------------

# What a base made from this recipe is called: the hash covers the function bodies below, so editing
# the recipe or the trimming makes a new base instead of silently reusing the old one.
base_tag() {
  local recipe
  recipe="$(declare -f make_rootfs trim_rootfs; echo "$suite $base_packages $mirror")"
  echo "$base_repo:debian12-py3.11-$(sha256sum <<<"$recipe" | cut -c1-12)"
}

make_rootfs() {
  local root="$1"
  debootstrap --variant=minbase --include="$base_packages" "$suite" "$root" "$mirror" >&2
  # debootstrap knows only the release itself: take the security and point-release updates too.
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
EOF
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -q >&2
}

# What a container never needs, removed after the package manager ran (Docker's debian:*-slim drops
# the same through dpkg path-excludes): docs, man pages, translations, package lists and caches, logs.
trim_rootfs() {
  local root="$1"
  chroot "$root" apt-get clean
  rm -rf "$root"/usr/share/{doc,man,info,lintian,linda}/* "$root"/usr/share/locale/* \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/log/* "$root"/root/.bash_history "$root"/tmp/* "$root"/var/tmp/*
  # Machine identity is per container; an empty file keeps tools that expect it happy.
  : >"$root/etc/machine-id"
}

ensure_base() {
  local tag="$1" tarball work
  if podman image exists "$tag"; then
    log "base $tag: present"
    return 0
  fi
  tarball="$cache/${tag##*:}.tar"
  if [[ ! -s "$tarball" ]]; then
    work="$(mktemp -d "$cache/rootfs.XXXXXX")"
    base_log="$cache/base.log"
    # On failure: show the end of the log. A failed debootstrap leaves mounts (proc) under the root:
    # unmount before removing.
    trap 'status=$?; [[ $status -eq 0 ]] || show_log_end "$base_log"
          umount -R "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
    log "base: debootstrap $suite ($base_packages) from $mirror, then updates (a few minutes, first"
    log "      run only; output in $base_log)"
    # Called plainly (not under `if`/`||`, which would switch errexit off inside the functions).
    make_rootfs "$work/root" >"$base_log" 2>&1
    trim_rootfs "$work/root" >>"$base_log" 2>&1
    log "base: rootfs $(du -sh "$work/root" | cut -f1), packing $tarball"
    # Sorted, numeric owners: the same root gives the same tarball.
    tar -C "$work/root" --sort=name --numeric-owner -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$work"
    trap - EXIT
  fi
  log "base: podman import $tarball as $tag"
  podman import --quiet --change 'CMD ["/usr/bin/python3"]' "$tarball" "$tag" >/dev/null
}

# --- the jobwarden image ----------------------------------------------------------------------------

# Hash of everything the Dockerfile reads (its .dockerignore allow-list) plus the base it builds on.
inputs_hash() {
  local base_id="$1"
  (
    cd "$repo"
    echo "$base_id"
    find Dockerfile .dockerignore pyproject.toml README.md packaging/install.sh packaging/constraints.txt \
      packaging/runtime_root.py operator -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*.egg-info/*' 2>/dev/null \
      | LC_ALL=C sort | xargs sha256sum
  ) | sha256sum | cut -c1-64
}

main() {
  local version image base base_id stamp_file want old_id host_ca build_log
  version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/pyproject.toml" | head -1)"
  image="${JOBWARDEN_IMAGE:-jobwarden:$version}"
  mkdir -p "$cache"
  ensure_tools
  host_ca="$(readlink -f "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}")"
  [[ -s "$host_ca" ]] || die "no CA bundle at $host_ca (set SSL_CERT_FILE)"
  base="$(base_tag)"
  ensure_base "$base"
  base_id="$(podman image inspect --format '{{.Id}}' "$base")"
  stamp_file="$cache/${image//[:\/]/_}.stamp"
  want="$(inputs_hash "$base_id")"
  if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$want" ]] && podman image exists "$image"; then
    log "$image: up to date (inputs unchanged)"
  else
    log "$image: podman build from $base"
    rm -f "$stamp_file"
    old_id="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
    # --format docker keeps the Dockerfile's HEALTHCHECK (OCI images have no such field);
    # --network host: the sandbox has no container networking, pip needs PyPI.
    # The host's CA bundle is mounted over the build containers' one for the RUN steps only (a bind
    # mount, never committed to a layer): where egress goes through a TLS-inspecting proxy, as on this
    # project's machines, pip trusts only what the host trusts. Elsewhere it is the same public CAs.
    # Progress: the build's STEP lines and install.sh's own; everything in $build_log.
    build_log="$cache/build.log"
    if ! podman build --format docker --network host --build-arg "BASE_IMAGE=$base" \
      --volume "$host_ca:/etc/ssl/certs/ca-certificates.crt:ro" \
      --tag "$image" --file "$repo/Dockerfile" "$repo" 2>&1 | tee "$build_log" \
      | { grep --line-buffered -E '^\[[0-9]+/[0-9]+\] STEP|^\[jobwarden install\]|^runtime root' >&2 || true; }
    then
      show_log_end "$build_log"
      exit 1
    fi
    echo "$want" >"$stamp_file"
    # The previous build of this tag is now untagged: do not let them pile up in the storage.
    if [[ -n "$old_id" && "$old_id" != "$(podman image inspect --format '{{.Id}}' "$image")" ]]; then
      podman rmi "$old_id" >/dev/null 2>&1 || true
    fi
  fi
  log "$image: $(podman image inspect --format '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1/1e6}')"
  echo "$image"
}

# Sourced (packaging/training-images.sh reuses the tools and the base): define only.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
