#!/usr/bin/env bash
# Install jobwarden and its pinned runtime dependencies into a fresh virtualenv.
#
#   packaging/install.sh VENV_DIR
#
# This is the ONLY install recipe: the Dockerfile's build stage runs it, and
# tests/unit/test_packaging.py runs it too, so a green test proves the image's
# install commands (not a look-alike of them).
#
# What it guarantees:
#   * every distribution comes from a wheel (no compiler in the image, no
#     sdist executing arbitrary setup.py code at build time) except jobwarden
#     itself, which is built from the source tree with the pinned setuptools;
#   * every installed distribution is pinned in packaging/constraints.txt:
#     a dependency added to pyproject.toml without re-running
#     packaging/lock.sh fails the build here instead of floating silently;
#   * the source tree is never written to: we build from a private copy of
#     exactly the files the Docker build context admits (see .dockerignore).
#
# Environment:
#   PYTHON            interpreter used to create the venv (default: python3);
#                     must be >= 3.11 (pyproject's requires-python).
#   JOBWARDEN_SRC     source tree (default: the repo containing this script).
#   PIP_* variables   honoured as usual (the Dockerfile sets PIP_NO_CACHE_DIR).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${JOBWARDEN_SRC:-$(dirname "$here")}"
constraints="$here/constraints.txt"
python="${PYTHON:-python3}"

log() { printf '[jobwarden install] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $# -eq 1 && -n "$1" ]] || die "usage: $0 VENV_DIR"
venv="$1"

[[ -f "$constraints" ]] || die "missing $constraints (run packaging/lock.sh)"
[[ -f "$src/pyproject.toml" && -d "$src/operator/jobwarden" ]] \
  || die "$src does not look like the jobwarden source tree"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$python is $("$python" -V 2>&1); jobwarden needs Python >= 3.11"

# Private copy of the build inputs: pip/setuptools write build/ and *.egg-info
# next to the sources, which must not happen inside a developer's checkout.
# The list mirrors the allow-list in .dockerignore.
work="$(mktemp -d "${TMPDIR:-/tmp}/jobwarden-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
inputs=(pyproject.toml operator)
for optional in README.md LICENSE; do
  if [[ -e "$src/$optional" ]]; then inputs+=("$optional"); fi
done
tar -C "$src" --exclude='__pycache__' --exclude='*.pyc' --exclude='*.egg-info' \
    -cf - "${inputs[@]}" | tar -C "$work" -xf -

pip_args=(--no-input --disable-pip-version-check --constraint "$constraints")

log "creating venv $venv with $("$python" -V 2>&1)"
"$python" -m venv --clear "$venv"
vpy="$venv/bin/python"

# 1. Pinned build tooling first: the base image's bundled pip/setuptools vary by
#    image build, and setuptools is jobwarden's build backend.
log "pinning pip and setuptools"
"$vpy" -m pip install "${pip_args[@]}" --only-binary=:all: --upgrade pip setuptools

# 2. jobwarden and its runtime dependencies. --only-binary=:all: applies to what
#    pip fetches from the index (wheels only, exact versions from the lock); the
#    local source tree is still built, with the venv's pinned setuptools
#    (--no-build-isolation, so no unpinned build backend is downloaded).
log "installing jobwarden from $src with dependencies pinned by $constraints"
"$vpy" -m pip install "${pip_args[@]}" --only-binary=:all: --no-build-isolation "$work"

# 3. The environment must be consistent and fully locked.
"$vpy" -m pip check
"$vpy" - "$constraints" <<'PY'
import re, sys
from importlib import metadata

def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

pins = {}
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if line:
        name, _, version = line.partition("==")
        pins[norm(name)] = version.strip()

problems = []
for dist in metadata.distributions():
    name = norm(dist.metadata["Name"])
    if name == "jobwarden":
        continue
    if name not in pins:
        problems.append(f"{name}=={dist.version} is installed but not pinned")
    elif pins[name] != dist.version:
        problems.append(f"{name}=={dist.version} is installed but the lock pins {pins[name]}")
if problems:
    sys.exit("packaging/constraints.txt is stale; run packaging/lock.sh:\n  " + "\n  ".join(problems))
PY

# 4. Smoke test: import every jobwarden module (and so kopf, the Kubernetes clients, cryptography, ...)
#    from the installed venv -- a missing or ABI-incompatible dependency fails here, at build time,
#    instead of in a crash-looping pod. No bytecode is written: pip already compiled it.
PYTHONDONTWRITEBYTECODE=1 "$vpy" - <<'PY'
import importlib, pkgutil, sys
import jobwarden
modules = [m.name for m in pkgutil.walk_packages(jobwarden.__path__, "jobwarden.")
           if not m.name.endswith(".__main__")]
for name in modules:
    importlib.import_module(name)
print(f"jobwarden {jobwarden.__version__} on Python {sys.version.split()[0]}: {len(modules)} modules import")
PY
log "done: $venv"
