"""Render jobwarden's kustomize manifests into Python objects.

Shared by tests/unit/test_packaging.py, tests/e2e/ and whoever else needs "what does
`kubectl apply -k manifests/` send": the lead's integration tests can load it by path
(`importlib.util.spec_from_file_location`) and apply the result with `--dry-run=server`.

    python tests/e2e/kustomize_render.py [DIR]      # print the rendered YAML (default: manifests/)
    python tests/e2e/kustomize_render.py --image    # print the operator image of the default install

kubectl choice: the 1.37 kubectl that devcluster/build.sh builds into the cache
(JOBWARDEN_CACHE, default ~/.cache/jobwarden) when it exists, otherwise the first `kubectl` on PATH
whose embedded kustomize actually renders (some kubectl wrappers lack it), or $KUBECTL if set.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
K8S_VERSION = "v1.37.2"  # devcluster/build.sh


def cache_dir() -> Path:
    return Path(os.environ.get("JOBWARDEN_CACHE", Path.home() / ".cache" / "jobwarden"))


def _kustomize_works(kubectl: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            "configMapGenerator:\n- name: probe\n  literals: [a=b]\n"
        )
        try:
            proc = subprocess.run(
                [kubectl, "kustomize", tmp], capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0 and "kind: ConfigMap" in proc.stdout


@functools.cache
def find_kubectl() -> str:
    """A kubectl whose `kustomize` subcommand works; raises RuntimeError with what was tried."""
    candidates: list[str] = []
    if os.environ.get("KUBECTL"):
        candidates.append(os.environ["KUBECTL"])
    candidates.append(str(cache_dir() / f"k8s-{K8S_VERSION}" / "bin" / "kubectl"))
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(directory or ".") / "kubectl"
        if os.access(path, os.X_OK):
            candidates.append(str(path))
    tried = []
    for candidate in dict.fromkeys(candidates):  # ordered, de-duplicated
        if os.access(candidate, os.X_OK) and _kustomize_works(candidate):
            return candidate
        tried.append(candidate)
    raise RuntimeError(
        "no kubectl with a working `kustomize` found (tried: " + ", ".join(tried) + "); "
        "run devcluster/build.sh or install kubectl >= 1.27"
    )


def render(directory: Path | str = MANIFESTS, kubectl: str | None = None) -> str:
    """`kubectl kustomize DIRECTORY` as text. A relative DIRECTORY is taken relative to manifests/."""
    path = Path(directory)
    if not path.is_absolute():
        path = MANIFESTS / path
    crds = REPO / "crds" / "kustomization.yaml"
    if not crds.exists():
        raise RuntimeError(f"{crds} is missing: manifests/base includes the CRDs from ../../crds")
    proc = subprocess.run(
        [kubectl or find_kubectl(), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{proc.stderr}")
    return proc.stdout


def load(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@functools.cache
def _rendered(directory: str) -> str:
    return render(directory)


def objects(directory: Path | str = MANIFESTS) -> list[dict[str, Any]]:
    """Rendered objects (a fresh copy each call; the rendering itself is cached per directory)."""
    return load(_rendered(str(directory)))


def select(objs: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> Iterator[dict[str, Any]]:
    for obj in objs:
        if obj.get("kind") == kind and (name is None or obj["metadata"].get("name") == name):
            yield obj


def one(objs: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = list(select(objs, kind, name))
    if len(found) != 1:
        raise LookupError(f"expected exactly one {kind} {name or ''}, found {len(found)}")
    return found[0]


def operator_image(directory: Path | str = MANIFESTS) -> str:
    deployment = one(objects(directory), "Deployment", "jobwarden")
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def main(argv: list[str]) -> int:
    if argv[:1] == ["--image"]:
        print(operator_image(argv[1] if len(argv) > 1 else MANIFESTS))
        return 0
    sys.stdout.write(render(argv[0] if argv else MANIFESTS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
