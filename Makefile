# The two commands (see README):
#   make demo   bring up the local control plane, install CRDs + webhook, run the operator, walk sample jobs
#   make test   the whole test suite (static checks, unit, integration against a real kube-apiserver,
#               the image run with podman: built by `make image` on first use)
#   make image  build the container image with podman from a local Debian 12 base (docs/image.md)
#   make training-images  the real-node tests' training images (docs/training-images.md)
# Everything they need is built or installed on first use and cached outside the repo
# (~/.cache/jobwarden and ~/go for the Kubernetes binaries, .venv for Python).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The Kubeflow SDK (the `sdk` extra) needs an older kubernetes client than the tests: its own venv.
SDK_VENV  := .venv-sdk
SDK_STAMP := $(SDK_VENV)/.installed

.PHONY: demo test check unit integration binaries image training-images down clean bench

demo: $(STAMP) binaries
	$(PY) -m devcluster.demo

test: $(STAMP) $(SDK_STAMP) binaries check
	$(PY) -m pytest -q -p no:cacheprovider --durations=15

check: $(STAMP)
	$(VENV)/bin/ruff check operator tests devcluster benchmarks packaging
	$(VENV)/bin/ruff format --check operator tests devcluster benchmarks packaging
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP) $(SDK_STAMP) binaries
	$(PY) -m pytest -q tests/integration

binaries:
	bash devcluster/build.sh >/dev/null

# Progress on stderr, the image name on stdout; seconds when nothing changed. Cached outside the repo.
image:
	bash packaging/image.sh

# The real-node tests' training images as OCI archives (docs/training-images.md); the tests build them
# on first use too. `<image> <archive>` per image on stdout; seconds when nothing changed.
training-images:
	bash packaging/training-images.sh

bench: $(STAMP) binaries
	$(PY) -c 'import matplotlib' 2>/dev/null || $(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m benchmarks.run

down: $(STAMP)
	$(PY) -m devcluster down --name demo

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

$(SDK_STAMP): pyproject.toml
	test -x $(SDK_VENV)/bin/python || $(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install -q --upgrade pip
	$(SDK_VENV)/bin/python -m pip install -q $$($(PYTHON) -c 'import tomllib; \
		extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]; \
		print(" ".join(extras["sdk"]))')
	touch $(SDK_STAMP)

clean:
	rm -rf $(VENV) $(SDK_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
