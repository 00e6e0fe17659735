"""Plots of a `benchmarks.burst --json` file (matplotlib, the `bench` extra; Agg, no display):

    python -m benchmarks.plot results.json docs/benchmarks

- burst-<N>.png per burst size: pods + services existing over time, jobwarden against the raw client;
- rss.png: the operator's RSS against live jobs (pods + services existing / 8), from every jobwarden
  burst and every --live run in the file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_burst(n: str, run: dict[str, Any], out: Path) -> Path:
    figure, axes = plt.subplots(figsize=(7, 4))
    for system, label in (("jobwarden", "jobwarden"), ("raw", "raw client")):
        series = run[system]["series"]
        axes.plot(
            [p[0] for p in series], [p[1] for p in series], label=f"{label} ({run[system]['seconds']:.1f} s)"
        )
    axes.axhline(8 * int(n), color="grey", linestyle=":", linewidth=1)
    axes.set(
        xlabel="seconds since the first create",
        ylabel="pods + services existing",
        title=f"Burst of {n} PyTorchJobs (4 pods + 4 services each)",
    )
    axes.legend()
    path = out / f"burst-{n}.png"
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def plot_rss(results: dict[str, Any], out: Path) -> Path | None:
    curves = [(f"burst N={n}", run["jobwarden"]["series"]) for n, run in results.get("burst", {}).items()]
    curves += [(f"live N={n}", run["series"]) for n, run in results.get("live", {}).items()]
    if not curves:
        return None
    figure, axes = plt.subplots(figsize=(7, 4))
    for label, series in curves:
        axes.plot([p[1] / 8 for p in series], [p[2] for p in series], label=label)
    axes.set(
        xlabel="live jobs (pods + services existing / 8)",
        ylabel="operator RSS (MiB)",
        title="jobwarden RSS against live jobs",
    )
    axes.legend()
    path = out / "rss.png"
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    results, out = json.loads(Path(argv[0]).read_text()), Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_burst(n, run, out) for n, run in results.get("burst", {}).items()]
    rss = plot_rss(results, out)
    for path in [*paths, *([rss] if rss else [])]:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
