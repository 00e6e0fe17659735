"""devcluster/ociimage.py writes the image-layout tar `ctr images import` reads (checked for real
in tests/realnode): blobs named by their digests, the manifest's descriptor in index.json carrying
the image name and the platform, the config's diff_id the layer's digest."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from devcluster import ociimage


def test_the_layout_is_consistent_and_names_the_image(tmp_path: Path) -> None:
    binary = tmp_path / "tool"
    binary.write_bytes(b"\x7fELF fake")
    out = ociimage.write_image(
        tmp_path / "img.tar", "jobwarden.local/tool:1", {"/bin/tool": binary}, ["/bin/tool"]
    )
    with tarfile.open(out) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert name.removeprefix("blobs/sha256/") == hashlib.sha256(data).hexdigest()
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "jobwarden.local/tool:1"
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    manifest = json.loads(files[f"blobs/sha256/{entry['digest'].removeprefix('sha256:')}"])
    config = json.loads(files[f"blobs/sha256/{manifest['config']['digest'].removeprefix('sha256:')}"])
    layer_digest = manifest["layers"][0]["digest"]
    assert config["rootfs"]["diff_ids"] == [layer_digest]  # uncompressed: diff_id == digest
    assert config["config"]["Entrypoint"] == ["/bin/tool"]
    with tarfile.open(fileobj=__import__("io").BytesIO(files[f"blobs/sha256/{layer_digest[7:]}"])) as layer:
        members = {m.name: m for m in layer.getmembers()}
    assert members["bin/tool"].mode == 0o755 and members["bin"].isdir()
    assert {"proc", "sys", "dev", "etc", "tmp"} <= set(members)


def test_same_inputs_same_digests(tmp_path: Path) -> None:
    binary = tmp_path / "tool"
    binary.write_bytes(b"x")
    first = ociimage.write_image(
        tmp_path / "a.tar", "jobwarden.local/t:1", {"/t": binary}, ["/t"]
    ).read_bytes()
    second = ociimage.write_image(
        tmp_path / "b.tar", "jobwarden.local/t:1", {"/t": binary}, ["/t"]
    ).read_bytes()
    assert first == second
