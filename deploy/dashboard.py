"""The Grafana dashboard, as data: each panel's queries use metric names the code exports (tested).

Rendered to `knative/monitoring/datafrost-dashboard.json` (import it by hand) and into a ConfigMap
labelled `grafana_dashboard: "1"`, which Grafana's dashboard sidecar picks up. Datasources are the
variables `datasource` (Prometheus) and `loki`, chosen when importing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploy.common import Resource, metadata
from shared import metrics

DASHBOARD_UID = "datafrost"
RATE = "[5m]"


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]  # (PromQL or LogQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # timeseries, bargauge or logs
    width: int = 12


def _quantiles(histogram: str, by: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (
            f"histogram_quantile({q}, sum by (le, {by}) (rate({histogram}_bucket{RATE})))",
            f"p{int(q * 100)} {{{{{by}}}}}",
        )
        for q in (0.5, 0.95, 0.99)
    )


PANELS = (
    Panel(
        "Event throughput",
        (
            ("sum by (broker) (rate(datafrost_broker_events_received_total[5m]))", "accepted {{broker}}"),
            ("sum by (trigger) (rate(datafrost_broker_events_delivered_total[5m]))", "delivered {{trigger}}"),
        ),
        unit="ops",
    ),
    Panel("Delivery latency", _quantiles("datafrost_broker_delivery_duration_seconds", "trigger"), unit="s"),
    Panel(
        "Retries and dead letters",
        (
            ("sum by (trigger) (rate(datafrost_broker_delivery_retries_total[5m]))", "retries {{trigger}}"),
            (
                "sum by (trigger, outcome) (rate(datafrost_broker_events_dead_lettered_total[5m]))",
                "dead-lettered {{trigger}} ({{outcome}})",
            ),
        ),
        unit="ops",
    ),
    Panel(
        "Processing time by function",
        _quantiles("datafrost_function_event_duration_seconds", "function"),
        unit="s",
    ),
    Panel(
        "Events by function and outcome",
        (
            (
                "sum by (function, outcome) (rate(datafrost_function_events_total[5m]))",
                "{{function}} {{outcome}}",
            ),
        ),
        unit="ops",
    ),
    Panel(
        "Images by status",
        ((f"sum by (status) ({metrics.CATALOG_IMAGES})", "{{status}}"),),
        kind="bargauge",
        width=6,
    ),
    Panel(
        "Cold starts",
        (("sum by (function) (increase(datafrost_function_cold_starts_total[1h]))", "{{function}}"),),
        width=6,
    ),
    Panel(
        "Inspect and thumbnail time",
        _quantiles("datafrost_image_processing_duration_seconds", "operation"),
        unit="s",
    ),
    Panel(
        "Image bytes processed",
        (
            (
                "sum by (function, direction) (rate(datafrost_image_bytes_processed_total[5m]))",
                "{{function}} {{direction}}",
            ),
        ),
        unit="Bps",
    ),
    Panel(
        "Queue depth per trigger (datafrost dev)",
        ((f"sum by (trigger) ({metrics.BROKER_QUEUE_DEPTH})", "{{trigger}}"),),
    ),
    Panel(
        "Error logs",
        (('{namespace="datafrost"} | json | level=~"error|warning"', ""),),
        kind="logs",
        width=24,
    ),
)


def _panel(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    loki = panel.kind == "logs"
    datasource = (
        {"type": "loki", "uid": "${loki}"} if loki else {"type": "prometheus", "uid": "${datasource}"}
    )
    targets = [
        {"refId": chr(ord("A") + i), "datasource": datasource, "expr": expr, "legendFormat": legend}
        for i, (expr, legend) in enumerate(panel.queries)
    ]
    rendered: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "datasource": datasource,
        "gridPos": {"h": 10 if loki else 8, "w": panel.width, "x": x, "y": y},
        "targets": targets,
    }
    if not loki:
        rendered["fieldConfig"] = {"defaults": {"unit": panel.unit}, "overrides": []}
    return rendered


def _datasource_variable(name: str, plugin: str, label: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "datasource", "query": plugin, "hide": 0, "current": {}}


def dashboard() -> dict[str, Any]:
    """Grafana's dashboard JSON model."""
    panels, x, y = [], 0, 0
    for panel_id, panel in enumerate(PANELS, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(_panel(panel_id, panel, x, y))
        x += panel.width
    return {
        "uid": DASHBOARD_UID,
        "title": "DataFrost",
        "tags": ["datafrost"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                _datasource_variable("datasource", "prometheus", "Prometheus"),
                _datasource_variable("loki", "loki", "Loki"),
            ]
        },
        "panels": panels,
    }


def dashboard_config_map(dashboard_json: str) -> Resource:
    meta = metadata("datafrost-grafana-dashboard")
    meta["labels"]["grafana_dashboard"] = "1"  # Grafana's sidecar loads ConfigMaps with this label
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {"datafrost.json": dashboard_json},
    }
