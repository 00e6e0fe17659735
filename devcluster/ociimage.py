"""One-layer OCI images without a registry or a container tool: an image-layout tar (`oci-layout`,
`index.json`, `blobs/sha256/…`) with one uncompressed layer, as `ctr images import` reads it.

    write_image(Path("netcheck.tar"), "jobwarden.local/netcheck:1",
                {"/netcheck": Path(".../netcheck")}, entrypoint=["/netcheck"])

containerd names the image from the `io.containerd.image.name` annotation of the manifest's
descriptor in `index.json`, and picks it for the node only if that descriptor carries its
`platform`: both are written here. Everything is deterministic (mtime 0, root-owned), so the same
inputs give the same digests."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
    tar.addfile(info)


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, 0
    tar.addfile(info)


def layer_tar(files: Mapping[str, Path | bytes], links: Mapping[str, str] | None = None) -> bytes:
    """A layer holding `files` (absolute path in the image -> a file to copy, executable, or bytes),
    `links` (absolute path -> symlink target) and the directories above them, plus the empty /proc
    /sys /dev /etc /tmp a runtime mounts on."""
    buffer = io.BytesIO()
    links = links or {}
    dirs = {"proc", "sys", "dev", "etc", "tmp"}
    for path in [*files, *links]:
        parts = path.strip("/").split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted(dirs):
            _add_dir(tar, directory)
        for path, source in sorted(files.items()):
            if isinstance(source, Path):
                _add(tar, path.strip("/"), source.read_bytes(), 0o755)
            else:
                _add(tar, path.strip("/"), source)
        for path, target in sorted(links.items()):
            _add_link(tar, path.strip("/"), target)
    return buffer.getvalue()


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": f"sha256:{hashlib.sha256(data).hexdigest()}",
        "size": len(data),
    }


def write_image(
    out: Path,
    name: str,
    files: Mapping[str, Path | bytes],
    entrypoint: list[str],
    env: list[str] | None = None,
    links: Mapping[str, str] | None = None,
) -> Path:
    """Write the OCI image-layout tar for image `name` (e.g. `jobwarden.local/pause:1`) to `out`."""
    layer = layer_tar(files, links)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": entrypoint,
                "Env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": _descriptor(CONFIG, config),
            "layers": [_descriptor(LAYER, layer)],
        },
        sort_keys=True,
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    **_descriptor(MANIFEST, manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                    },
                }
            ],
        },
        sort_keys=True,
    ).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        for blob in (layer, config, manifest):
            _add(tar, f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}", blob)
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(tar, "index.json", index)
    tmp.replace(out)
    return out
