"""The one table issue 13 asks for, from the results `benchmarks.burst` collects (or its --json file:
`python -m benchmarks.report results.json`), as Markdown, so a run can be pasted into
docs/benchmarks.md as printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _ms(figures: dict[str, Any]) -> str:
    if not figures.get("n"):
        return "none seen"
    return "{:.0f} / {:.0f} / {:.0f} ms".format(*(1000 * figures[k] for k in ("p50", "p99", "max")))


def burst_rows(n: str, run: dict[str, Any]) -> list[tuple[str, str, str]]:
    raw, jw = run["raw"], run["jobwarden"]
    per_job = ", ".join(f"{k} {v / int(n):.2f}" for k, v in jw["requests"].items())
    ratios = run.get("ratios") or []
    of = f"; median of {', '.join(f'{r:.2f}' for r in ratios)}" if len(ratios) > 1 else ""
    return [
        ("burst: all 4N pods + 4N services exist, raw client", n, f"{raw['seconds']:.2f} s"),
        (
            "burst: same, jobwarden (ratio raw/jobwarden)",
            n,
            f"{jw['seconds']:.2f} s ({run['ratio']:.2f} x{of})",
        ),
        ("burst: operator CPU per job", n, f"{jw['cpu_ms_per_job']:.1f} ms"),
        ("burst: operator RSS idle → after", n, f"{jw['rss_idle_mib']:.0f} → {jw['rss_mib']:.0f} MiB"),
        ("burst: operator API requests per job", n, per_job or "none"),
    ]


def deadline_jobs(overlap: bool, stagger: float) -> str:
    """How the deadline jobs were created (benchmarks/lateness.py, step 2)."""
    if overlap:
        return "in a burst with the finishes"
    return f"after, spread over {stagger:g} s" if stagger else "after, in a burst"


def lateness_rows(n: str, run: dict[str, Any]) -> list[tuple[str, str, str]]:
    stagger = run["options"].get("stagger") or 0
    when = deadline_jobs(run["options"]["overlap"], stagger)
    spread = f"finishes spread over {stagger:g} s" if stagger else "finishes at once"
    return [
        (f"lateness p50 / p99 / max: cleanPodPolicy (first worker; {spread})", n,
         _ms(run["clean_first_worker"])),
        ("lateness: cleanPodPolicy (last worker)", n, _ms(run["clean_last_worker"])),
        (f"lateness: TTL ({run['options']['ttl']} s)", n, _ms(run["ttl"])),
        (f"lateness: deadline ({run['options']['deadline']} s, jobs created {when})", n,
         _ms(run["deadline"])),
    ]  # fmt: skip


def live_rows(n: str, run: dict[str, Any]) -> list[tuple[str, str, str]]:
    held = f"{run['hold_seconds']:.0f} s held"
    return [
        ("live: operator RSS idle → held", n, f"{run['rss_idle_mib']:.0f} → {run['rss_held_mib']:.0f} MiB"),
        ("live: RSS per job", n, f"{run['bytes_per_job'] / 1024:.1f} KiB"),
        (f"live: operator CPU, {held}", n, f"{run['cpu_percent_held']:.1f} % of a core"),
        (f"live: reconciles per second, {held}", n, f"{run['reconciles_per_second']:.2f}"),
    ]


def table(results: dict[str, Any]) -> str:
    rows = [row for n, run in results.get("burst", {}).items() for row in burst_rows(n, run)]
    rows += [row for n, run in results.get("lateness", {}).items() for row in lateness_rows(n, run)]
    rows += [row for n, run in results.get("live", {}).items() for row in live_rows(n, run)]
    lines = ["| measure | N | figure |", "| --- | --- | --- |"]
    return "\n".join(lines + [f"| {what} | {n} | {figure} |" for what, n, figure in rows])


if __name__ == "__main__":
    print(table(json.loads(Path(sys.argv[1]).read_text())))
