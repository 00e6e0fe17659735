"""What the built image contains, read from its exported filesystem (no container runs): its size,
and no compiler, shell, package manager, shell history, pip cache or test dependency; the venv holds
exactly the locked runtime distributions."""

from __future__ import annotations

import re
import subprocess
import tarfile
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import PurePosixPath

import pytest
from devcluster.container import podman, podman_env

from testlib import ROOT

SIZE_GOAL_BYTES = 150_000_000  # issue 15
SITE_PACKAGES = "opt/jobwarden/venv/lib/python3.11/site-packages"
COMPILERS = {"gcc", "cc", "c++", "g++", "cpp", "clang", "tcc", "ld", "as", "make", "rustc", "cargo"}
SHELLS = {"sh", "bash", "dash", "ash", "zsh", "busybox"}
HISTORIES = {".bash_history", ".python_history", ".sh_history", ".ash_history", ".lesshst", ".viminfo"}
BUILD_TOOLS = {"pip", "setuptools", "wheel"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def files(image: str) -> Iterator[dict[str, tarfile.TarInfo]]:
    """Every path of the image's filesystem (`podman export` of a created, never started container)."""
    name = f"jobwarden-contents-{uuid.uuid4().hex[:8]}"
    podman("create", f"--name={name}", image)
    try:
        export = subprocess.Popen(["podman", "export", name], stdout=subprocess.PIPE, env=podman_env())
        assert export.stdout is not None
        with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
            found = {member.name.removeprefix("./").rstrip("/"): member for member in tar}
        assert export.wait() == 0
    finally:
        podman("rm", "--force", name, check=False)
    yield found


def names(files: dict[str, tarfile.TarInfo]) -> set[str]:
    return {PurePosixPath(path).name for path in files}


def test_size_within_the_goal(image: str, files: dict[str, tarfile.TarInfo]) -> None:
    size = int(podman("image", "inspect", "--format={{.Size}}", image).stdout)
    payload = sum(m.size for m in files.values() if m.isfile())
    venv = sum(m.size for p, m in files.items() if m.isfile() and p.startswith("opt/jobwarden/venv/"))
    print(f"image {image}: {size / 1e6:.1f} MB ({len(files)} paths; venv {venv / 1e6:.1f} MB)")
    assert payload <= size
    assert size <= SIZE_GOAL_BYTES, f"{size / 1e6:.1f} MB"


def test_no_compiler_shell_or_package_manager(files: dict[str, tarfile.TarInfo]) -> None:
    executables = {
        PurePosixPath(p).name for p, m in files.items() if (m.isfile() and m.mode & 0o111) or m.issym()
    }
    assert not executables & (COMPILERS | SHELLS), executables & (COMPILERS | SHELLS)
    # (Packages' own headers, e.g. cffi's and multidict's C API, are package data, not a toolchain.)
    development = re.compile(r"^usr/(local/)?include/|(^|/)lib(exec)?/gcc/|\.a$")
    assert not [p for p, m in files.items() if m.isfile() and development.search(p)], "system headers/gcc"
    assert not [p for p in files if p.startswith(("var/lib/dpkg", "var/lib/apt", "etc/apt"))]
    assert not {"apt", "apt-get", "dpkg", "perl"} & executables


def test_no_shell_history_pip_cache_or_wheels(files: dict[str, tarfile.TarInfo]) -> None:
    assert not names(files) & HISTORIES
    assert not [p for p in files if "/.cache" in f"/{p}" or p.endswith(".whl") or "/pip-" in p]
    assert not [p for p in files if p.startswith(("root/", "src/", "runtime-root"))], "build leftovers"


def test_the_venv_holds_exactly_the_locked_runtime_distributions(files: dict[str, tarfile.TarInfo]) -> None:
    installed = {
        norm(m.group(1)): m.group(2)
        for p in files
        if (m := re.fullmatch(rf"{SITE_PACKAGES}/([^/-]+)-([^/-]+)\.dist-info", p))
    }
    pins = {}
    for line in (ROOT / "packaging" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[norm(name)] = version
    assert installed.pop("jobwarden")
    assert installed == {n: v for n, v in pins.items() if n not in BUILD_TOOLS}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    test_only = {
        norm(re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0]) for dep in project["optional-dependencies"]["test"]
    }
    assert test_only and not test_only & installed.keys()
    top_level = {
        PurePosixPath(p).parts[6] for p in files if p.startswith(SITE_PACKAGES + "/") and p.count("/") > 5
    }
    assert (
        not {"pytest", "_pytest", "hypothesis", "mypy", "ruff", "importlinter", "pip", "setuptools"}
        & top_level
    )
