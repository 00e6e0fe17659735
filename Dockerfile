# jobwarden operator + admission webhook image.
#
#   docker build -t jobwarden:0.1.0 .
#
# Base image: pinned by tag (Python minor version and Debian release), in ONE place below, which both
# stages derive from -- they must match, because the venv's interpreter is a symlink to the base
# image's /usr/local/bin/python3.11. It is NOT pinned by digest: no container registry is reachable
# where this file was written, so a digest could not be resolved and verified. Pin it when you build:
#   docker buildx imagetools inspect python:3.11-slim-trixie      # prints the index digest
#   FROM python:3.11-slim-trixie@sha256:<digest> AS python-base    # (the line below)
FROM python:3.11-slim-trixie AS python-base

# ---- build: resolve and install into a self-contained venv -----------------------------------------
FROM python-base AS build

# No pip cache in the layer; no version-check call to the index.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only the build inputs (.dockerignore is an allow-list of the same files), so editing tests or docs
# does not invalidate the install layer.
COPY packaging/install.sh packaging/constraints.txt packaging/
COPY pyproject.toml README.md* LICENSE* ./
COPY operator/ operator/

# The one install recipe, shared with tests/unit/test_packaging.py: wheels only, every version from
# packaging/constraints.txt, fails if the lock is stale, imports every module. pip compiles the
# bytecode here, at build time, because the runtime root filesystem is read-only.
RUN packaging/install.sh /opt/jobwarden/venv

# ---- runtime ----------------------------------------------------------------------------------------
FROM python-base AS runtime

LABEL org.opencontainers.image.title="jobwarden" \
      org.opencontainers.image.description="Kubernetes operator and admission webhook for TFJob, PyTorchJob, MXJob and Volcano Job" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

# PYTHONDONTWRITEBYTECODE: never try to write __pycache__ (read-only root filesystem; the .pyc files
#   were compiled in the build stage).
# PYTHONUNBUFFERED: logs reach `kubectl logs` immediately.
# HOME, TMPDIR: UID 65532 has no home directory; /tmp is the one writable path (an emptyDir in the
#   Deployment), where the self-signed mode also writes its generated certificates.
ENV PATH=/opt/jobwarden/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

# Owned by root and not writable by the runtime user: the process cannot modify its own code.
COPY --from=build /opt/jobwarden/venv /opt/jobwarden/venv

# Numeric UID:GID so Kubernetes can verify runAsNonRoot without an /etc/passwd entry (65532 is the
# conventional "nonroot" id of distroless images).
USER 65532:65532

# Fail the build if the console script cannot start as the runtime user from the read-only venv
# (install.sh already imported every module as root in the build stage).
RUN ["/opt/jobwarden/venv/bin/jobwarden", "run", "--help"]

# 9443 admission webhook (HTTPS), 8080 kopf liveness /healthz, 9090 Prometheus /metrics.
EXPOSE 9443 8080 9090

# For `docker run`; Kubernetes ignores HEALTHCHECK and uses the Deployment's probes on the same URL.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["/opt/jobwarden/venv/bin/jobwarden"]
CMD ["run"]
