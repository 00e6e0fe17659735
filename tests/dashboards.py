"""Checking the Grafana dashboard (manifests/overlays/prometheus-operator/grafana-dashboard.json)
against what the operator really exports: which series and labels its queries use, and which series
and labels a /metrics text offers. Shared by tests/unit/test_monitoring.py (the in-process registry)
and the image tests (the /metrics of the operator running in its image)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from testlib import ROOT

DASHBOARD = ROOT / "manifests" / "overlays" / "prometheus-operator" / "grafana-dashboard.json"
# Labels Prometheus adds to every scraped series (target labels), usable in queries and legends.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"}
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass
class Query:
    expr: str
    metrics: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)  # in `by (...)`, `{...}` matchers and the legend


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def queries(dashboard: dict[str, Any]) -> Iterator[Query]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield parse(target["expr"], target.get("legendFormat", ""))


def parse(expr: str, legend: str = "") -> Query:
    """The metric names and label names of a PromQL expression (the subset the dashboard uses)."""
    query = Query(expr)
    query.labels |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        query.labels |= {name.strip() for name in group.split(",") if name.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        query.labels |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    # What is left once label matchers, grouping clauses, ranges, strings and numbers are gone: metric
    # names, function names (followed by "(") and keywords.
    rest = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"|\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    rest = re.sub(r"\b\d+(\.\d+)?\b", " ", rest)
    for match in _IDENT.finditer(rest):
        name = match.group(0)
        if name not in _KEYWORDS and not rest[match.end() :].lstrip().startswith("("):
            query.metrics.add(name)
    return query


def exported(metrics_text: str) -> dict[str, set[str]]:
    """Series name -> label names, from a Prometheus text exposition: the series each `# TYPE` family
    implies (a labelled metric not yet observed has no samples, only its TYPE line) and the labels of
    every sample."""
    series: dict[str, set[str]] = {}
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            for implied in _implied_series(name, kind):
                series.setdefault(implied, set())
        elif line and not line.startswith("#"):
            name, _, labels = line.partition("{")
            names = set(re.findall(r'(\w+)="', labels.rpartition("}")[0])) if labels else set()
            series.setdefault(name.split()[0], set()).update(names)
    return series


def _implied_series(name: str, kind: str) -> set[str]:
    if kind == "counter":  # TYPE names the _total series
        return {name, name.removesuffix("_total") + "_created"}
    if kind == "histogram":  # no series carries the bare name
        return {name + suffix for suffix in ("_bucket", "_sum", "_count", "_created")}
    if kind == "summary":
        return {name + suffix for suffix in ("", "_sum", "_count", "_created")}
    return {name}
