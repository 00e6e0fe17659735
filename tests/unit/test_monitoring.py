"""The monitoring overlay (manifests/overlays/prometheus-operator), rendered: the ServiceMonitor
scrapes the operator's metrics port through Service jobwarden-metrics, and the Grafana dashboard,
shipped as a ConfigMap Grafana's sidecar loads, queries only series and labels the operator exports
(here: its prometheus_client registry in process; the image tests read the running operator's
/metrics)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase

import dashboards
import jobwarden.shell.metrics as operator_metrics
from testlib import kustomize_render

OVERLAY = "overlays/prometheus-operator"


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = kustomize_render().objects(OVERLAY)
    return objects


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kustomize_render().one(objects, kind, name)
    return found


def test_the_service_monitor_scrapes_the_operators_metrics_port(rendered: list[dict[str, Any]]) -> None:
    monitor = one(rendered, "ServiceMonitor", "jobwarden")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        o for o in rendered if o["kind"] == "Service" and selector.items() <= o["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in services] == ["jobwarden-metrics"], "exactly the metrics Service"
    [service] = services
    assert service["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint.get("scheme", "http") == "http"
    [port] = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    # ...which routes to the container port the operator serves /metrics on (its --metrics-port).
    pod = one(rendered, "Deployment", "jobwarden")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    [target] = [p for p in container["ports"] if p["name"] == port["targetPort"]]
    assert f"--metrics-port={target['containerPort']}" in container["args"]


def test_the_dashboard_ships_as_a_config_map_grafanas_sidecar_loads(rendered: list[dict[str, Any]]) -> None:
    config_map = one(rendered, "ConfigMap", "jobwarden-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["grafana-dashboard.json"]) == dashboards.load()


def test_every_panel_queries_one_exported_series_with_its_labels() -> None:
    series = dashboards.exported(generate_latest(REGISTRY).decode())
    labels = {
        metric._name + suffix: set(metric._labelnames)  # the declared label names (not public API)
        for metric in vars(operator_metrics).values()
        if isinstance(metric, MetricWrapperBase)
        for suffix in ("", "_total", "_bucket", "_count", "_sum")
    }
    queries = list(dashboards.queries(dashboards.load()))
    assert len(queries) >= 8
    for query in queries:
        [metric] = query.metrics  # one series per query keeps legends and label checks meaningful
        assert metric in series, f"{query.expr}: {metric} is not exported"
        if metric.startswith("jobwarden_"):
            allowed = labels[metric] | dashboards.TARGET_LABELS | {"le"}
            assert query.labels <= allowed, f"{query.expr}: labels {query.labels - allowed}"


def test_the_query_check_finds_wrong_names_and_labels() -> None:
    """The check above can fail: a misspelled series or a label the metric lacks is found."""
    query = dashboards.parse(
        'histogram_quantile(0.99, sum by (le, knd) (rate(jobwarden_reconcile_second_bucket{x="1"}[5m])))',
        "{{kind}}",
    )
    assert query.metrics == {"jobwarden_reconcile_second_bucket"}
    assert query.labels == {"le", "knd", "x", "kind"}
    assert query.metrics - dashboards.exported(generate_latest(REGISTRY).decode()).keys()
