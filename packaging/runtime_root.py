"""Assemble the runtime image's whole filesystem from the build stage: the venv and exactly what its
interpreter needs to run, nothing else (no shell, no package manager, no compiler, no pip).

    python3 packaging/runtime_root.py VENV DEST

The Dockerfile's runtime stage is `FROM scratch` + `COPY --from=build DEST /`. Copied, at the same
paths as in the build stage (so it works on any Debian-like base: Debian's /usr/bin/python3.11 or the
python image's /usr/local/bin/python3.11):

- the venv, without pip and setuptools (build tools; install.sh pinned them for the build);
- the interpreter the venv points at, its standard library (minus the parts only developers use:
  test, idlelib, tkinter, lib2to3, ensurepip, pydoc_data, distutils, turtle);
- every shared library the interpreter, the standard library's extension modules and the venv's
  extension modules load (`ldd`), and the dynamic loader; every symlink on the way is kept a symlink;
- the top-level usrmerge links (/bin, /lib, /lib64 -> usr/...), /etc/nsswitch.conf, OpenSSL's config,
  an /etc/passwd and /etc/group naming the runtime user 65532 (`nonroot`, home /tmp), an empty /tmp.

Not copied, on purpose: the system CA bundle (in the build stage it may be the build host's, mounted
for pip, see packaging/image.sh; the operator trusts its cluster's CA from the kubeconfig or the
ServiceAccount mount, and `certifi` is in the venv), /usr/share/zoneinfo (the venv has `tzdata`).
Fails if `ldd` reports a library as not found: a module that cannot load must break the build."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

DROP_FROM_VENV = ("pip", "setuptools", "_distutils_hack", "distutils-precedence.pth")
DROP_FROM_STDLIB = (
    "test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "pydoc_data", "distutils",
    "turtle.py", "__phello__",
)  # fmt: skip
USRMERGE_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_FILES = ("/etc/nsswitch.conf", "/etc/ssl/openssl.cnf", "/usr/lib/ssl/openssl.cnf")
USER_ID = 65532
_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def copy(path: Path, dest: Path) -> None:
    """Copy `path` to the same place under `dest`. Its directory is resolved first (so /lib/x lands in
    usr/lib/x on a usrmerged base); a symlink is copied as a symlink and its target is copied too
    (also when the link itself came with a directory copied before)."""
    path = path.parent.resolve() / path.name
    target = dest / path.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        link = os.readlink(path)
        if not target.is_symlink():
            target.symlink_to(link)
        copy(path.parent / link, dest)  # an absolute link replaces the parent
    elif target.exists():
        return
    elif path.is_dir():
        shutil.copytree(path, target, symlinks=True)
    else:
        shutil.copy2(path, target)


def shared_libraries(binary: Path) -> list[Path]:
    """What the dynamic loader maps for `binary` (`ldd`), the loader included."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False).stdout
    if "not found" in out:
        sys.exit(f"runtime_root: {binary} needs a library the build stage lacks:\n{out}")
    return [Path(m.group(1)) for m in map(_LDD_PATH.search, out.splitlines()) if m]


def extension_modules(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*.so*") if p.is_file() and not p.is_symlink()]


def copy_venv(venv: Path, dest: Path) -> None:
    copy(venv, dest)
    site = next((dest / venv.relative_to("/")).glob("lib/python3*/site-packages"))
    for entry in site.iterdir():
        name = entry.name.split("-")[0] if entry.name.endswith(".dist-info") else entry.name
        if name in DROP_FROM_VENV:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for script in (dest / venv.relative_to("/") / "bin").glob("pip*"):
        script.unlink()


def copy_interpreter(venv: Path, dest: Path) -> tuple[Path, Path]:
    """The venv's python symlink chain and the standard library; returns (interpreter, stdlib)."""
    copy(venv / "bin" / "python", dest)  # venv/bin/python -> /usr/bin/python3 -> python3.11
    interpreter = (venv / "bin" / "python").resolve()
    stdlib = Path(sysconfig.get_path("stdlib"))
    copy(stdlib, dest)
    for name in DROP_FROM_STDLIB:
        dropped = dest / stdlib.relative_to("/") / name
        shutil.rmtree(dropped) if dropped.is_dir() else dropped.unlink(missing_ok=True)
    return interpreter, stdlib


def write_etc(dest: Path) -> None:
    for name in ETC_FILES:
        if os.path.lexists(name):
            copy(Path(name), dest)
    etc = dest / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text(
        f"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{USER_ID}:{USER_ID}::/tmp:/sbin/nologin\n"
    )
    (etc / "group").write_text(f"root:x:0:\nnonroot:x:{USER_ID}:\n")
    (dest / "tmp").mkdir(mode=0o1777, exist_ok=True)
    (dest / "tmp").chmod(0o1777)


def main(venv_dir: str, dest_dir: str) -> int:
    venv, dest = Path(venv_dir), Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for name in USRMERGE_LINKS:
        if Path("/", name).is_symlink():
            (dest / name).symlink_to(os.readlink(Path("/", name)))
    copy_venv(venv, dest)
    interpreter, stdlib = copy_interpreter(venv, dest)
    binaries = [interpreter, *extension_modules(stdlib, venv)]
    for library in sorted({lib for binary in binaries for lib in shared_libraries(binary)}):
        copy(library, dest)
    write_etc(dest)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"runtime root {dest}: {len(binaries)} binaries, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
