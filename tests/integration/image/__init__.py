"""The image run with podman against a devcluster of its own (a package, so its conftest's fixtures can
be package-scoped and its conftest does not shadow tests/integration/conftest.py's module name)."""
