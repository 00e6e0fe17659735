"""packaging/image.sh (`make image`) where images cannot be built: it says why on stdout
(`unavailable: <reason>`) and exits 3, which the image tests turn into a skip with that reason
(tests/integration/image/conftest.py). Simulated with a PATH that has the script's basic tools but
no podman, debootstrap or runc, and an `id` that answers a non-root user (so nothing is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from testlib import ROOT

TOOLS = ("bash", "dirname", "sed", "head", "mkdir", "cat")


def run_unprivileged_without_podman(tmp_path: Path, script: str, tools: tuple[str, ...] = TOOLS) -> None:
    """Runs `packaging/<script>` with only `tools` on PATH and a non-root `id`, and checks that it
    says it is unavailable (exit 3, the reason last on stdout) and built nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "JOBWARDEN_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [str(bin_dir / "bash"), str(ROOT / "packaging" / script)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.splitlines()[-1] == (
        "unavailable: podman debootstrap runc missing, and not root to apt-get install them"
    )
    assert not list((tmp_path / "cache").rglob("*.tar")), "nothing was built"


def test_without_podman_and_root_it_reports_unavailable(tmp_path: Path) -> None:
    run_unprivileged_without_podman(tmp_path, "image.sh")


def test_training_images_without_podman_and_root_report_unavailable(tmp_path: Path) -> None:
    """packaging/training-images.sh says why on the same terms (the real-training tests skip with it)."""
    run_unprivileged_without_podman(
        tmp_path, "training-images.sh", (*TOOLS, "flock", "sha256sum", "awk", "cut")
    )
