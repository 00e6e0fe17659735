# jobwarden operator + admission webhook image.
#
#   docker build -t jobwarden:0.1.0 .                      # with a registry: the default base below
#   make image                                             # without one: podman, a local Debian 12 base
#
# Base image: one build argument, for the build stage; the runtime stage is `FROM scratch` and gets the
# venv plus exactly what its interpreter needs, assembled from the build stage (packaging/runtime_root.py).
# Any Debian-like image with Python 3.11, bash, ldd and `python3 -m venv` works: the default is what a
# user with a registry pulls; `make image`
# (packaging/image.sh, docs/image.md) passes a Debian 12 root made with debootstrap, since no registry
# is reachable on this project's machines. The default is pinned by tag, NOT by digest: a digest must
# be resolved and verified against the registry, which could not be done where this file was written
# (copying one from elsewhere would pin something unverified). Pin it when you build:
#   docker buildx imagetools inspect python:3.11-slim-bookworm      # prints the index digest
#   docker build --build-arg BASE_IMAGE=python:3.11-slim-bookworm@sha256:<digest> ...
# Debian 12 (bookworm) in both cases, so the image users pull and the one tested here share a release.
# checkov:skip=CKV_DOCKER_7: the base is a build argument whose default names a version tag (3.11, bookworm); checkov cannot resolve ARGs
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE} AS python-base

# ---- build: resolve and install into a self-contained venv -----------------------------------------
FROM python-base AS build

# No pip cache in the layer; no version-check call to the index.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only the build inputs (.dockerignore is an allow-list of the same files), so editing tests or docs
# does not invalidate the install layer.
COPY packaging/install.sh packaging/constraints.txt packaging/runtime_root.py packaging/
COPY pyproject.toml README.md* LICENSE* ./
COPY operator/ operator/

# The one install recipe, shared with tests/unit/test_packaging.py: wheels only, every version from
# packaging/constraints.txt, fails if the lock is stale, imports every module. pip compiles the
# bytecode here, at build time, because the runtime root filesystem is read-only.
RUN packaging/install.sh /opt/jobwarden/venv

# The runtime filesystem: the venv without pip/setuptools, the interpreter, its standard library (no
# test/idle/tkinter/ensurepip...), the shared libraries they load (ldd), a passwd naming UID 65532.
# No shell, no package manager, no compiler: ~60 MB instead of the base's ~130 MB under the venv.
RUN /opt/jobwarden/venv/bin/python packaging/runtime_root.py /opt/jobwarden/venv /runtime-root

# ---- runtime ----------------------------------------------------------------------------------------
FROM scratch AS runtime

LABEL org.opencontainers.image.title="jobwarden" \
      org.opencontainers.image.description="Kubernetes operator and admission webhook for TFJob, PyTorchJob, MXJob and Volcano Job" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

# PYTHONDONTWRITEBYTECODE: never try to write __pycache__ (read-only root filesystem; the .pyc files
#   were compiled in the build stage).
# PYTHONUNBUFFERED: logs reach `kubectl logs` immediately.
# HOME, TMPDIR: UID 65532 has no home directory; /tmp is the one writable path (an emptyDir in the
#   Deployment), where the self-signed mode also writes its generated certificates.
ENV PATH=/opt/jobwarden/venv/bin:/usr/local/bin:/usr/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

# Owned by root and not writable by the runtime user: the process cannot modify its own code.
COPY --from=build /runtime-root/ /

# Numeric UID:GID so Kubernetes can verify runAsNonRoot (65532 is the conventional "nonroot" id of
# distroless images; runtime_root.py writes it into /etc/passwd too).
USER 65532:65532

# Fail the build if the runtime filesystem misses anything: as the runtime user, import every jobwarden
# module (and with them kopf, both Kubernetes clients, cryptography, aiohttp...), then start the
# console script. Exec form: there is no shell.
RUN ["python", "-c", "import importlib, pkgutil, jobwarden; [importlib.import_module(m.name) for m in pkgutil.walk_packages(jobwarden.__path__, 'jobwarden.') if not m.name.endswith('.__main__')]"]
RUN ["/opt/jobwarden/venv/bin/jobwarden", "run", "--help"]

# 9443 admission webhook (HTTPS), 8080 kopf liveness /healthz, 9090 Prometheus /metrics.
EXPOSE 9443 8080 9090

# For `docker run`; Kubernetes ignores HEALTHCHECK and uses the Deployment's probes on the same URL.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["/opt/jobwarden/venv/bin/jobwarden"]
CMD ["run"]
